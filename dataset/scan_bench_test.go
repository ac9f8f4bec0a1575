package dataset

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

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

func benchRows(b *testing.B) int {
	n := 200_000
	if v := os.Getenv("FEDERA_BENCH_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 4 {
			b.Fatalf("FEDERA_BENCH_ROWS=%q: want a number of rows, at least 4", v)
		}
	}
	return n
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
	n := benchRows(b)
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

				// Each iteration times a scan and a loop back to back, in
				// alternating order; the ratio reported is the median of the
				// iterations' ratios, which a burst of load on a shared
				// machine moves less than the totals.
				var scanT, loopT time.Duration
				ratios := make([]float64, 0, b.N)
				b.ResetTimer()
				for i := range b.N {
					var ts, tl time.Duration
					for k := range 2 {
						start := time.Now()
						if (i+k)%2 == 0 {
							_, err = scanStats(tc.src, "x")
							ts = time.Since(start)
						} else {
							_, err = tc.loop(tc.src.Path, "x")
							tl = time.Since(start)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					scanT += ts
					loopT += tl
					ratios = append(ratios, tl.Seconds()/ts.Seconds())
				}
				b.StopTimer()
				total := float64(rows) * float64(b.N)
				b.ReportMetric(total/scanT.Seconds(), "scan-rows/s")
				b.ReportMetric(total/loopT.Seconds(), "loop-rows/s")
				slices.Sort(ratios)
				b.ReportMetric(ratios[len(ratios)/2], "ratio")
				b.ReportMetric(float64(peak)/(1<<20), "heap-MB")
			})
		}
	}
}
