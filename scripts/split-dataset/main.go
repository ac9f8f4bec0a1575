// Command split-dataset turns scikit-learn's copy of the UCI Breast Cancer
// Wisconsin (Diagnostic) data into the files shipped in
// testdata/breast-cancer/: a stratified held-out test.csv that no site ever
// sees, and three deliberately non-IID site files named
// <jurisdiction>-<site>.csv.
//
// Usage:
//
//	go run ./scripts/split-dataset \
//	    --in /tmp/sk/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv \
//	    --out testdata/breast-cancer --seed 1995
//
// The input is sklearn's format: a first line "569,30,malignant,benign"
// (row count, feature count, class names in target order), then one line per
// sample with 30 numbers and an integer target indexing the class names.
//
// The split is a pure function of the set of input lines and the seed: rows
// are ordered by SHA-256(seed, line) rather than by a Go random generator, so
// the output does not depend on the Go release or on the order of the input
// lines. That lets a test rebuild an input from the shipped files and check
// that the split regenerates them byte for byte.
package main

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// featureNames are sklearn's load_breast_cancer feature names ("mean radius",
// "radius error", "worst radius", ...) in file order, in snake_case so they are
// convenient CSV column names.
var featureNames = []string{
	"mean_radius", "mean_texture", "mean_perimeter", "mean_area",
	"mean_smoothness", "mean_compactness", "mean_concavity",
	"mean_concave_points", "mean_symmetry", "mean_fractal_dimension",
	"radius_error", "texture_error", "perimeter_error", "area_error",
	"smoothness_error", "compactness_error", "concavity_error",
	"concave_points_error", "symmetry_error", "fractal_dimension_error",
	"worst_radius", "worst_texture", "worst_perimeter", "worst_area",
	"worst_smoothness", "worst_compactness", "worst_concavity",
	"worst_concave_points", "worst_symmetry", "worst_fractal_dimension",
}

// labelColumn is the name of the class column in every output file.
const labelColumn = "label"

// testFraction of each class is held out in test.csv (stratified, rounded to
// the nearest row).
const testFraction = 0.20

// testFile is the held-out evaluation file that no site receives.
const testFile = "test.csv"

// site is one participant and the share of each class's non-test rows it gets.
// Shares per class sum to 1 across sites.
type site struct {
	File   string             // <jurisdiction>-<site>.csv
	Shares map[string]float64 // class name -> fraction of that class's pool
}

// sites encodes the non-IID design: eu-paris is a referral centre that sees
// mostly malignant tumours, us-boston a screening programme that sees mostly
// benign ones, sg-singapore roughly balanced; their sizes differ too. With the
// sklearn data (170 malignant and 286 benign rows left after the test split)
// this gives eu-paris 94 M / 29 B, us-boston 25 M / 200 B, sg-singapore
// 51 M / 57 B, so every site keeps at least ~11% of its minority class.
var sites = []site{
	{File: "eu-paris.csv", Shares: map[string]float64{"malignant": 0.55, "benign": 0.10}},
	{File: "us-boston.csv", Shares: map[string]float64{"malignant": 0.15, "benign": 0.70}},
	{File: "sg-singapore.csv", Shares: map[string]float64{"malignant": 0.30, "benign": 0.20}},
}

func main() {
	in := flag.String("in", "", "path to sklearn's breast_cancer.csv")
	out := flag.String("out", "testdata/breast-cancer", "directory to write the split CSV files into")
	seed := flag.Int64("seed", 1995, "seed that decides which rows go where")
	flag.Parse()
	if *in == "" {
		fmt.Fprintln(os.Stderr, "split-dataset: --in is required (path to sklearn/datasets/data/breast_cancer.csv)")
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*in, *out, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "split-dataset:", err)
		os.Exit(1)
	}
}

// run reads the sklearn file, splits it and writes one CSV per output file,
// printing per-file class counts for the README.
func run(in, out string, seed int64) error {
	src, err := os.ReadFile(in)
	if err != nil {
		return fmt.Errorf("reading sklearn data: %w", err)
	}
	files, err := split(src, seed)
	if err != nil {
		return fmt.Errorf("splitting %s: %w", in, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("creating output directory: %w", err)
	}
	for _, f := range files {
		p := filepath.Join(out, f.Name)
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return fmt.Errorf("writing split file: %w", err)
		}
		fmt.Printf("%-18s %4d rows  %s\n", f.Name, f.Rows, f.countsText())
	}
	return nil
}

// outFile is one generated CSV.
type outFile struct {
	Name   string
	Data   []byte
	Rows   int
	Counts map[string]int // class name -> rows
	order  []string       // class names in sklearn's target order, for printing
}

func (f outFile) countsText() string {
	parts := make([]string, 0, len(f.order))
	for _, c := range f.order {
		parts = append(parts, fmt.Sprintf("%s %d", c, f.Counts[c]))
	}
	return strings.Join(parts, ", ")
}

// row is one sample: the source text of its feature values (copied verbatim so
// no float is ever reformatted) and its class name.
type row struct {
	src      string // whole source line, hashed to order rows
	features string // source text before the target
	class    string
	key      [32]byte
}

