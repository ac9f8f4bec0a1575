package sim_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/coordinator"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

// TestUnstartableJobRefusedAtSubmit: a job that no wait for sites could
// start is refused at submit, at once, with what the sites serve or how
// many the coordinator knows; a job whose sites may yet connect waits with
// a message that counts the sites serving its dataset.
func TestUnstartableJobRefusedAtSubmit(t *testing.T) {
	// A site wait far longer than the test: a refusal that only came after
	// it would hang the test, not pass it.
	n, logs := startNet(t, sim.Options{Coordinator: func(c *coordinator.Config) { c.SiteWaitTimeout = 10 * time.Minute }})
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()

	for _, tt := range []struct {
		name string
		edit func(j *federav1.JobSpec)
		want []string
	}{
		{"misspelt dataset", func(j *federav1.JobSpec) { j.Dataset = "breast-cancr" },
			[]string{`no site serves dataset "breast-cancr"`, "all 3 sites this coordinator knows are connected", "they serve [breast-cancer]"}},
		{"min_sites beyond the known sites", func(j *federav1.JobSpec) { j.MinSites = 5 },
			[]string{"field min_sites", "knows only 3 (eu/paris, sg/singapore, us/boston)", "at most 3"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := demoSpec()
			j.Sites = nil
			p := j.Proto()
			tt.edit(p)
			_, err := c.SubmitJob(t.Context(), &federav1.SubmitJobRequest{Spec: p})
			if status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("submit: %v; want FailedPrecondition", err)
			}
			msg := status.Convert(err).Message()
			t.Logf("refusal: %s", msg)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("refusal %q does not contain %q", msg, w)
				}
			}
		})
	}

	// With a site away the dataset may yet appear: the job waits and says
	// what it is waiting for.
	n.StopSite("us/boston")
	waitLogLine(t, logs, `msg="site disconnected"`, "site=us/boston ")
	j := demoSpec()
	j.Sites = nil
	j.Dataset = "breast-cancr"
	job, err := c.SubmitJob(t.Context(), &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		t.Fatalf("submit with a site away: %v", err)
	}
	want := `waiting for sites: 0 of 2 sites serving dataset "breast-cancr" connected (2 connected sites serve: breast-cancer; not connected: us/boston)`
	var last string
	waitFor(t, "the waiting message", func() bool {
		got, err := c.GetJob(t.Context(), &federav1.GetJobRequest{Id: job.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		last = got.GetMessage()
		return last == want
	})
	if _, err := c.CancelJob(t.Context(), &federav1.CancelJobRequest{Id: job.GetId()}); err != nil {
		t.Fatal(err)
	}
}
