package dataset

import (
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/federa-dev/federa/internal/testutil"
)

// TestScanCSVSameAsLoad checks that a scan of every shipped file gives the
// numbers and labels LoadCSV gives, row for row, in the requested order.
func TestScanCSVSameAsLoad(t *testing.T) {
	for _, path := range shippedCSVs(t) {
		t.Run(filepath.Base(filepath.Dir(path))+"/"+filepath.Base(path), func(t *testing.T) {
			tab, err := LoadCSV(path, Options{Label: "label"})
			if err != nil {
				t.Fatal(err)
			}
			cols := append([]string{"label"}, tab.Features...)
			slices.Reverse(cols[1:])
			rows := scanAll(t, Source{Path: path}, cols)
			if len(rows) != tab.Rows() {
				t.Fatalf("%d rows, Load has %d", len(rows), tab.Rows())
			}
			nf := len(tab.Features)
			for i, r := range rows {
				if r[0].S != tab.Labels[i] || r[0].Num {
					t.Fatalf("row %d label %+v, Load has %q", i+1, r[0], tab.Labels[i])
				}
				for k, v := range r[1:] {
					if want := tab.X.At(i, nf-1-k); !v.Num || v.F != want {
						t.Fatalf("row %d %q = %+v, Load has %v", i+1, cols[k+1], v, want)
					}
				}
			}
		})
	}
}

func TestScanCSVCells(t *testing.T) {
	path := writeCSV(t, "x, y ,label\n 1.5 ,abc,a\n\n,-2e3,\"b, c\"\nNaN,+Inf,0x1p4\n")
	got := scanAll(t, Source{Path: path}, []string{"label", "y", "x", "x"})
	want := [][]Value{
		{{S: "a"}, {S: "abc"}, {S: "1.5", F: 1.5, Num: true}, {S: "1.5", F: 1.5, Num: true}},
		{{S: "b, c"}, {S: "-2e3", F: -2000, Num: true}, {}, {}},
		{{S: "0x1p4", F: 16, Num: true}, {S: "+Inf"}, {S: "NaN"}, {S: "NaN"}},
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("Scan = %+v\nwant %+v", got, want)
	}
	// No columns: one empty row per record, to count them.
	if n := len(scanAll(t, Source{Path: path}, nil)); n != 3 {
		t.Errorf("Scan(nil) gave %d rows, want 3", n)
	}
}

// TestParseNumberAgreesWithParseCell: a scan calls a cell a number exactly
// when LoadCSV would take it as a feature, and reads the same value.
func TestParseNumberAgreesWithParseCell(t *testing.T) {
	for _, s := range []string{
		"0", "-0", "1", "+1", "-1.5", ".5", "5.", "1e3", "1E-3", "0x1p-2", "0x10", "1_000", "0x_1p0",
		"", " ", "abc", "benign", "NaN", "nan", "-NaN", "Inf", "+Inf", "-inf", "infinity", "1e400", "-1e400",
		"1,5", "1.2.3", "--1", "+", "-", ".", "e5", "٣", "1e", "0x",
	} {
		c := strings.TrimSpace(s)
		f, ok := parseNumber(c)
		g, err := parseCell(s)
		if ok != (err == nil) || (ok && f != g) {
			t.Errorf("%q: parseNumber = %v, %v; parseCell = %v, %v", s, f, ok, g, err)
		}
	}
}

func TestScanErrors(t *testing.T) {
	path := writeCSV(t, "mean_radius,label\n1,a\n2,b,extra\n")
	tests := []struct {
		name    string
		columns []string
		line    int
		column  string
		want    string
		hint    string
	}{
		{"unknown", []string{"label", "radius"}, 1, "radius", "column not in the header", `; available columns: "mean_radius", "label"`},
		{"near miss", []string{"Mean_Radius"}, 1, "Mean_Radius", "column not in the header", `did you mean "mean_radius"?`},
		{"ragged row", []string{"label"}, 3, "", "wrong number of fields: expected 2 (as in the header on line 1), got 3", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := 0
			err := Source{Path: path}.Scan(tt.columns, func([]Value) error { rows++; return nil })
			var de *Error
			if !errors.As(err, &de) || de.Line != tt.line || de.Column != tt.column || !strings.Contains(de.Msg, tt.want) || !strings.Contains(de.Hint, tt.hint) {
				t.Fatalf("err = %#v; want line %d column %q msg %q hint %q", err, tt.line, tt.column, tt.want, tt.hint)
			}
			if de.Redacted().Hint != "" {
				t.Error("redacted error keeps the column list")
			}
		})
	}
	if err := (Source{Format: "idx", Path: path, Labels: path}).Scan([]string{"px9_9"}, nil); err == nil {
		t.Error("idx scan of a CSV file succeeded")
	}
}

