package sim_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/spec"
)

// TestFedProxReachesTheSites: the proximal coefficient travels in the job
// spec to the sites, which apply it in their local training. With mu = 0
// the job's model is bit for bit FedAvg's (same seed); with a large mu it
// differs, and the sites' updates stay closer to the global model, so the
// final model moves less from where training started.
func TestFedProxReachesTheSites(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	dir := t.TempDir()
	train := func(name string, agg spec.Aggregator) *models.Model {
		t.Helper()
		j := demoSpec()
		j.Rounds, j.MinSites, j.Aggregator = 3, 3, agg
		job := runJob(t, n, j)
		if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
			t.Fatalf("%s: %s %s", name, job.GetStatus(), job.GetMessage())
		}
		path := filepath.Join(dir, name+".safetensors")
		downloadModel(t, n, job.GetId(), path)
		m, err := models.LoadModel(path)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	norm := func(m *models.Model) float64 {
		var s float64
		for _, name := range m.Weights.Names() {
			for _, v := range m.Weights[name].Data {
				s += float64(v) * float64(v)
			}
		}
		return math.Sqrt(s)
	}
	fedavg := train("fedavg", spec.Aggregator{Name: "fedavg"})
	zero := train("fedprox-0", spec.Aggregator{Name: "fedprox", Mu: new(0.0)})
	for _, name := range fedavg.Weights.Names() {
		a, b := fedavg.Weights[name].Data, zero.Weights[name].Data
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("fedprox with mu 0 differs from fedavg at %s[%d]: %v vs %v", name, i, b[i], a[i])
			}
		}
	}
	strong := train("fedprox-10", spec.Aggregator{Name: "fedprox", Mu: new(10.0)})
	// Training starts from zero weights, so the norm is how far it moved.
	if na, ns := norm(fedavg), norm(strong); !(ns < 0.8*na) {
		t.Fatalf("with mu 10 the model moved %.4f from its start, fedavg's %.4f: the sites did not apply the proximal term", ns, na)
	}
}
