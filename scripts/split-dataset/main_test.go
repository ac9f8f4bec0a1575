package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// shippedDir is where the generated files are committed, relative to this
// package.
const shippedDir = "../../testdata/breast-cancer"

// shippedSeed is the seed documented in testdata/README.md.
const shippedSeed = 1995

func TestAllocate(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		shares []float64
		want   []int
	}{
		{"exact", 10, []float64{0.5, 0.3, 0.2}, []int{5, 3, 2}},
		{"remainder to largest fraction", 286, []float64{0.10, 0.70, 0.20}, []int{29, 200, 57}},
		{"tie goes to earlier", 170, []float64{0.55, 0.15, 0.30}, []int{94, 25, 51}},
		{"zero rows", 0, []float64{0.5, 0.5}, []int{0, 0}},
		{"one share", 7, []float64{1}, []int{7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := allocate(tt.n, tt.shares)
			if err != nil {
				t.Fatalf("allocate: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("allocate(%d, %v) = %v, want %v", tt.n, tt.shares, got, tt.want)
			}
		})
	}
}

func TestAllocateRejectsBadShares(t *testing.T) {
	tests := []struct {
		name   string
		shares []float64
	}{
		{"do not sum to one", []float64{0.5, 0.4}},
		{"negative", []float64{1.5, -0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := allocate(10, tt.shares); err == nil {
				t.Errorf("allocate(10, %v) succeeded, want an error", tt.shares)
			}
		})
	}
}

func TestSplitRejectsBadInput(t *testing.T) {
	feat := strings.Repeat("1,", len(featureNames)) // 30 values and a trailing comma
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"empty", "", "count line"},
		{"short header", "1,30\n" + feat + "0\n", "rows,features"},
		{"wrong feature count", "1,29,malignant,benign\n" + feat + "0\n", "29 features"},
		{"unknown class", "1,30,malignant,other\n" + feat + "0\n", `class "other"`},
		{"bad target", "1,30,malignant,benign\n" + feat + "2\n", "not a class index"},
		{"ragged", "1,30,malignant,benign\n1,2,0\n", "want 31 fields"},
		{"count mismatch", "2,30,malignant,benign\n" + feat + "0\n", "promises 2 rows"},
		{"duplicate row", "2,30,malignant,benign\n" + feat + "0\n" + feat + "0\n", "duplicate of line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := split([]byte(tt.src), 1)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("split error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// readShipped returns the shipped files by name.
func readShipped(t *testing.T) map[string][]byte {
	t.Helper()
	names := []string{testFile}
	for _, s := range sites {
		names = append(names, s.File)
	}
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(shippedDir, n))
		if err != nil {
			t.Fatalf("reading shipped file: %v", err)
		}
		out[n] = b
	}
	return out
}

// TestRegeneratesShippedFiles rebuilds an sklearn-format input from the shipped
// files (possible because the split ignores input order and copies the
// feature text verbatim) and checks that splitting it with the documented seed
// reproduces every shipped file byte for byte. This catches hand edits to the
// CSVs and changes to the split that were not followed by a regeneration.
func TestRegeneratesShippedFiles(t *testing.T) {
	shipped := readShipped(t)
	classes := []string{"malignant", "benign"} // sklearn's target order
	var lines []string
	for _, data := range shipped {
		rows := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")[1:]
		for _, r := range rows {
			cut := strings.LastIndexByte(r, ',')
			target := slices.Index(classes, r[cut+1:])
			if target < 0 {
				t.Fatalf("shipped row has unknown label %q", r[cut+1:])
			}
			lines = append(lines, fmt.Sprintf("%s,%d", r[:cut], target))
		}
	}
	// Reverse-sorted input proves the output does not depend on input order.
	slices.Sort(lines)
	slices.Reverse(lines)
	src := fmt.Sprintf("%d,%d,%s\n%s\n", len(lines), len(featureNames), strings.Join(classes, ","), strings.Join(lines, "\n"))

	files, err := split([]byte(src), shippedSeed)
	if err != nil {
		t.Fatalf("split: %v", err)
	}
	for _, f := range files {
		t.Run(f.Name, func(t *testing.T) {
			if !bytes.Equal(f.Data, shipped[f.Name]) {
				t.Errorf("regenerated %s differs from the shipped file; rerun the command in testdata/README.md", f.Name)
			}
		})
	}
}

func TestSplitSeedChangesAssignment(t *testing.T) {
	shipped := readShipped(t)
	var lines []string
	for _, data := range shipped {
		for _, r := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")[1:] {
			r = strings.Replace(r, ",malignant", ",0", 1)
			r = strings.Replace(r, ",benign", ",1", 1)
			lines = append(lines, r)
		}
	}
	src := fmt.Sprintf("%d,30,malignant,benign\n%s\n", len(lines), strings.Join(lines, "\n"))
	a, err := split([]byte(src), 1)
	if err != nil {
		t.Fatalf("split: %v", err)
	}
	b, err := split([]byte(src), 2)
	if err != nil {
		t.Fatalf("split: %v", err)
	}
	if bytes.Equal(a[0].Data, b[0].Data) {
		t.Error("seeds 1 and 2 gave the same test.csv; the seed is not being used")
	}
	for i := range a {
		if a[i].Rows != b[i].Rows {
			t.Errorf("%s: %d rows with seed 1, %d with seed 2; sizes should depend only on the design", a[i].Name, a[i].Rows, b[i].Rows)
		}
	}
}

// Example shows how the per-class pool is divided among sites: 170 malignant
// rows with eu-paris 55%, us-boston 15%, sg-singapore 30%.
func Example() {
	counts, err := allocate(170, []float64{0.55, 0.15, 0.30})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(counts)
	// Output: [94 25 51]
}
