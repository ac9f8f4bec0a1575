package sim_test

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/federa-dev/federa/attest"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/site"
	"github.com/federa-dev/federa/spec"
)

// skewedSite is the site whose clock is off in the clock-skew tests.
const skewedSite = "us/boston"

// skewOptions gives skewedSite a clock skew off the real one (which the
// coordinator, the other sites and the CA that issued every SVID keep).
// Network namespaces share one wall clock, so a process cannot be skewed
// for real here; what a site reads from its clock, it reads from this.
func skewOptions(skew time.Duration) func(string) []site.Option {
	return func(name string) []site.Option {
		if name != skewedSite {
			return nil
		}
		return []site.Option{site.WithClock(func() time.Time { return time.Now().Add(skew) })}
	}
}

// TestSiteClockSkew: a site whose clock is 5 minutes behind or ahead of
// the coordinator's (and of the CA's, which issued the coordinator's SVID
// just before) connects, passes the other sites' SVID checks under secure
// aggregation, and takes part in every round; no round waits for a
// deadline (round deadlines are the coordinator's own durations: no
// absolute time crosses the wire).
func TestSiteClockSkew(t *testing.T) {
	t.Parallel()
	for _, skew := range []time.Duration{-attest.MaxClockSkew, attest.MaxClockSkew} {
		t.Run(fmt.Sprint(skew), func(t *testing.T) {
			t.Parallel()
			n, _ := startNet(t, sim.Options{SiteOptions: skewOptions(skew)})
			j := demoSpec()
			j.Rounds, j.MinSites = 3, 3
			j.RoundTimeout = spec.Duration(20 * time.Second)
			j.Privacy.SecureAggregation = spec.SecureAggregation{On: true}
			job := runJob(t, n, j)
			if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
				t.Fatalf("%s's clock %s off: job %s: %s", skewedSite, skew, job.GetStatus(), job.GetMessage())
			}
			var took []string
			for _, r := range job.GetRounds() {
				took = append(took, fmt.Sprintf("%d ms", r.GetDurationMs()))
				if !slices.Contains(r.GetParticipants(), skewedSite) {
					t.Errorf("round %d without %s: participants %v, missing %v", r.GetRound(), skewedSite, r.GetParticipants(), r.GetMissing())
				}
				if d := time.Duration(r.GetDurationMs()) * time.Millisecond; d > 10*time.Second {
					t.Errorf("round %d took %s: it waited for its deadline (20 s)", r.GetRound(), d)
				}
			}
			t.Logf("%s's clock %s off: rounds took %s", skewedSite, skew, strings.Join(took, ", "))
		})
	}
}

// TestSiteClockSkewBeyondTolerance: a site whose clock is off by more
// than the certificates allow cannot connect, and says why in terms of
// clocks: 10 minutes behind (the coordinator's fresh SVID is not valid
// yet by its clock), or 2 hours ahead of SVIDs that live 1 hour (the
// coordinator's has expired by its clock). The other sites are unharmed.
func TestSiteClockSkewBeyondTolerance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		skew time.Duration
		want []string
	}{
		{-10 * time.Minute, []string{"is valid only from", "clock skew", "behind"}},
		{2 * time.Hour, []string{"expired at", "clock skew", "ahead"}},
	} {
		t.Run(fmt.Sprint(tc.skew), func(t *testing.T) {
			t.Parallel()
			logs := &syncBuffer{}
			n, err := sim.Start(sim.Options{Dir: t.TempDir(), Sites: shippedSites, SVIDTTL: time.Hour, SiteOptions: skewOptions(tc.skew),
				Log: slog.New(slog.NewTextHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { n.Close() })
			var refused string
			for deadline := time.Now().Add(hangBound); refused == ""; time.Sleep(50 * time.Millisecond) {
				for _, line := range strings.Split(logs.String(), "\n") {
					if strings.Contains(line, "refused peer") && strings.Contains(line, "clock skew") {
						refused = line
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s's clock %s off: no refusal naming clock skew in the logs:\n%s", skewedSite, tc.skew, logs.String())
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(refused, w) {
					t.Errorf("the refusal does not say %q: %s", w, refused)
				}
			}
			t.Logf("%s", refused)
			// The others are connected and a job runs on them.
			waitFor(t, "the other sites to connect", func() bool {
				return n.Site("eu/paris").Connected() && n.Site("sg/singapore").Connected()
			})
			j := demoSpec()
			j.Rounds, j.Sites = 1, []string{"eu/paris", "sg/singapore"}
			if job := runJob(t, n, j); job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED || slices.Contains(job.GetRounds()[0].GetParticipants(), skewedSite) {
				t.Fatalf("job on the other sites: %s %s, participants %v", job.GetStatus(), job.GetMessage(), job.GetRounds())
			}
		})
	}
}
