package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/federa-dev/federa/cli"
	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/spec"
)

// skewed is the label-skewed split of the UCI digits in testdata: five
// sites, each holding four of the ten digits (testdata/README.md).
const skewed = "../testdata/digits-skew"

// firstSiteOnly is the broken aggregator the accuracy test must catch: it
// returns one site's update as the round's model, as a coordinator that
// forgot to aggregate would.
type firstSiteOnly struct{}

func (firstSiteOnly) Name() string { return "first-site-only" }

func (firstSiteOnly) Aggregate(_ models.Weights, updates []models.Update) (models.Weights, error) {
	if len(updates) == 0 {
		return nil, fmt.Errorf("no updates")
	}
	return updates[0].Weights, nil
}

func init() {
	models.RegisterAggregator("first-site-only", func(models.AggregatorParams) (models.Aggregator, error) { return firstSiteOnly{}, nil })
}

// TestFederationBeatsEverySiteAlone: on data where no single site can reach
// the target — each site lacks six of the ten digits, so a model trained at
// one site alone can name at most four and scores at most the share of
// test rows that are its digits (≈ 0.4) — the federated model must beat
// every site alone by a wide margin and land within 2 points of the same
// model trained centrally on the union of the site files.
//
// The same criterion fails when federation is broken: the sub-test runs
// the job with an aggregator that returns one site's update instead of
// combining them (what TestFederatedTrainingReachesCentralQuality cannot
// tell apart on the demo data, where one site alone scores as well as all
// three) and asserts the criterion catches it.
func TestFederationBeatsEverySiteAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on five sites twice; skipped with -short")
	}
	test, err := dataset.LoadCSV(filepath.Join(skewed, "test.csv"), dataset.Options{Label: "label"})
	if err != nil {
		t.Fatal(err)
	}
	// The best a site alone can do: every test row of its own digits right.
	var sites []sim.SiteSpec
	best := 0.0
	files, _ := filepath.Glob(filepath.Join(skewed, "*-*.csv"))
	for _, f := range files {
		tab, err := dataset.LoadCSV(f, dataset.Options{Label: "label"})
		if err != nil {
			t.Fatal(err)
		}
		own := tab.Classes()
		hits := 0
		for _, l := range test.Labels {
			if slices.Contains(own, l) {
				hits++
			}
		}
		bound := float64(hits) / float64(len(test.Labels))
		best = max(best, bound)
		name := strings.Replace(strings.TrimSuffix(filepath.Base(f), ".csv"), "-", "/", 1)
		sites = append(sites, sim.SiteSpec{Name: name, Dataset: "digits", Path: f})
		t.Logf("%s holds %v: alone it scores at most %.3f", name, own, bound)
	}
	if len(sites) != 5 || best > 0.45 {
		t.Fatalf("%d sites, best bound alone %.3f: the split is not the label-skewed one this test is about", len(sites), best)
	}

	// The federated run and the central baseline, as `federa demo` reports them.
	var out, errb bytes.Buffer
	if code := cli.Execute(context.Background(), []string{"demo", "--data", skewed, "--rounds", "10", "--output", "json"}, &out, &errb); code != 0 {
		t.Fatalf("demo: %s", errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var res struct {
		Status      string  `json:"status"`
		Federated   float64 `json:"test_accuracy"`
		Centralized float64 `json:"centralized_accuracy"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("federated %.4f, central %.4f, best site alone ≤ %.4f", res.Federated, res.Centralized, best)
	criterion := func(acc float64) error {
		if acc < best+0.3 {
			return fmt.Errorf("accuracy %.4f does not beat the best site alone (≤ %.4f) by 0.3", acc, best)
		}
		if acc < res.Centralized-0.02 {
			return fmt.Errorf("accuracy %.4f is more than 2 points below central training (%.4f)", acc, res.Centralized)
		}
		return nil
	}
	if err := criterion(res.Federated); err != nil {
		t.Fatalf("federated model: %v", err)
	}

	t.Run("a broken aggregator fails the criterion", func(t *testing.T) {
		n, _ := startNet(t, sim.Options{Sites: sites})
		j := demoSpec()
		j.Dataset, j.Rounds, j.LocalEpochs, j.BatchSize, j.Aggregator = "digits", 10, 2, 16, spec.Aggregator{Name: "first-site-only"}
		j.Sites, j.MinSites = nil, len(sites)
		for _, s := range sites {
			j.Sites = append(j.Sites, s.Name)
		}
		job := runJob(t, n, j)
		if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
			t.Fatalf("job %s: %s", job.GetStatus(), job.GetMessage())
		}
		path := filepath.Join(t.TempDir(), "model.safetensors")
		downloadModel(t, n, job.GetId(), path)
		acc := accuracyOf(t, path, filepath.Join(skewed, "test.csv"))
		err := criterion(acc)
		t.Logf("one site's update as the model: accuracy %.4f: %v", acc, err)
		if err == nil {
			t.Fatal("the accuracy criterion passed a coordinator that does not aggregate")
		}
	})
}
