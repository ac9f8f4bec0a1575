package dataset

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// shippedDir holds the breast-cancer split described in testdata/README.md.
const shippedDir = "../testdata/breast-cancer"

// shippedFiles maps each shipped file to its expected row count; keep in step
// with testdata/README.md.
var shippedFiles = []struct {
	name string
	rows int
	site bool // false for the held-out test set no site receives
}{
	{"test.csv", 113, false},
	{"eu-paris.csv", 123, true},
	{"us-boston.csv", 225, true},
	{"sg-singapore.csv", 108, true},
}

// TestShippedSplit checks the invariants the federated tests rely on: the
// files partition the 569 source rows, the held-out set is disjoint from every
// site, and every site has both classes with a usable minority.
func TestShippedSplit(t *testing.T) {
	owner := make(map[string]string)     // raw row -> file holding it
	featOwner := make(map[string]string) // feature text -> file, to catch a row relabelled
	total := 0
	for _, f := range shippedFiles {
		t.Run(f.name, func(t *testing.T) {
			path := filepath.Join(shippedDir, f.name)
			tab, err := LoadCSV(path, Options{Label: "label"})
			if err != nil {
				t.Fatalf("LoadCSV: %v", err)
			}
			raw, err := RawRows(path)
			if err != nil {
				t.Fatalf("RawRows: %v", err)
			}
			if tab.Rows() != f.rows || len(raw) != f.rows {
				t.Errorf("%d rows (%d raw), want %d", tab.Rows(), len(raw), f.rows)
			}
			total += len(raw)
			if got := strings.Join(tab.Classes(), ","); got != "benign,malignant" {
				t.Errorf("classes %q, want benign and malignant", got)
			}
			for _, r := range raw {
				if prev, dup := owner[r]; dup {
					t.Errorf("row %q is in both %s and %s", r, prev, f.name)
				}
				owner[r] = f.name
				feat := r[:strings.LastIndexByte(r, ',')]
				if prev, dup := featOwner[feat]; dup && prev != f.name {
					t.Errorf("features %q appear in both %s and %s", feat, prev, f.name)
				}
				featOwner[feat] = f.name
			}
			if f.site {
				idx, err := tab.ClassIndex([]string{"malignant", "benign"})
				if err != nil {
					t.Fatalf("ClassIndex: %v", err)
				}
				benign := 0
				for _, k := range idx {
					benign += k
				}
				minority := min(benign, len(idx)-benign)
				if frac := float64(minority) / float64(len(idx)); frac < 0.10 {
					t.Errorf("minority class is %.1f%% of the site, want at least 10%%", 100*frac)
				}
			}
		})
	}
	if total != 569 {
		t.Errorf("files hold %d rows in all, want the 569 rows of the source", total)
	}
}

// TestShippedHeaders checks every file has the same 31 columns, so a model
// trained on a site file can be evaluated on test.csv.
func TestShippedHeaders(t *testing.T) {
	var first []string
	for _, f := range shippedFiles {
		t.Run(f.name, func(t *testing.T) {
			tab, err := LoadCSV(filepath.Join(shippedDir, f.name), Options{Label: "label"})
			if err != nil {
				t.Fatalf("LoadCSV: %v", err)
			}
			if first == nil {
				first = tab.Features
			}
			if !slices.Equal(tab.Features, first) || len(tab.Features) != 30 {
				t.Errorf("features %q, want the same 30 as %s", tab.Features, shippedFiles[0].name)
			}
		})
	}
}
