package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/cli"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

// TestJobListPages: ListJobs over mTLS pages through more jobs than one
// page, oldest first, each once, a job submitted between pages neither
// repeated nor skipped; its entries are summaries. federa job list
// follows the pages to the end (--page-size), --limit stops early with a
// next_page_token that --page-token continues from, and a bad token is
// refused naming the field.
func TestJobListPages(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	ctx := context.Background()
	l := &listed{t: t, rpc: "ListJobs", command: "job", key: "jobs"}
	l.add = func() {
		t.Helper()
		j := demoSpec()
		j.Rounds = 1
		job, err := c.SubmitJob(ctx, &federav1.SubmitJobRequest{Spec: j.Proto()})
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		// Cancelled at once: the list is what is tested, not training.
		if _, err := c.CancelJob(ctx, &federav1.CancelJobRequest{Id: job.GetId()}); err != nil && status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("cancel: %v", err)
		}
		l.ids = append(l.ids, job.GetId())
	}
	l.list = func(token string, size int32) ([]string, string, error) {
		resp, err := c.ListJobs(ctx, &federav1.ListJobsRequest{PageToken: token, PageSize: size})
		var got []string
		for _, j := range resp.GetJobs() {
			got = append(got, j.GetId())
			if len(j.GetSites()) > 0 || len(j.GetFeatures()) > 0 {
				t.Errorf("job %s is listed with its sites or features, not as a summary", j.GetId())
			}
		}
		return got, resp.GetNextPageToken(), err
	}
	l.check(n)
}

// TestQueryListPages: ListQueries and federa query list page as ListJobs
// and job list do; a listed query carries no result.
func TestQueryListPages(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	c, closeFn, err := n.DialQueries("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	ctx := context.Background()
	l := &listed{t: t, rpc: "ListQueries", command: "query", key: "queries"}
	l.add = func() {
		t.Helper()
		q := runQuery(t, n, "name: count\ndataset: breast-cancer\naggregates: [{name: n, fn: count}]\n")
		if q.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
			t.Fatalf("query %s: %s", q.GetStatus(), q.GetMessage())
		}
		l.ids = append(l.ids, q.GetId())
	}
	l.list = func(token string, size int32) ([]string, string, error) {
		resp, err := c.ListQueries(ctx, &federav1.ListQueriesRequest{PageToken: token, PageSize: size})
		var got []string
		for _, q := range resp.GetQueries() {
			got = append(got, q.GetId())
			if len(q.GetResultJson()) > 0 {
				t.Errorf("query %s is listed with its result", q.GetId())
			}
		}
		return got, resp.GetNextPageToken(), err
	}
	l.check(n)
}

// listed checks one paged list: its RPC (list) and its CLI command.
type listed struct {
	t                 *testing.T
	rpc, command, key string // "ListJobs", "job", "jobs" (the JSON field)
	ids               []string
	add               func() // creates one more item and appends its id to ids
	list              func(token string, size int32) (ids []string, next string, err error)
}

func (l *listed) check(n *sim.Net) {
	t := l.t
	t.Helper()
	for range 5 {
		l.add()
	}
	var got []string
	pages := 0
	for token := ""; ; pages++ {
		page, next, err := l.list(token, 2)
		if err != nil {
			t.Fatalf("%s: %v", l.rpc, err)
		}
		if len(page) > 2 {
			t.Fatalf("%s page %d has %d items; asked for 2", l.rpc, pages, len(page))
		}
		got = append(got, page...)
		if pages == 0 {
			l.add() // between pages: it is listed last, once
		}
		if token = next; token == "" {
			break
		}
		if pages > 10 {
			t.Fatalf("%s does not end: %v", l.rpc, got)
		}
	}
	if strings.Join(got, " ") != strings.Join(l.ids, " ") {
		t.Fatalf("paged %s (%d pages of 2):\n  %v\nwant every one created, oldest first:\n  %v", l.rpc, pages+1, got, l.ids)
	}
	if _, _, err := l.list("nonsense", 0); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "field page_token") {
		t.Errorf("%s with a bad page token: %v; want InvalidArgument naming the field", l.rpc, err)
	}
	if _, _, err := l.list("", 5000); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "field page_size") {
		t.Errorf("%s with page_size 5000: %v; want InvalidArgument naming the field", l.rpc, err)
	}

	ctx := context.Background()
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		args = append(args, "--coordinator", n.Addr(), "--identity", n.IdentityDir("alice"))
		if code := cli.Execute(ctx, args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s%s", args, code, out.String(), errb.String())
		}
		return out.String()
	}
	fromJSON := func(out string) ([]string, string) {
		t.Helper()
		var resp map[string]json.RawMessage
		var items []struct {
			ID string `json:"id"`
		}
		var next string
		if err := json.Unmarshal([]byte(out), &resp); err != nil {
			t.Fatalf("%s list -o json: %v\n%s", l.command, err, out)
		}
		if err := json.Unmarshal(resp[l.key], &items); err != nil {
			t.Fatalf("%s list -o json: field %s: %v\n%s", l.command, l.key, err, out)
		}
		if raw, ok := resp["next_page_token"]; ok {
			if err := json.Unmarshal(raw, &next); err != nil {
				t.Fatal(err)
			}
		}
		var ids []string
		for _, it := range items {
			ids = append(ids, it.ID)
		}
		return ids, next
	}
	all, token := fromJSON(run(l.command, "list", "-o", "json", "--page-size", "2"))
	if strings.Join(all, " ") != strings.Join(l.ids, " ") || token != "" {
		t.Fatalf("%s list --page-size 2 lists %v (next %q); want all %d: %v", l.command, all, token, len(l.ids), l.ids)
	}
	first, token := fromJSON(run(l.command, "list", "-o", "json", "--page-size", "2", "--limit", "3"))
	if len(first) != 3 || token == "" {
		t.Fatalf("%s list --limit 3: %v, next_page_token %q; want 3 and a token", l.command, first, token)
	}
	rest, _ := fromJSON(run(l.command, "list", "-o", "json", "--page-token", token))
	if strings.Join(append(first, rest...), " ") != strings.Join(l.ids, " ") {
		t.Fatalf("%s list --limit 3 then --page-token: %v + %v; want %v", l.command, first, rest, l.ids)
	}
	text := run(l.command, "list", "--page-size", "2")
	for _, id := range l.ids {
		if !strings.Contains(text, id) {
			t.Errorf("%s list --page-size 2 does not show %s:\n%s", l.command, id, text)
		}
	}
}
