package dataset

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"gonum.org/v1/gonum/mat"

	"github.com/federa-dev/federa/internal/testutil"
)

var pqVariants = []testutil.ParquetVariant{
	{Name: "plain"},
	{Name: "optional-dict-snappy-small-groups", Optional: true, Dict: true, Snappy: true, RowGroup: 50, PageBytes: 512},
	{Name: "ints-small-pages", Ints: true, RowGroup: 70, PageBytes: 256},
}

// shippedCSVs are the committed CSV files the typed formats are checked against.
func shippedCSVs(t testing.TB) []string {
	t.Helper()
	var paths []string
	for _, d := range []string{"breast-cancer", "digits-skew"} {
		m, err := filepath.Glob(filepath.Join("../testdata", d, "*.csv"))
		if err != nil || len(m) == 0 {
			t.Fatalf("no CSV files in testdata/%s: %v", d, err)
		}
		paths = append(paths, m...)
	}
	return paths
}

// scanAll scans every column of src into rows of Values, copied.
func scanAll(t testing.TB, src Source, columns []string) [][]Value {
	t.Helper()
	var out [][]Value
	if err := src.Scan(columns, func(row []Value) error {
		out = append(out, slices.Clone(row))
		return nil
	}); err != nil {
		t.Fatalf("Scan %s: %v", src, err)
	}
	return out
}

