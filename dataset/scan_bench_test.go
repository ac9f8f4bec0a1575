package dataset

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/federa-dev/federa/internal/testutil"
)

// The scan benchmark: count, sum, sum of squares and a histogram of one
// column of a generated file, by Source.Scan and by a plain Go loop that
// reads the same file the fastest straightforward way (encoding/csv and
// strconv.ParseFloat; parquet-go's column pages and ReadDoubles), both in
// the same run. It reports for each:
//
//	scan-rows/s, loop-rows/s  rows per second (ns/op is the two together)
//	ratio                     scan speed ÷ loop speed (the goal is ≥ 0.8), the
//	                          median over the iterations
//	heap-MB                   the largest HeapInuse seen during a scan
//
// at two sizes, FEDERA_BENCH_ROWS/4 and FEDERA_BENCH_ROWS (default 200000),
// so heap-MB staying put while the file grows shows the memory is flat. The
// full figure:
//
//	FEDERA_BENCH_ROWS=10000000 go test -run '^$' -bench BenchmarkScan -benchtime 3x -count 5 ./dataset/
//
// (writes about 0.9 GB of files under the system temp directory first,
// removed when the run ends).

// scanStats is the same computation through Source.Scan.
func scanStats(src Source, column string) (testutil.BenchStats, error) {
	var s testutil.BenchStats
	err := src.Scan([]string{column}, func(row []Value) error {
		if row[0].Num {
			s.Add(row[0].F)
		}
		return nil
	})
	return s, err
}

// scanHeap is scanStats that also returns the largest HeapInuse seen,
// sampled 64 times (ReadMemStats stops the world, so not in a timed run).
func scanHeap(src Source, column string, rows int) (testutil.BenchStats, uint64, error) {
	runtime.GC()
	var s testutil.BenchStats
	var ms runtime.MemStats
	var peak uint64
	every := max(rows/64, 1)
	err := src.Scan([]string{column}, func(row []Value) error {
		if row[0].Num {
			s.Add(row[0].F)
		}
		if s.N%every == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		return nil
	})
	return s, peak, err
}

// benchFiles caches the generated files per size across the benchmark's
// runs (-count) in benchDir, removed by TestMain.
var (
	benchDir   string
	benchFiles = map[int][2]string{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func benchFilesFor(b *testing.B, rows int) (csvPath, pqPath string) {
	if f, ok := benchFiles[rows]; ok {
		return f[0], f[1]
	}
	if benchDir == "" {
		d, err := os.MkdirTemp("", "federa-scan-bench")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = d
	}
	csvPath = filepath.Join(benchDir, fmt.Sprintf("%d.csv", rows))
	pqPath = filepath.Join(benchDir, fmt.Sprintf("%d.parquet", rows))
	testutil.WriteBenchFiles(b, csvPath, pqPath, rows)
	benchFiles[rows] = [2]string{csvPath, pqPath}
	return csvPath, pqPath
}

func BenchmarkScan(b *testing.B) {
	n := testutil.BenchRows(b)
	for _, rows := range []int{n / 4, n} {
		csvPath, pqPath := benchFilesFor(b, rows)
		for _, tc := range []struct {
			name string
			src  Source
			loop func(path, column string) (testutil.BenchStats, error)
		}{
			{"csv", Source{Path: csvPath}, testutil.LoopCSV},
			{"parquet", Source{Format: "parquet", Path: pqPath}, testutil.LoopParquet},
		} {
			b.Run(fmt.Sprintf("%s/rows=%d", tc.name, rows), func(b *testing.B) {
				// The same answer both ways, and the heap during a scan.
				got, peak, err := scanHeap(tc.src, "x", rows)
				if err != nil {
					b.Fatal(err)
				}
				want, err := tc.loop(tc.src.Path, "x")
				if err != nil {
					b.Fatal(err)
				}
				if got != want || got.N != rows {
					b.Fatalf("Scan computed n=%d sum=%v, the loop n=%d sum=%v", got.N, got.Sum, want.N, want.Sum)
				}

				testutil.PairedRatio(b, rows, "scan",
					func() error { _, err := scanStats(tc.src, "x"); return err },
					func() error { _, err := tc.loop(tc.src.Path, "x"); return err })
				b.ReportMetric(float64(peak)/(1<<20), "heap-MB")
			})
		}
	}
}
