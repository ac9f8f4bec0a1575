package sim_test

import (
	"context"
	"math"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/site"
	"github.com/federa-dev/federa/spec"
)

// TestServerOptimizerResumesExactly runs a 4-round fedadam job straight
// through, then the same job again with the coordinator stopped while
// round 3 trains and restarted: the optimizer's moments travel in the
// checkpoint, so both models must be equal bit for bit. Without them the
// resumed job would restart Adam from zero moments and land elsewhere.
func TestServerOptimizerResumesExactly(t *testing.T) {
	var armed atomic.Bool
	var once sync.Once
	hit := make(chan string, 3)
	n, _ := startNet(t, sim.Options{SiteOptions: func(name string) []site.Option {
		return []site.Option{site.WithBeforeTask(func(ctx context.Context, t *federav1.Task) {
			if armed.Load() && t.GetKind() == federav1.TaskKind_TASK_KIND_TRAIN && t.GetRound() == 3 {
				fire := false
				once.Do(func() { fire = true })
				if fire {
					hit <- name
					<-ctx.Done()
				}
			}
		})}
	}})
	j := demoSpec()
	j.Rounds = 4
	// All three sites every round, so both runs average the same updates.
	j.MinSites = 3
	j.Aggregator = spec.Aggregator{Name: "fedadam", ServerLR: new(0.05)}
	dir := t.TempDir()

	straight := runJob(t, n, j)
	if straight.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("uninterrupted job %s: %s", straight.GetStatus(), straight.GetMessage())
	}
	downloadModel(t, n, straight.GetId(), filepath.Join(dir, "straight.safetensors"))

	armed.Store(true)
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	job, err := c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-hit:
	case <-time.After(hangBound):
		t.Fatal("round 3 never started")
	}
	c2 := restartCoordinator(t, n)
	final := waitFinal(t, c2, job.GetId())
	if final.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("resumed job %s: %s", final.GetStatus(), final.GetMessage())
	}
	downloadModel(t, n, final.GetId(), filepath.Join(dir, "resumed.safetensors"))

	want, err := models.LoadModel(filepath.Join(dir, "straight.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := models.LoadModel(filepath.Join(dir, "resumed.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range want.Weights.Names() {
		w, g := want.Weights[name].Data, got.Weights[name]
		if g == nil || len(g.Data) != len(w) {
			t.Fatalf("tensor %q missing or resized in the resumed model", name)
		}
		for i := range w {
			if math.Float32bits(w[i]) != math.Float32bits(g.Data[i]) {
				t.Fatalf("tensor %q[%d]: resumed %v, uninterrupted %v", name, i, g.Data[i], w[i])
			}
		}
	}
}
