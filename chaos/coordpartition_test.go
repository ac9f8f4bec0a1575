package chaos

import (
	"testing"
	"time"
)

// TestCoordinatorPartitionedLongerThanSiteWait cuts the coordinator off
// from every site for longer than its site_wait_timeout (3 s) in the middle
// of a job, then heals the link. The promise (issue 16): the job waits as
// resumable and continues when the network returns, keeping its rounds,
// instead of failing.
//
// Before the coordinator learned to wait (JOB_STATUS_WAITING) the job failed
// here with "0 of 3 sites answered".
func TestCoordinatorPartitionedLongerThanSiteWait(t *testing.T) {
	t.Parallel()
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
	if j.Status != "SUCCEEDED" {
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