// checkSameAsCSV asserts that src holds exactly the data of the CSV file:
// the same header, the same Table from Load, the same numbers and label
// texts from Scan, the same label counts.
func checkSameAsCSV(t *testing.T, src Source, csvPath string) {
	t.Helper()
	csvSrc := Source{Path: csvPath}
	wantHeader, err := csvSrc.Header()
	if err != nil {
		t.Fatal(err)
	}
	header, err := src.Header()
	if err != nil || !slices.Equal(header, wantHeader) {
		t.Fatalf("Header = %q, %v\nwant %q", header, err, wantHeader)
	}

	want, err := LoadCSV(csvPath, Options{Label: "label"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.Load(Options{Label: "label"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !slices.Equal(got.Features, want.Features) || !slices.Equal(got.Labels, want.Labels) {
		t.Fatalf("Load: features %q labels %q…\nwant %q labels %q…", got.Features, got.Labels[:3], want.Features, want.Labels[:3])
	}
	if !mat.Equal(got.X, want.X) {
		t.Fatalf("Load: X differs from the CSV's")
	}

	// Scan every column, in reverse order to check the order is the one asked for.
	cols := slices.Clone(wantHeader)
	slices.Reverse(cols)
	wantRows, gotRows := scanAll(t, csvSrc, cols), scanAll(t, src, cols)
	if len(gotRows) != len(wantRows) {
		t.Fatalf("Scan: %d rows, want %d", len(gotRows), len(wantRows))
	}
	for i := range wantRows {
		for k, w := range wantRows[i] {
			g := gotRows[i][k]
			if g.Num != w.Num || g.F != w.F || (!w.Num && g.S != w.S) {
				t.Fatalf("Scan row %d column %q = %+v, the CSV has %+v", i+1, cols[k], g, w)
			}
		}
	}
	// ScanBatches gives the same cells.
	checkBatchesSameAsScan(t, src, cols)
	// The numbers Scan gives are the ones Load gives.
	for i, r := range scanAll(t, src, want.Features) {
		for k, v := range r {
			if v.F != want.X.At(i, k) {
				t.Fatalf("Scan row %d %q = %v, Load has %v", i+1, want.Features[k], v.F, want.X.At(i, k))
			}
		}
	}

	// Each column alone (the analytics case, which has a path of its own).
	for k, c := range want.Features {
		col := scanAll(t, src, []string{c})
		for i, r := range col {
			if !r[0].Num || r[0].F != want.X.At(i, k) {
				t.Fatalf("Scan(%q) row %d = %+v, Load has %v", c, i+1, r[0], want.X.At(i, k))
			}
		}
		if len(col) != want.Rows() {
			t.Fatalf("Scan(%q): %d rows, want %d", c, len(col), want.Rows())
		}
	}

	wantCounts, _, err := csvSrc.ValueCounts("label", 0)
	if err != nil {
		t.Fatal(err)
	}
	counts, truncated, err := src.ValueCounts("label", 0)
	if err != nil || truncated || !mapsEqual(counts, wantCounts) {
		t.Fatalf("ValueCounts = %v, %v, %v; want %v", counts, truncated, err, wantCounts)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestParquetSameAsCSV(t *testing.T) {
	dir := t.TempDir()
	for _, v := range pqVariants {
		for _, csvPath := range shippedCSVs(t) {
			name := filepath.Base(filepath.Dir(csvPath)) + "/" + filepath.Base(csvPath)
			t.Run(v.Name+"/"+name, func(t *testing.T) {
				out := filepath.Join(dir, v.Name+"-"+filepath.Base(filepath.Dir(csvPath))+"-"+strings.TrimSuffix(filepath.Base(csvPath), ".csv")+".parquet")
				testutil.CSVToParquet(t, csvPath, out, v)
				checkSameAsCSV(t, Source{Format: "parquet", Path: out}, csvPath)
			})
		}
	}
}

// TestParquetTypes checks each supported column type's Values, nulls and
// the text ValueCounts gives them.
func TestParquetTypes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "types.parquet")
	names := []string{"b", "i32", "u32", "i64", "big", "f32", "f64", "s", "opt"}
	nodes := []parquet.Node{
		parquet.Leaf(parquet.BooleanType), parquet.Int(32), parquet.Uint(32), parquet.Int(64), parquet.Int(64),
		parquet.Leaf(parquet.FloatType), parquet.Leaf(parquet.DoubleType), parquet.String(), parquet.Optional(parquet.Leaf(parquet.DoubleType)),
	}
	rows := [][]parquet.Value{
		{parquet.BooleanValue(true), parquet.Int32Value(-7), parquet.Int32Value(-1), parquet.Int64Value(1 << 40), parquet.Int64Value(1<<62 + 1),
			parquet.FloatValue(0.5), parquet.DoubleValue(0.1), parquet.ByteArrayValue([]byte("héllo")), parquet.DoubleValue(2.5)},
		{parquet.BooleanValue(false), parquet.Int32Value(3), parquet.Int32Value(3), parquet.Int64Value(-2), parquet.Int64Value(-(1<<62 + 1)),
			parquet.FloatValue(-1.25), parquet.DoubleValue(math.NaN()), parquet.ByteArrayValue(nil), parquet.NullValue()},
	}
	testutil.WriteParquet(t, path, names, nodes, rows)
	src := Source{Format: "parquet", Path: path}
	got := scanAll(t, src, names)
	want := [][]Value{
		{{S: "true", F: 1, Num: true}, {F: -7, Num: true}, {F: math.MaxUint32, Num: true}, {F: 1 << 40, Num: true},
			{S: "4611686018427387905", F: 1<<62 + 1, Num: true}, {F: 0.5, Num: true}, {F: 0.1, Num: true}, {S: "héllo"}, {F: 2.5, Num: true}},
		{{S: "false", Num: true}, {F: 3, Num: true}, {F: 3, Num: true}, {F: -2, Num: true},
			{S: "-4611686018427387905", F: -(1<<62 + 1), Num: true}, {F: -1.25, Num: true}, {S: "NaN"}, {}, {}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		for k := range want[i] {
			if got[i][k] != want[i][k] {
				t.Errorf("row %d column %q = %+v, want %+v", i+1, names[k], got[i][k], want[i][k])
			}
		}
	}
	for col, wantCounts := range map[string]map[string]int{
		"b":   {"true": 1, "false": 1},
		"u32": {"4294967295": 1, "3": 1},
		"big": {"4611686018427387905": 1, "-4611686018427387905": 1},
		"f64": {"0.1": 1, "NaN": 1},
		"opt": {"2.5": 1, "": 1},
	} {
		counts, _, err := src.ValueCounts(col, 0)
		if err != nil || !mapsEqual(counts, wantCounts) {
			t.Errorf("ValueCounts(%q) = %v, %v; want %v", col, counts, err, wantCounts)
		}
	}
}

// weirdRow has one column of each kind a site cannot use as a feature.
type weirdRow struct {
	X     float64  `parquet:"x"`
	Price int32    `parquet:"price,decimal(2:9)"`
	Day   int32    `parquet:"day,date"`
	Tags  []string `parquet:"tags,list"`
	Where struct {
		City string `parquet:"city"`
	} `parquet:"where"`
	Opt   *float64 `parquet:"opt,optional"`
	Label string   `parquet:"label"`
}

func TestParquetBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.parquet")
	testutil.CSVToParquet(t, "../testdata/breast-cancer/sg-singapore.csv", good, pqVariants[0])
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	weird := filepath.Join(dir, "weird.parquet")
	two := 2.0
	rows := []weirdRow{{X: 1, Opt: &two, Label: "a"}, {X: 2, Label: "b"}}
	if err := parquet.WriteFile(weird, rows); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		data    []byte // written as the file, if not nil
		path    string // else this file
		opts    Options
		scan    []string // Scan these instead of Load
		want    string
		column  string
		hasHint string
	}{
		{name: "empty", data: []byte{}, want: "too short to be a Parquet file (0 bytes"},
		{name: "csv", data: []byte("a,label\n1,x\n2,y\n"), want: `not a Parquet file: it does not start with "PAR1"`},
		{name: "truncated by half", data: goodBytes[:len(goodBytes)/2], want: `truncated or not a Parquet file: it does not end with "PAR1"`},
		{name: "last byte cut", data: goodBytes[:len(goodBytes)-1], want: `truncated or not a Parquet file`},
		{name: "footer length too large", data: withFooterLen(goodBytes, 1<<31), want: "corrupt footer: it claims 2147483648 bytes"},
		{name: "data cut, footer kept", data: slices.Concat(goodBytes[:4], goodBytes[len(goodBytes)/2:]), want: "lies outside the"},
		{name: "missing label column", path: good, opts: Options{Label: "diagnosis"}, want: "label column not in the header", column: "diagnosis", hasHint: `available columns: "mean_radius"`},
		{name: "missing feature column", path: good, opts: Options{Label: "label", Features: []string{"Mean_Radius"}}, want: "requested feature column not in the header", column: "Mean_Radius", hasHint: `did you mean "mean_radius"?`},
		{name: "missing scan column", path: good, scan: []string{"mean_radius", "radius"}, want: "column not in the header", column: "radius", hasHint: "available columns"},
		{name: "string feature", path: good, opts: Options{Label: "mean_radius", Features: []string{"label"}}, want: "is a STRING column; a feature must be numeric", column: "label"},
		{name: "decimal feature", path: weird, opts: Options{Label: "label", Features: []string{"x", "price"}}, want: "has type DECIMAL(9,2), which is not supported", column: "price"},
		{name: "date feature", path: weird, opts: Options{Label: "label", Features: []string{"day"}}, want: "has type DATE, which is not supported", column: "day"},
		{name: "list scan", path: weird, scan: []string{"tags"}, want: "is a list column", column: "tags"},
		{name: "group scan", path: weird, scan: []string{"where"}, want: "is a nested group", column: "where"},
		{name: "null feature", path: weird, opts: Options{Label: "label", Features: []string{"x", "opt"}}, want: "row 2: null; every feature needs a number", column: "opt"},
		{name: "directory", path: dir, want: "is a directory, not a Parquet file"},
		{name: "no such file", path: filepath.Join(dir, "nope.parquet"), want: "file not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if tt.data != nil {
				path = filepath.Join(t.TempDir(), "bad.parquet")
				if err := os.WriteFile(path, tt.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			src := Source{Format: "parquet", Path: path}
			var err error
			if tt.scan != nil {
				err = src.Scan(tt.scan, func([]Value) error { return nil })
			} else {
				_, err = src.Load(tt.opts)
			}
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("err = %v (%T), want an *Error", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) || de.Path != path || de.Column != tt.column || !strings.Contains(de.Hint, tt.hasHint) {
				t.Fatalf("err = %q (path %q, column %q, hint %q)\nwant %q, path %q, column %q, hint containing %q",
					err, de.Path, de.Column, de.Hint, tt.want, path, tt.column, tt.hasHint)
			}
			if strings.Contains(de.Redacted().Error(), dir) {
				t.Errorf("redacted error %q names the directory", de.Redacted())
			}
		})
	}
}

// withFooterLen returns a copy of a Parquet file claiming a footer of n bytes.
func withFooterLen(b []byte, n uint32) []byte {
	c := slices.Clone(b)
	i := len(c) - 8
	c[i], c[i+1], c[i+2], c[i+3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	return c
}

// TestParquetHostileInput reads random bytes, random bytes framed as
// Parquet, and a valid file with single bytes corrupted or cut short: each
// must give an *Error or (when a flip only changed a value) a result, never
// a panic or a hang.
func TestParquetHostileInput(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.parquet")
	testutil.CSVToParquet(t, "../testdata/breast-cancer/sg-singapore.csv", good, pqVariants[1])
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var inputs [][]byte
	for range 50 {
		b := make([]byte, rng.IntN(4096))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		inputs = append(inputs, b)
		if len(b) >= 12 { // framed: passes the magic checks
			f := slices.Clone(b)
			copy(f, "PAR1")
			copy(f[len(f)-4:], "PAR1")
			n := uint32(rng.IntN(len(f) - 11))
			f[len(f)-8], f[len(f)-7], f[len(f)-6], f[len(f)-5] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
			inputs = append(inputs, f)
		}
	}
	for range 300 {
		b := slices.Clone(goodBytes)
		b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		inputs = append(inputs, b)
	}
	for range 30 {
		b := slices.Clone(goodBytes[:rng.IntN(len(goodBytes))])
		inputs = append(inputs, append(b, goodBytes[len(goodBytes)-8:]...)) // footer magic kept
	}
	path := filepath.Join(dir, "hostile.parquet")
	for i, b := range inputs {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		src := Source{Format: "parquet", Path: path}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("input %d (%d bytes): panic: %v", i, len(b), r)
				}
			}()
			for _, err := range []error{
				loadErr(src.Load(Options{Label: "label"})),
				src.Scan([]string{"mean_radius", "label"}, func([]Value) error { return nil }),
				countErr(src.ValueCounts("label", 10)),
			} {
				var de *Error
				if err != nil && !errors.As(err, &de) {
					t.Fatalf("input %d: err = %v (%T), want an *Error", i, err, err)
				}
			}
		}()
	}
}

func loadErr(_ *Table, err error) error                  { return err }
func countErr(_ map[string]int, _ bool, err error) error { return err }

// TestParquetWide loads a file wide enough that a scan decodes it in
// batches smaller than a row group (as a load of 784 pixel columns does).
func TestParquetWide(t *testing.T) {
	const cols, rows = 1500, 200
	names := make([]string, cols)
	nodes := make([]parquet.Node, cols)
	for j := range cols - 1 {
		names[j], nodes[j] = "c"+strconv.Itoa(j), parquet.Int(32)
	}
	names[cols-1], nodes[cols-1] = "label", parquet.String()
	data := make([][]parquet.Value, rows)
	for i := range data {
		data[i] = make([]parquet.Value, cols)
		for j := range cols - 1 {
			data[i][j] = parquet.Int32Value(int32(i*cols + j))
		}
		data[i][cols-1] = parquet.ByteArrayValue([]byte{'a' + byte(i%3)})
	}
	path := filepath.Join(t.TempDir(), "wide.parquet")
	testutil.WriteParquet(t, path, names, nodes, data, parquet.MaxRowsPerRowGroup(150))
	if b := batchRows(cols); b >= 150 {
		t.Fatalf("batch of %d rows: the test needs batches smaller than a row group", b)
	}
	tab, err := Source{Format: "parquet", Path: path}.Load(Options{Label: "label"})
	if err != nil {
		t.Fatal(err)
	}
	if r, c := tab.X.Dims(); r != rows || c != cols-1 {
		t.Fatalf("X is %d×%d", r, c)
	}
	for i := range rows {
		for j := range cols - 1 {
			if got := tab.X.At(i, j); got != float64(i*cols+j) {
				t.Fatalf("X[%d][%d] = %v, want %d", i, j, got, i*cols+j)
			}
		}
		if want := string(rune('a' + i%3)); tab.Labels[i] != want {
			t.Fatalf("label %d = %q, want %q", i, tab.Labels[i], want)
		}
	}
}
