package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/store"
)

// TestDecisionsLeaveTheJobRecord: a 100-site, 40-round job's 20,000
// decisions (what made GetJob fail with ResourceExhausted at 4.2 MB) go to
// their own list. The job record GetJob sends stays small whatever the
// count, and paging through ListDecisions returns every decision exactly
// once, in order, each page under gRPC's message limit even when the
// sites' reasons are long.
func TestDecisionsLeaveTheJobRecord(t *testing.T) {
	st, err := store.OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := &Coordinator{cfg: Config{Now: time.Now}, store: st, jobs: map[string]*jobState{}}
	const id, sites, rounds = "job-1", 100, 40
	j := &federav1.Job{Id: id, Status: federav1.JobStatus_JOB_STATUS_RUNNING}
	if err := st.PutJob(j); err != nil {
		t.Fatal(err)
	}
	c.jobs[id] = &jobState{job: j, changed: make(chan struct{})}
	seq := map[string]uint64{}
	reason := "column x is personal"
	long := strings.Repeat("column x is personal; ", 400) // ~9 KB, as a long refusal
	for r := 1; r <= rounds; r++ {
		c.mu.Lock()
		for s := range sites {
			name := fmt.Sprintf("eu/site-%03d", s)
			for range 5 { // admission and egress of train and eval, and more
				seq[name]++
				why := reason
				if r == rounds {
					why = long // the last round's 500: a 4.5 MB page without a byte bound
				}
				c.jobs[id].decisions = append(c.jobs[id].decisions, &federav1.SiteDecision{Site: name,
					Record: &federav1.DecisionRecord{JobId: id, Kind: "egress", Seq: seq[name], Reasons: []string{why}}})
			}
		}
		c.mu.Unlock()
		if _, err := c.update(id, "", func(j *federav1.Job) { j.RoundsCompleted = int32(r) }); err != nil {
			t.Fatal(err)
		}
	}
	// A record write that fails after the decisions were stored does not
	// store them again at the next update.
	c.mu.Lock()
	for range 3 {
		seq["eu/site-000"]++
		c.jobs[id].decisions = append(c.jobs[id].decisions, &federav1.SiteDecision{Site: "eu/site-000",
			Record: &federav1.DecisionRecord{JobId: id, Kind: "egress", Seq: seq["eu/site-000"]}})
	}
	c.mu.Unlock()
	if _, err := c.updateWith(id, "", func(*federav1.Job) {}, func(*federav1.Job) error { return errors.New("disk full") }); err == nil {
		t.Fatal("a failed write reported no error")
	}
	if _, err := c.update(id, "", func(*federav1.Job) {}); err != nil {
		t.Fatal(err)
	}
	const want = sites*rounds*5 + 3
	svc := &jobService{c: c}
	got, err := svc.GetJob(context.Background(), &federav1.GetJobRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	if n := proto.Size(got); n > 4<<10 {
		t.Fatalf("GetJob of a job with %d decisions sends %d bytes; want it independent of them (under 4 KiB here)", sites*rounds*5, n)
	}
	stored, err := st.GetJob(id)
	if err != nil {
		t.Fatal(err)
	}
	if n := proto.Size(stored); n > 4<<10 {
		t.Fatalf("the stored job record is %d bytes; want the decisions kept apart", n)
	}

	seen := map[string]uint64{} // site -> last seq seen
	count, pages, token := 0, 0, ""
	for {
		resp, err := svc.ListDecisions(context.Background(), &federav1.ListDecisionsRequest{JobId: id, PageToken: token, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if n := proto.Size(resp); n > 4<<20-(64<<10) {
			t.Fatalf("page %d is %d bytes: over gRPC's 4 MiB limit", pages, n)
		}
		if resp.GetTotal() != want {
			t.Fatalf("total %d, want %d", resp.GetTotal(), want)
		}
		for _, d := range resp.GetDecisions() {
			s, q := d.GetSite(), d.GetRecord().GetSeq()
			if q != seen[s]+1 {
				t.Fatalf("page %d: %s decision %d after %d; want each exactly once, in order", pages, s, q, seen[s])
			}
			seen[s] = q
			count++
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
		if pages > want {
			t.Fatal("paging does not end")
		}
	}
	if count != want {
		t.Fatalf("paged %d decisions, want %d", count, want)
	}
	for _, bad := range []*federav1.ListDecisionsRequest{{JobId: id, PageSize: 1001}, {JobId: id, PageSize: -1}, {JobId: id, PageToken: "x"}} {
		if _, err := svc.ListDecisions(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "field page_") {
			t.Errorf("%v: %v; want an error naming the field", bad, err)
		}
	}
	if _, err := svc.ListDecisions(context.Background(), &federav1.ListDecisionsRequest{JobId: "job-nope"}); err == nil {
		t.Error("decisions of an unknown job: no error")
	}
}