// TestScanStopsOnFnError: fn's error comes back unchanged and no further
// row is read, whatever the format.
func TestScanStopsOnFnError(t *testing.T) {
	dir := t.TempDir()
	pq := filepath.Join(dir, "d.parquet")
	testutil.CSVToParquet(t, "../testdata/breast-cancer/us-boston.csv", pq, pqVariants[1])
	stop := errors.New("enough")
	for _, src := range []Source{
		{Path: "../testdata/breast-cancer/us-boston.csv"},
		{Format: "parquet", Path: pq},
		{Format: "idx", Path: writeFile(t, dir, "i", pair3Images), Labels: writeFile(t, dir, "l", pair3Labels)},
	} {
		for _, cols := range [][]string{{"label"}, {"label", "label"}} {
			calls := 0
			err := src.Scan(cols, func([]Value) error {
				calls++
				if calls == 2 {
					return stop
				}
				return nil
			})
			if err != stop || calls != 2 {
				t.Errorf("%s: Scan = %v after %d calls; want the fn's error after 2", src, err, calls)
			}
		}
	}
}

func TestScanIDX(t *testing.T) {
	dir := t.TempDir()
	src := Source{Format: "idx", Path: writeFile(t, dir, "i", pair3Images), Labels: writeFile(t, dir, "l", pair3Labels)}
	got := scanAll(t, src, []string{"label", "px1_2", "px0_0"})
	want := [][]Value{
		{{S: "2", F: 2, Num: true}, {S: "5", F: 5, Num: true}, {S: "0", F: 0, Num: true}},
		{{S: "0", F: 0, Num: true}, {S: "15", F: 15, Num: true}, {S: "10", F: 10, Num: true}},
		{{S: "2", F: 2, Num: true}, {S: "255", F: 255, Num: true}, {S: "20", F: 20, Num: true}},
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("Scan = %+v\nwant %+v", got, want)
	}
	named := src
	named.Classes = FashionMNISTClasses
	got = scanAll(t, named, []string{"label"})
	if !slices.EqualFunc(got, [][]Value{{{S: "Pullover"}}, {{S: "T-shirt/top"}}, {{S: "Pullover"}}}, slices.Equal) {
		t.Errorf("named labels = %+v", got)
	}

	// The label alone reads only the labels file: a truncated images file
	// does not matter to it, and does to a pixel.
	broken := src
	broken.Path = writeFile(t, dir, "short", pair3Images[:len(pair3Images)-1])
	if n := len(scanAll(t, broken, []string{"label"})); n != 3 {
		t.Errorf("label scan of a truncated images file gave %d rows", n)
	}
	err := broken.Scan([]string{"px0_0"}, func([]Value) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "truncated: the file ends in image 3 of the 3") {
		t.Errorf("pixel scan of a truncated images file: %v", err)
	}
	err = src.Scan([]string{"px9_9"}, nil)
	var de *Error
	if !errors.As(err, &de) || de.Column != "px9_9" || !strings.Contains(de.Hint, `"px0_0"`) {
		t.Errorf("unknown column: %#v", err)
	}
}

func TestValueText(t *testing.T) {
	for _, tt := range []struct {
		v    Value
		want string
	}{
		{Value{}, ""},
		{Value{S: "1.50", F: 1.5, Num: true}, "1.50"},
		{Value{F: 3, Num: true}, "3"},
		{Value{F: -12345678, Num: true}, "-12345678"},
		{Value{F: 0.1, Num: true}, "0.1"},
		{Value{F: 1e-7, Num: true}, "1e-07"},
		{Value{F: 1e300, Num: true}, "1e+300"},
		{Value{S: "NaN"}, "NaN"},
	} {
		if got := tt.v.Text(); got != tt.want {
			t.Errorf("%+v.Text() = %q, want %q", tt.v, got, tt.want)
		}
	}
	if got := formatNumber(math.Copysign(0, -1)); got != "0" {
		t.Errorf("formatNumber(-0) = %q", got)
	}
}

// TestScanAllocations: a scan of a numeric Parquet column allocates per
// page, not per row, and a CSV scan once per record (encoding/csv's line).
func TestScanAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: writes a 100 000-row file")
	}
	const rows = 100_000
	dir := t.TempDir()
	csvPath, pqPath := filepath.Join(dir, "d.csv"), filepath.Join(dir, "d.parquet")
	testutil.WriteBenchFiles(t, csvPath, pqPath, rows)
	for _, tt := range []struct {
		src Source
		max float64
	}{
		{Source{Format: "parquet", Path: pqPath}, rows / 100},
		{Source{Path: csvPath}, rows * 1.01},
	} {
		allocs := testing.AllocsPerRun(1, func() {
			var sum float64
			if err := tt.src.Scan([]string{"x", "label"}, func(row []Value) error {
				sum += row[0].F
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > tt.max {
			t.Errorf("%s: %.0f allocations for %d rows, want at most %.0f", tt.src, allocs, rows, tt.max)
		}
	}
}
