package dataset

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
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

const benchBins = 32

// benchStats is what the analytics compute.
type benchStats struct {
	n          int
	sum, sumSq float64
	hist       [benchBins]int
}

func (s *benchStats) add(x float64) {
	s.n++
	s.sum += x
	s.sumSq += x * x
	b := int(x * (benchBins / 100.0)) // bins over [0, 100)
	if b < 0 {
		b = 0
	} else if b >= benchBins {
		b = benchBins - 1
	}
	s.hist[b]++
}

// benchRow is a row of the generated files; the benchmark reads x.
type benchRow struct {
	ID    int64   `parquet:"id"`
	X     float64 `parquet:"x"`
	Y     float64 `parquet:"y"`
	Z     float64 `parquet:"z"`
	Label string  `parquet:"label,dict"`
}

// writeBenchFiles writes the same rows as CSV and as Parquet (row groups
// of a million rows, uncompressed: decoding rather than decompression is
// then what a scan costs). The Parquet numbers are the CSV text parsed, so
// both give the same sums exactly.
func writeBenchFiles(tb testing.TB, csvPath, pqPath string, rows int) {
	tb.Helper()
	cf, err := os.Create(csvPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer cf.Close()
	pf, err := os.Create(pqPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer pf.Close()
	cw := bufio.NewWriterSize(cf, 1<<20)
	pw := parquet.NewGenericWriter[benchRow](pf, parquet.MaxRowsPerRowGroup(1<<20))
	rng := rand.New(rand.NewPCG(7, 11))
	classes := []string{"benign", "malignant", "unknown"}
	cw.WriteString("id,x,y,z,label\n")
	batch := make([]benchRow, 0, 4096)
	var line []byte
	for i := range rows {
		r := benchRow{ID: int64(i), Label: classes[rng.IntN(len(classes))]}
		line = strconv.AppendInt(line[:0], r.ID, 10)
		for _, p := range []*float64{&r.X, &r.Y, &r.Z} {
			line = append(line, ',')
			start := len(line)
			line = strconv.AppendFloat(line, 50+15*rng.NormFloat64(), 'f', 3, 64)
			*p, _ = strconv.ParseFloat(string(line[start:]), 64)
		}
		line = append(append(append(line, ','), r.Label...), '\n')
		cw.Write(line)
		batch = append(batch, r)
		if len(batch) == cap(batch) || i == rows-1 {
			if _, err := pw.Write(batch); err != nil {
				tb.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := cw.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		tb.Fatal(err)
	}
}

// loopCSV is the plain loop over the CSV file.
func loopCSV(path, column string) (benchStats, error) {
	var s benchStats
	f, err := os.Open(path)
	if err != nil {
		return s, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return s, err
	}
	j := slices.Index(header, column)
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return s, nil
		}
		if err != nil {
			return s, err
		}
		x, err := strconv.ParseFloat(rec[j], 64)
		if err != nil {
			return s, err
		}
		s.add(x)
	}
}

// loopParquet is the plain loop over the Parquet file: the column's pages,
// read as float64 slices.
func loopParquet(path, column string) (benchStats, error) {
	var s benchStats
	f, err := os.Open(path)
	if err != nil {
		return s, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return s, err
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true), parquet.ReadBufferSize(pqReadBuffer))
	if err != nil {
		return s, err
	}
	leaf, ok := pf.Schema().Lookup(column)
	if !ok {
		return s, errors.New("no column " + column)
	}
	buf := make([]float64, 1024)
	for _, rg := range pf.RowGroups() {
		pages := rg.ColumnChunks()[leaf.ColumnIndex].Pages()
		for {
			p, err := pages.ReadPage()
			if err == io.EOF {
				break
			}
			if err != nil {
				pages.Close()
				return s, err
			}
			r := p.Values().(parquet.DoubleReader)
			for {
				n, err := r.ReadDoubles(buf)
				for _, x := range buf[:n] {
					s.add(x)
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					pages.Close()
					return s, err
				}
			}
			parquet.Release(p)
		}
		pages.Close()
	}
	return s, nil
}

// scanStats is the same computation through Source.Scan.
func scanStats(src Source, column string) (benchStats, error) {
	var s benchStats
	err := src.Scan([]string{column}, func(row []Value) error {
		if row[0].Num {
			s.add(row[0].F)
		}
		return nil
	})
	return s, err
}

// scanHeap is scanStats that also returns the largest HeapInuse seen,
// sampled 64 times (ReadMemStats stops the world, so not in a timed run).
func scanHeap(src Source, column string, rows int) (benchStats, uint64, error) {
	runtime.GC()
	var s benchStats
	var ms runtime.MemStats
	var peak uint64
	every := max(rows/64, 1)
	err := src.Scan([]string{column}, func(row []Value) error {
		if row[0].Num {
			s.add(row[0].F)
		}
		if s.n%every == 0 {
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
	writeBenchFiles(b, csvPath, pqPath, rows)
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
			loop func(path, column string) (benchStats, error)
		}{
			{"csv", Source{Path: csvPath}, loopCSV},
			{"parquet", Source{Format: "parquet", Path: pqPath}, loopParquet},
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
				if got != want || got.n != rows {
					b.Fatalf("Scan computed n=%d sum=%v, the loop n=%d sum=%v", got.n, got.sum, want.n, want.sum)
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
