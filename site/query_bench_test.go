package site

import (
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/federa-dev/federa/analytics"
	"github.com/federa-dev/federa/internal/testutil"
)

// BenchmarkQuery is what a site spends answering a count + mean +
// histogram query over one column of a generated CSV and Parquet file, the
// whole site path (the dataset's ScanBatches, the query's partials), next
// to a plain Go loop computing the same sums over the same file in the
// same run (testutil.LoopCSV, LoopParquet); both must agree on n and Σx
// first. It reports rows/s of each, ratio (the
// query's speed over the loop's, the median of back-to-back pairs; the goal
// is ≥ 0.8) and heap-MB, the most heap in use while a query runs, at two
// sizes so a flat figure shows memory does not grow with the file. The full
// figure:
//
//	FEDERA_BENCH_ROWS=10000000 go test -run '^$' -bench BenchmarkQuery -benchtime 3x -count 5 ./site/
func BenchmarkQuery(b *testing.B) {
	n := testutil.BenchRows(b)
	q, err := analytics.ParseQuery("bench.yaml", []byte(`name: bench
dataset: bench
aggregates:
  - {name: n, fn: count}
  - {name: mean_x, fn: mean, column: x}
  - {name: hist_x, fn: histogram, column: x, edges: [0, 12.5, 25, 37.5, 50, 62.5, 75, 87.5, 100]}
`))
	if err != nil {
		b.Fatal(err)
	}
	req, _, err := analytics.NewPlanner(q).Next(nil)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	for _, rows := range []int{n / 4, n} {
		csvPath := filepath.Join(dir, fmt.Sprintf("%d.csv", rows))
		pqPath := filepath.Join(dir, fmt.Sprintf("%d.parquet", rows))
		testutil.WriteBenchFiles(b, csvPath, pqPath, rows)
		for _, tc := range []struct {
			name string
			ds   *Dataset
			loop func(path, column string) (testutil.BenchStats, error)
		}{
			{"csv", &Dataset{Name: "bench", Path: csvPath}, testutil.LoopCSV},
			{"parquet", &Dataset{Name: "bench", Format: "parquet", Path: pqPath}, testutil.LoopParquet},
		} {
			b.Run(fmt.Sprintf("%s/rows=%d", tc.name, rows), func(b *testing.B) {
				src := newSourceRows(tc.ds)
				query := func() {
					if _, err := analytics.Compute(q, req, 0, src); err != nil {
						b.Fatal(err)
					}
				}
				loop := func() {
					if _, err := tc.loop(tc.ds.Path, "x"); err != nil {
						b.Fatal(err)
					}
				}
				if src.rows != 0 {
					b.Fatal("fresh source counted rows")
				}
				peak := heapDuring(query)
				if src.rows != int64(rows) {
					b.Fatalf("the query read %d rows of %d", src.rows, rows)
				}
				part, err := analytics.Compute(q, req, 0, src)
				if err != nil {
					b.Fatal(err)
				}
				want, err := tc.loop(tc.ds.Path, "x")
				if err != nil {
					b.Fatal(err)
				}
				m := part.Cells[0].Values["mean_x"]
				if n := part.Cells[0].Values["n"][0]; n != float64(want.N) || m[0] != n || math.Abs(m[1]-want.Sum) > 1e-9*math.Abs(want.Sum) {
					b.Fatalf("the query computed n=%v Σx=%v, the loop n=%d Σx=%v", n, m[1], want.N, want.Sum)
				}
				testutil.PairedRatio(b, rows, "query",
					func() error { query(); return nil },
					func() error { loop(); return nil })
				b.ReportMetric(float64(peak)/(1<<20), "heap-MB")
			})
		}
	}
}

// heapDuring runs f once after a GC and returns the most heap in use seen
// while it ran, sampled every millisecond.
func heapDuring(f func()) uint64 {
	runtime.GC()
	var peak uint64
	var mu sync.Mutex
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapInuse)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	f()
	close(done)
	wg.Wait()
	return peak
}
