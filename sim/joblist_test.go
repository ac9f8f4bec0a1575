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
	var ids []string
	submit := func() {
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
		ids = append(ids, job.GetId())
	}
	for range 5 {
		submit()
	}
	var got []string
	pages := 0
	for token := ""; ; pages++ {
		resp, err := c.ListJobs(ctx, &federav1.ListJobsRequest{PageToken: token, PageSize: 2})
		if err != nil {
			t.Fatalf("list jobs: %v", err)
		}
		if len(resp.GetJobs()) > 2 {
			t.Fatalf("page %d has %d jobs; asked for 2", pages, len(resp.GetJobs()))
		}
		for _, j := range resp.GetJobs() {
			got = append(got, j.GetId())
			if len(j.GetSites()) > 0 || len(j.GetFeatures()) > 0 {
				t.Errorf("job %s is listed with its sites or features, not as a summary", j.GetId())
			}
		}
		if pages == 0 {
			submit() // between pages: it is listed last, once
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
		if pages > 10 {
			t.Fatalf("ListJobs does not end: %v", got)
		}
	}
	if strings.Join(got, " ") != strings.Join(ids, " ") {
		t.Fatalf("paged list (%d pages of 2):\n  %v\nwant the submitted jobs, oldest first:\n  %v", pages+1, got, ids)
	}
	if _, err := c.ListJobs(ctx, &federav1.ListJobsRequest{PageToken: "nonsense"}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "field page_token") {
		t.Errorf("a bad page token: %v; want InvalidArgument naming the field", err)
	}
	if _, err := c.ListJobs(ctx, &federav1.ListJobsRequest{PageSize: 5000}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "field page_size") {
		t.Errorf("page_size 5000: %v; want InvalidArgument naming the field", err)
	}

	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		args = append(args, "--coordinator", n.Addr(), "--identity", n.IdentityDir("alice"))
		if code := cli.Execute(ctx, args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s%s", args, code, out.String(), errb.String())
		}
		return out.String()
	}
	listed := func(out string) ([]string, string) {
		t.Helper()
		var resp struct {
			Jobs []struct {
				ID string `json:"id"`
			} `json:"jobs"`
			NextPageToken string `json:"next_page_token"`
		}
		if err := json.Unmarshal([]byte(out), &resp); err != nil {
			t.Fatalf("job list -o json: %v\n%s", err, out)
		}
		var ids []string
		for _, j := range resp.Jobs {
			ids = append(ids, j.ID)
		}
		return ids, resp.NextPageToken
	}
	all, token := listed(run("job", "list", "-o", "json", "--page-size", "2"))
	if strings.Join(all, " ") != strings.Join(ids, " ") || token != "" {
		t.Fatalf("job list --page-size 2 lists %v (next %q); want all %d jobs: %v", all, token, len(ids), ids)
	}
	first, token := listed(run("job", "list", "-o", "json", "--page-size", "2", "--limit", "3"))
	if len(first) != 3 || token == "" {
		t.Fatalf("job list --limit 3: %v, next_page_token %q; want 3 jobs and a token", first, token)
	}
	rest, _ := listed(run("job", "list", "-o", "json", "--page-token", token))
	if strings.Join(append(first, rest...), " ") != strings.Join(ids, " ") {
		t.Fatalf("--limit 3 then --page-token: %v + %v; want %v", first, rest, ids)
	}
	text := run("job", "list", "--page-size", "2")
	for _, id := range ids {
		if !strings.Contains(text, id) {
			t.Errorf("job list --page-size 2 does not show %s:\n%s", id, text)
		}
	}
}