// split parses sklearn-format data and returns test.csv followed by the site
// files, in the order of sites.
func split(src []byte, seed int64) ([]outFile, error) {
	text := strings.ReplaceAll(string(src), "\r\n", "\n")
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) < 2 {
		return nil, fmt.Errorf("parsing header: want a count line and data rows, got %d lines", len(lines))
	}
	head := strings.Split(lines[0], ",")
	if len(head) < 4 {
		return nil, fmt.Errorf("parsing header %q: want \"rows,features,class0,class1,...\"", lines[0])
	}
	nRows, err := strconv.Atoi(head[0])
	if err != nil {
		return nil, fmt.Errorf("parsing header row count: %w", err)
	}
	nFeat, err := strconv.Atoi(head[1])
	if err != nil {
		return nil, fmt.Errorf("parsing header feature count: %w", err)
	}
	if nFeat != len(featureNames) {
		return nil, fmt.Errorf("parsing header: %d features, but this tool names %d", nFeat, len(featureNames))
	}
	classes := head[2:]
	for _, s := range sites {
		for _, c := range classes {
			if _, ok := s.Shares[c]; !ok {
				return nil, fmt.Errorf("parsing header: class %q has no share for %s", c, s.File)
			}
		}
	}

	byClass := make(map[string][]row, len(classes))
	seen := make(map[string]int, nRows)
	for i, line := range lines[1:] {
		lineNo := i + 2
		if prev, dup := seen[line]; dup {
			// A duplicate could land in two files and break the "no row is in
			// two files" guarantee the tests rely on.
			return nil, fmt.Errorf("line %d: duplicate of line %d", lineNo, prev)
		}
		seen[line] = lineNo
		cut := strings.LastIndexByte(line, ',')
		if cut < 0 || strings.Count(line, ",") != nFeat {
			return nil, fmt.Errorf("line %d: want %d fields, got %d", lineNo, nFeat+1, strings.Count(line, ",")+1)
		}
		target, err := strconv.Atoi(line[cut+1:])
		if err != nil || target < 0 || target >= len(classes) {
			return nil, fmt.Errorf("line %d: target %q is not a class index 0..%d", lineNo, line[cut+1:], len(classes)-1)
		}
		r := row{src: line, features: line[:cut], class: classes[target]}
		r.key = sha256.Sum256([]byte(strconv.FormatInt(seed, 10) + "\x00" + line))
		byClass[r.class] = append(byClass[r.class], r)
	}
	if got := len(lines) - 1; got != nRows {
		return nil, fmt.Errorf("parsing rows: header promises %d rows, file has %d", nRows, got)
	}

	// Buckets: index 0 is test.csv, then one per site.
	buckets := make([][]row, 1+len(sites))
	for _, c := range classes {
		pool := byClass[c]
		sortRows(pool)
		nTest := int(math.Round(testFraction * float64(len(pool))))
		buckets[0] = append(buckets[0], pool[:nTest]...)
		rest := pool[nTest:]
		shares := make([]float64, len(sites))
		for i, s := range sites {
			shares[i] = s.Shares[c]
		}
		counts, err := allocate(len(rest), shares)
		if err != nil {
			return nil, fmt.Errorf("allocating class %q: %w", c, err)
		}
		for i, n := range counts {
			buckets[1+i] = append(buckets[1+i], rest[:n]...)
			rest = rest[n:]
		}
	}

	header := strings.Join(featureNames, ",") + "," + labelColumn + "\n"
	names := []string{testFile}
	for _, s := range sites {
		names = append(names, s.File)
	}
	files := make([]outFile, len(buckets))
	for i, b := range buckets {
		// Hash order within each file mixes the classes, so no reader can
		// accidentally rely on rows being grouped by label.
		sortRows(b)
		var buf bytes.Buffer
		buf.WriteString(header)
		counts := make(map[string]int, len(classes))
		for _, r := range b {
			buf.WriteString(r.features)
			buf.WriteByte(',')
			buf.WriteString(r.class)
			buf.WriteByte('\n')
			counts[r.class]++
		}
		files[i] = outFile{Name: names[i], Data: buf.Bytes(), Rows: len(b), Counts: counts, order: classes}
	}
	return files, nil
}

// sortRows orders rows by their seeded hash, with the source text as a
// tie-breaker so the order never depends on input order.
func sortRows(rs []row) {
	sort.Slice(rs, func(i, j int) bool {
		if c := bytes.Compare(rs[i].key[:], rs[j].key[:]); c != 0 {
			return c < 0
		}
		return rs[i].src < rs[j].src
	})
}

// allocate divides n rows by shares using the largest-remainder method, so the
// counts always sum to n; ties go to the earlier share.
func allocate(n int, shares []float64) ([]int, error) {
	var total float64
	for _, s := range shares {
		if s < 0 || math.IsNaN(s) {
			return nil, fmt.Errorf("checking shares: %v is not a valid share", s)
		}
		total += s
	}
	if math.Abs(total-1) > 1e-9 {
		return nil, fmt.Errorf("checking shares: they sum to %v, want 1", total)
	}
	counts := make([]int, len(shares))
	rem := make([]float64, len(shares))
	left := n
	for i, s := range shares {
		exact := s * float64(n)
		counts[i] = int(math.Floor(exact))
		rem[i] = exact - float64(counts[i])
		left -= counts[i]
	}
	idx := make([]int, len(shares))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return rem[idx[a]] > rem[idx[b]]+1e-12 })
	for k := 0; k < left; k++ {
		counts[idx[k%len(idx)]]++
	}
	return counts, nil
}
