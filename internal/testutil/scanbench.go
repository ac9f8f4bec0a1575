package testutil

import (
	"bufio"
	"encoding/csv"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// Scan benchmarks (dataset's BenchmarkScan, site's BenchmarkQuery): the
// generated files, and the plain Go loops a scan or a query is measured
// against in the same run: count, sum, sum of squares and a histogram of
// one column, read the fastest straightforward way.

const BenchBins = 32

// BenchStats is what the analytics compute.
type BenchStats struct {
	N          int
	Sum, SumSq float64
	Hist       [BenchBins]int
}

func (s *BenchStats) Add(x float64) {
	s.N++
	s.Sum += x
	s.SumSq += x * x
	b := int(x * (BenchBins / 100.0)) // bins over [0, 100)
	if b < 0 {
		b = 0
	} else if b >= BenchBins {
		b = BenchBins - 1
	}
	s.Hist[b]++
}

// BenchRow is a row of the generated files; the benchmark reads x.
type BenchRow struct {
	ID    int64   `parquet:"id"`
	X     float64 `parquet:"x"`
	Y     float64 `parquet:"y"`
	Z     float64 `parquet:"z"`
	Label string  `parquet:"label,dict"`
}

// WriteBenchFiles writes the same rows as CSV and as Parquet (row groups
// of a million rows, uncompressed: decoding rather than decompression is
// then what a scan costs). The Parquet numbers are the CSV text parsed, so
// both give the same sums exactly.
func WriteBenchFiles(tb testing.TB, csvPath, pqPath string, rows int) {
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
	pw := parquet.NewGenericWriter[BenchRow](pf, parquet.MaxRowsPerRowGroup(1<<20))
	rng := rand.New(rand.NewPCG(7, 11))
	classes := []string{"benign", "malignant", "unknown"}
	cw.WriteString("id,x,y,z,label\n")
	batch := make([]BenchRow, 0, 4096)
	var line []byte
	for i := range rows {
		r := BenchRow{ID: int64(i), Label: classes[rng.IntN(len(classes))]}
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

// LoopCSV is the plain loop over the CSV file.
func LoopCSV(path, column string) (BenchStats, error) {
	var s BenchStats
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
		s.Add(x)
	}
}

// LoopParquet is the plain loop over the Parquet file: the column's pages,
// read as float64 slices.
func LoopParquet(path, column string) (BenchStats, error) {
	var s BenchStats
	f, err := os.Open(path)
	if err != nil {
		return s, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return s, err
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true), parquet.ReadBufferSize(32<<10))
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
					s.Add(x)
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

// BenchRows is the rows a scan benchmark generates: FEDERA_BENCH_ROWS, or
// 200 000.
func BenchRows(b *testing.B) int {
	n := 200_000
	if v := os.Getenv("FEDERA_BENCH_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 4 {
			b.Fatalf("FEDERA_BENCH_ROWS=%q: want a number of rows, at least 4", v)
		}
	}
	return n
}

// PairedRatio times f (reported as name-rows/s) against the plain loop
// (loop-rows/s) over rows rows: each iteration runs both back to back, in
// alternating order, and ratio is the median of the iterations' loop time
// over f's time (above 1, f is faster), which a burst of load on a shared
// machine moves less than the totals.
func PairedRatio(b *testing.B, rows int, name string, f, loop func() error) {
	var fT, loopT time.Duration
	ratios := make([]float64, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		var tf, tl time.Duration
		for k := range 2 {
			start := time.Now()
			var err error
			if (i+k)%2 == 0 {
				err = f()
				tf = time.Since(start)
			} else {
				err = loop()
				tl = time.Since(start)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		fT, loopT = fT+tf, loopT+tl
		ratios = append(ratios, tl.Seconds()/tf.Seconds())
	}
	b.StopTimer()
	total := float64(rows) * float64(b.N)
	b.ReportMetric(total/fT.Seconds(), name+"-rows/s")
	b.ReportMetric(total/loopT.Seconds(), "loop-rows/s")
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "ratio")
}
