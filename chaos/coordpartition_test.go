package chaos

import (
	"os"
	"testing"
	"time"
)

// TestCoordinatorPartitionedLongerThanSiteWait cuts the coordinator off
// from every site for longer than its site_wait_timeout (3 s) in the middle
// of a job, then heals the link. The promise (issue 16): the job waits as
// resumable and continues when the network returns, keeping its rounds,
// instead of failing.
//
// The coordinator fails such a job today; the change that makes it wait is
// being made separately. Until it lands this test runs only with
// FEDERA_CHAOS_RESUMABLE=1, and is not part of make test.
func TestCoordinatorPartitionedLongerThanSiteWait(t *testing.T) {
	if os.Getenv("FEDERA_CHAOS_RESUMABLE") != "1" {
		t.Skip("needs the coordinator to wait (resumable) when it loses its quorum; set FEDERA_CHAOS_RESUMABLE=1 once that is merged")
	}
	f := startFederation(t, options{heartbeat: "250ms", siteWait: "3s"})
	h := newHistory()
	f.waitSites()
	id := f.submit(partitionJob)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		j, ok := h.read(f, id)
		if ok && j.RoundsCompleted >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job never reached round 2: %+v", j)
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.snap(f)
	f.lab.cut("coordinator")
	time.Sleep(8 * time.Second)
	f.lab.restore("coordinator")
	j := f.waitEnd(h, id, 3*time.Minute)
	if j.Status != "JOB_STATUS_SUCCEEDED" {
		t.Fatalf("after an 8 s partition (site wait 3 s): job %s: %s", j.Status, j.Message)
	}
	for !h.snap(f) {
		time.Sleep(100 * time.Millisecond)
	}
	if v := h.check(f, map[string]int{id: 10}, false); len(v) > 0 {
		for _, x := range v {
			t.Error(x)
		}
	}
}
