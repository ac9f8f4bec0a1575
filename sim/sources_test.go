package sim_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/federa-dev/federa/internal/testutil"
	"github.com/federa-dev/federa/models"
	"github.com/federa-dev/federa/sim"
)

// TestTrainingReadsParquetAndPostgres runs the demo job with eu/paris
// serving its rows as a Parquet file and us/boston from a PostgreSQL table
// (a real server), and again with every site on its CSV file: the same
// rows in the same order train the same model, weight for weight, and
// answer a grouped query (count, mean, variance, exact quantiles) alike.
func TestTrainingReadsParquetAndPostgres(t *testing.T) {
	pg := testutil.StartPostgres(t)
	conn, err := pgx.Connect(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	testutil.LoadCSVTable(t, conn, "boston", filepath.Join(shipped, "us-boston.csv"), "double precision")
	conn.Close(context.Background())
	t.Setenv("FEDERA_TEST_BOSTON_DSN", pg.DSN)
	pq := filepath.Join(t.TempDir(), "eu-paris.parquet")
	testutil.CSVToParquet(t, filepath.Join(shipped, "eu-paris.csv"), pq, testutil.ParquetVariant{Name: "plain"})

	// Each federation trains the demo job and answers a grouped query.
	const query = `name: by-label
dataset: breast-cancer
group_by: [label]
totals: true
aggregates:
  - {name: n, fn: count}
  - {name: mean_r, fn: mean, column: mean_radius}
  - {name: var_t, fn: variance, column: mean_texture}
  - {name: q, fn: quantile, column: mean_area, q: [0.5, 0.9]}
`
	answers := map[string][]byte{}
	weights := func(sites []sim.SiteSpec) models.Weights {
		n, _ := startNet(t, sim.Options{Sites: sites})
		answers[sites[0].Format] = resultOf(t, runQuery(t, n, query)).canonical(t)
		j := demoSpec()
		j.Rounds = 3
		job := runJob(t, n, j)
		if job.GetStatus().Name() != "succeeded" {
			t.Fatalf("job over %v: %s %s", sites, job.GetStatus(), job.GetMessage())
		}
		path := filepath.Join(t.TempDir(), "model.safetensors")
		downloadModel(t, n, job.GetId(), path)
		m, err := models.LoadModel(path)
		if err != nil {
			t.Fatal(err)
		}
		return m.Weights
	}
	mixed := []sim.SiteSpec{
		{Name: "eu/paris", Dataset: "breast-cancer", Format: "parquet", Path: pq},
		shippedSites[1],
		{Name: "us/boston", Dataset: "breast-cancer", Format: "postgres", Table: "boston", DSNEnv: "FEDERA_TEST_BOSTON_DSN"},
	}
	got, want := weights(mixed), weights(shippedSites)
	if string(answers["parquet"]) != string(answers[""]) {
		t.Errorf("the query over Parquet/PostgreSQL sites answered\n%s\nover CSV sites\n%s", answers["parquet"], answers[""])
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok || len(g.Data) != len(w.Data) {
			t.Fatalf("tensor %s: Parquet/PostgreSQL sites trained %v, CSV sites %v", name, g, w)
		}
		for i := range w.Data {
			if g.Data[i] != w.Data[i] {
				t.Fatalf("tensor %s[%d]: %v from Parquet/PostgreSQL sites, %v from CSV: the sources read different rows", name, i, g.Data[i], w.Data[i])
			}
		}
	}
}

// canonical is the result's groups as JSON, without the query's ID: what
// two federations over the same rows must agree on exactly.
func (r *queryResult) canonical(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(r.Groups)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
