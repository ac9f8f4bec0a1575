package dataset

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/federa-dev/federa/internal/testutil"
)

// FuzzParquet feeds arbitrary bytes to every way a site reads a Parquet
// file: Header, Load, Scan and ScanBatches (the batch path the typed
// readers take). Nothing may panic; every refusal is a *dataset.Error
// naming the file; a file Scan reads gives the same rows through
// ScanBatches; a Table Load returns has finite numbers only.
func FuzzParquet(f *testing.F) {
	dir := f.TempDir()
	csvPath := filepath.Join(dir, "small.csv")
	if err := os.WriteFile(csvPath, []byte("x,y,label\n1.5,2,a\n-3,4,b\n5,0.25,a\n7,8,b\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	for i, v := range pqVariants {
		p := filepath.Join(dir, "seed"+string(rune('0'+i))+".parquet")
		testutil.CSVToParquet(f, csvPath, p, v)
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	two := 2.0
	weird := filepath.Join(dir, "weird.parquet")
	if err := parquet.WriteFile(weird, []weirdRow{{X: 1, Opt: &two, Label: "a"}, {X: 2, Label: "b"}}); err != nil {
		f.Fatal(err)
	}
	if b, err := os.ReadFile(weird); err == nil {
		f.Add(b)
	}
	f.Add([]byte("PAR1PAR1"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "fuzz.parquet")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		src := Source{Format: "parquet", Path: p}
		named := func(what string, err error) {
			t.Helper()
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("%s: error %T %q is not a *dataset.Error", what, err, err)
			}
			if de.Path != p {
				t.Fatalf("%s: error %q names %q, not the file", what, err, de.Path)
			}
		}
		header, err := src.Header()
		if err != nil {
			named("Header", err)
			return
		}
		var rows [][]Value
		scanErr := src.Scan(header, func(row []Value) error {
			rows = append(rows, append([]Value(nil), row...))
			return nil
		})
		var batched [][]Value
		batchErr := src.ScanBatches(header, func(bt *Batch) error {
			if bt.Len < 1 || len(bt.Cols) != len(header) {
				t.Fatalf("batch of %d rows and %d columns for %d requested", bt.Len, len(bt.Cols), len(header))
			}
			for i := range bt.Len {
				row := make([]Value, len(header))
				for k := range bt.Cols {
					row[k] = bt.Cols[k].Value(i)
				}
				batched = append(batched, row)
			}
			return nil
		})
		if scanErr != nil {
			named("Scan", scanErr)
		}
		if batchErr != nil {
			named("ScanBatches", batchErr)
		}
		if (scanErr == nil) != (batchErr == nil) {
			t.Fatalf("Scan: %v; ScanBatches: %v: the two paths disagree", scanErr, batchErr)
		}
		if scanErr == nil {
			if len(rows) != len(batched) {
				t.Fatalf("Scan gave %d rows, ScanBatches %d", len(rows), len(batched))
			}
			for i := range rows {
				for k := range rows[i] {
					a, c := rows[i][k], batched[i][k]
					if a.Num != c.Num || a.S != c.S || (a.Num && a.F != c.F) {
						t.Fatalf("row %d column %q: Scan %+v, ScanBatches %+v", i, header[k], a, c)
					}
				}
			}
		}
		if len(header) == 0 {
			return
		}
		tab, err := src.Load(Options{Label: header[len(header)-1]})
		if err != nil {
			named("Load", err)
			return
		}
		r, c := tab.X.Dims()
		if r != tab.Rows() || c != len(tab.Features) {
			t.Fatalf("inconsistent table: X %dx%d, %d rows, %d features", r, c, tab.Rows(), len(tab.Features))
		}
		for i := range r {
			for j := range c {
				if v := tab.X.At(i, j); math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("X[%d][%d] = %v slipped through", i, j, v)
				}
			}
		}
	})
}
