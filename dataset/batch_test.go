package dataset

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/federa-dev/federa/internal/testutil"
)

// batchForms counts how a scan's batches held each column.
type batchForms struct{ numbers, cells []int }

// scanBatchRows reads src through ScanBatches into rows of Values, checking
// every batch keeps Column's promises: Len rows in every slice, numbers
// finite, a null's number 0, and either numbers or cells, never both.
func scanBatchRows(t testing.TB, src Source, columns []string) ([][]Value, batchForms) {
	t.Helper()
	var out [][]Value
	forms := batchForms{numbers: make([]int, len(columns)), cells: make([]int, len(columns))}
	err := src.ScanBatches(columns, func(b *Batch) error {
		if b.Len < 1 || len(b.Cols) != len(columns) {
			return fmt.Errorf("a batch of %d rows and %d columns for %d columns", b.Len, len(b.Cols), len(columns))
		}
		for k, c := range b.Cols {
			if c.V != nil {
				forms.cells[k]++
				if len(c.V) != b.Len || c.F != nil || c.Null != nil || c.S != nil {
					return fmt.Errorf("column %q as cells: %d cells for %d rows, or numbers too", columns[k], len(c.V), b.Len)
				}
				continue
			}
			forms.numbers[k]++
			if len(c.F) != b.Len || (c.Null != nil && len(c.Null) != b.Len) || (c.S != nil && len(c.S) != b.Len) {
				return fmt.Errorf("column %q as numbers: %d numbers, %d nulls, %d texts for %d rows", columns[k], len(c.F), len(c.Null), len(c.S), b.Len)
			}
			for i, x := range c.F {
				null := c.Null != nil && c.Null[i]
				if x-x != 0 || (null && x != 0) {
					return fmt.Errorf("column %q row %d: number %v (null %v)", columns[k], i, x, null)
				}
			}
		}
		for i := range b.Len {
			row := make([]Value, len(columns))
			for k := range b.Cols {
				row[k] = b.Cols[k].Value(i)
			}
			out = append(out, row)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ScanBatches %s: %v", src, err)
	}
	return out, forms
}

// checkBatchesSameAsScan asserts ScanBatches gives exactly Scan's cells.
func checkBatchesSameAsScan(t *testing.T, src Source, columns []string) batchForms {
	t.Helper()
	want := scanAll(t, src, columns)
	got, forms := scanBatchRows(t, src, columns)
	if len(got) != len(want) {
		t.Fatalf("%s: ScanBatches gave %d rows, Scan %d", src, len(got), len(want))
	}
	for i := range want {
		for k := range want[i] {
			if got[i][k] != want[i][k] {
				t.Fatalf("%s: ScanBatches row %d column %q = %+v, Scan %+v", src, i+1, columns[k], got[i][k], want[i][k])
			}
		}
	}
	return forms
}

// TestScanBatchesSameAsScan: on the shipped files in every format and
// Parquet shape, ScanBatches gives Scan's cells, and the numeric columns
// come as numbers in every batch (the columnar path, not Values).
func TestScanBatchesSameAsScan(t *testing.T) {
	dir := t.TempDir()
	for _, csvPath := range shippedCSVs(t) {
		header, err := ReadHeader(csvPath)
		if err != nil {
			t.Fatal(err)
		}
		features := header[:len(header)-1] // the label is last
		srcs := []Source{{Path: csvPath}}
		for _, v := range pqVariants {
			out := filepath.Join(dir, fmt.Sprintf("%s-%s-%s.parquet", v.Name, filepath.Base(filepath.Dir(csvPath)), filepath.Base(csvPath)))
			testutil.CSVToParquet(t, csvPath, out, v)
			srcs = append(srcs, Source{Format: "parquet", Path: out})
		}
		for _, src := range srcs {
			t.Run(src.String(), func(t *testing.T) {
				cols := slices.Concat([]string{"label"}, features, []string{features[0]})
				forms := checkBatchesSameAsScan(t, src, cols)
				for k, c := range cols {
					if c != "label" && forms.cells[k] > 0 {
						t.Errorf("column %q: %d batches as cells, %d as numbers; a numeric column comes as numbers", c, forms.cells[k], forms.numbers[k])
					}
				}
				checkBatchesSameAsScan(t, src, features[:1])
				// No columns (a count): every row, as batches of none.
				checkBatchesSameAsScan(t, src, nil)
			})
		}
	}
	idx := Source{Format: "idx", Path: writeFile(t, dir, "i", pair3Images), Labels: writeFile(t, dir, "l", pair3Labels)}
	checkBatchesSameAsScan(t, idx, []string{"label", "px1_2", "px0_0"})
	checkBatchesSameAsScan(t, idx, nil)
}

// TestScanBatchesParquetCells writes columns of every numeric type, plain
// and dictionary-encoded, required and optional, in pages far smaller than
// a batch, with the values a batch of numbers cannot hold (NaN, infinities,
// integers beyond 2^53) here and there: every cell must be the one the
// file holds, through Scan and through ScanBatches, and the batches
// without such a value must come as numbers.
func TestScanBatchesParquetCells(t *testing.T) {
	const rows = 5000
	rng := rand.New(rand.NewPCG(3, 4))
	type col struct {
		name string
		node parquet.Node
		gen  func(i int) (parquet.Value, Value)
	}
	rare := func() bool { return rng.IntN(1500) == 0 } // a few a column: most batches stay numbers
	double := func(i int) (parquet.Value, Value) {
		x := math.Round(rng.NormFloat64()*1e4) / 100
		if rare() {
			x = []float64{math.NaN(), math.Inf(1), math.Inf(-1)}[rng.IntN(3)]
		}
		return parquet.DoubleValue(x), floatValue(x)
	}
	nullable := func(gen func(int) (parquet.Value, Value)) func(int) (parquet.Value, Value) {
		return func(i int) (parquet.Value, Value) {
			if rng.IntN(7) == 0 {
				return parquet.NullValue(), Value{}
			}
			return gen(i)
		}
	}
	dict := func(n parquet.Node) parquet.Node { return parquet.Encoded(n, &parquet.RLEDictionary) }
	cols := []col{
		{"d", parquet.Leaf(parquet.DoubleType), double},
		{"d_opt", parquet.Optional(parquet.Leaf(parquet.DoubleType)), nullable(double)},
		{"d_dict_opt", parquet.Optional(dict(parquet.Leaf(parquet.DoubleType))), nullable(func(int) (parquet.Value, Value) {
			x := float64(rng.IntN(50)) / 4
			if rare() {
				x = math.NaN()
			}
			return parquet.DoubleValue(x), floatValue(x)
		})},
		{"f32_opt", parquet.Optional(parquet.Leaf(parquet.FloatType)), nullable(func(int) (parquet.Value, Value) {
			x := float32(rng.NormFloat64())
			if rare() {
				x = float32(math.Inf(1))
			}
			return parquet.FloatValue(x), floatValue(float64(x))
		})},
		{"i32", parquet.Int(32), func(int) (parquet.Value, Value) {
			x := int32(rng.Uint32())
			return parquet.Int32Value(x), Value{F: float64(x), Num: true}
		}},
		{"u32_dict", dict(parquet.Uint(32)), func(int) (parquet.Value, Value) {
			x := uint32(rng.IntN(20)) + math.MaxUint32 - 20
			return parquet.Int32Value(int32(x)), Value{F: float64(x), Num: true}
		}},
		{"i64_opt", parquet.Optional(parquet.Int(64)), nullable(func(int) (parquet.Value, Value) {
			x := rng.Int64N(1<<40) - 1<<39
			if rare() {
				x = exactInt + 1
			}
			return parquet.Int64Value(x), intValue(x)
		})},
		{"i64_dict", dict(parquet.Int(64)), func(int) (parquet.Value, Value) {
			x := []int64{-3, 0, 5, 1 << 60}[rng.IntN(4)]
			if x == 1<<60 && !rare() {
				x = 7
			}
			return parquet.Int64Value(x), intValue(x)
		}},
		{"u64", parquet.Uint(64), func(int) (parquet.Value, Value) {
			x := rng.Uint64N(1 << 50)
			if rare() {
				x = math.MaxUint64
			}
			return parquet.Int64Value(int64(x)), uintValue(x)
		}},
		{"s", parquet.Optional(parquet.String()), nullable(func(i int) (parquet.Value, Value) {
			s := "v" + strconv.Itoa(i%5)
			return parquet.ByteArrayValue([]byte(s)), Value{S: s}
		})},
		{"s_dict", parquet.Optional(dict(parquet.String())), nullable(func(int) (parquet.Value, Value) {
			s := []string{"benign", "malignant", "", "unknown"}[rng.IntN(4)]
			return parquet.ByteArrayValue([]byte(s)), Value{S: s}
		})},
		{"b", parquet.Leaf(parquet.BooleanType), func(i int) (parquet.Value, Value) {
			if i%3 == 0 {
				return parquet.BooleanValue(true), Value{S: "true", F: 1, Num: true}
			}
			return parquet.BooleanValue(false), Value{S: "false", Num: true}
		}},
	}
	names := make([]string, len(cols))
	nodes := make([]parquet.Node, len(cols))
	for j, c := range cols {
		names[j], nodes[j] = c.name, c.node
	}
	data := make([][]parquet.Value, rows)
	want := make([][]Value, rows)
	for i := range rows {
		data[i], want[i] = make([]parquet.Value, len(cols)), make([]Value, len(cols))
		for j, c := range cols {
			data[i][j], want[i][j] = c.gen(i)
		}
	}
	// Pages far smaller than a batch (rows straddle them), and the
	// default, where a whole batch lies in one page.
	for _, pageBytes := range []int{700, 0} {
		t.Run(fmt.Sprintf("page-bytes=%d", pageBytes), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cells.parquet")
			opts := []parquet.WriterOption{parquet.MaxRowsPerRowGroup(1700)}
			if pageBytes > 0 {
				opts = append(opts, parquet.PageBufferSize(pageBytes))
			}
			testutil.WriteParquet(t, path, names, nodes, data, opts...)
			checkParquetCells(t, Source{Format: "parquet", Path: path}, names, want)
		})
	}
}

// checkParquetCells checks Scan and ScanBatches give the cells want, in
// every column order, and that the numeric columns come as numbers.
func checkParquetCells(t *testing.T, src Source, names []string, want [][]Value) {
	rows := len(want)
	check := func(how string, got [][]Value, order []string) {
		t.Helper()
		if len(got) != rows {
			t.Fatalf("%s: %d rows, want %d", how, len(got), rows)
		}
		for i := range rows {
			for k, name := range order {
				if w := want[i][slices.Index(names, name)]; got[i][k] != w {
					t.Fatalf("%s: row %d column %q = %+v, the file holds %+v", how, i+1, name, got[i][k], w)
				}
			}
		}
	}
	reversed := slices.Clone(names)
	slices.Reverse(reversed)
	for _, order := range [][]string{names, reversed} {
		check("Scan", scanAll(t, src, order), order)
		got, forms := scanBatchRows(t, src, order)
		check("ScanBatches", got, order)
		for k, name := range order {
			numeric := !strings.HasPrefix(name, "s") && name != "b"
			if numeric && forms.numbers[k] == 0 || !numeric && forms.numbers[k] > 0 {
				t.Errorf("column %q: %d batches as numbers, %d as cells", name, forms.numbers[k], forms.cells[k])
			}
		}
	}
	for _, name := range names { // each column alone: Scan's own loop for one column
		check("Scan", scanAll(t, src, []string{name}), []string{name})
		got, _ := scanBatchRows(t, src, []string{name})
		check("ScanBatches", got, []string{name})
	}
}

// TestScanBatchesStopsOnFnError: fn's error comes back unchanged and no
// further batch is read, whatever the format.
func TestScanBatchesStopsOnFnError(t *testing.T) {
	dir := t.TempDir()
	csvPath, pq := filepath.Join(dir, "d.csv"), filepath.Join(dir, "d.parquet")
	testutil.WriteBenchFiles(t, csvPath, pq, 5000)
	stop := errors.New("enough")
	for _, src := range []Source{{Path: csvPath}, {Format: "parquet", Path: pq}} {
		calls := 0
		err := src.ScanBatches([]string{"x", "label"}, func(*Batch) error {
			calls++
			if calls == 2 {
				return stop
			}
			return nil
		})
		if err != stop || calls != 2 {
			t.Errorf("%s: ScanBatches = %v after %d calls; want the fn's error after 2", src, err, calls)
		}
	}
}
