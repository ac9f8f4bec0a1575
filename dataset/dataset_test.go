package dataset

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// writeCSV writes content to a file named t.csv in a fresh temp dir and
// returns its path.
func writeCSV(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "t.csv")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatalf("writing test file: %v", err)
	}
	return p
}

func TestLoadCSVErrors(t *testing.T) {
	lbl := Options{Label: "label"}
	tests := []struct {
		name    string
		content string // file content; ignored when path is set
		path    string // overrides the temp file (missing file, directory)
		opts    Options
		// want is the expected error text after the file path, so both the
		// location and the message are checked.
		want     string
		wantLine int
		wantCol  string
	}{
		{name: "missing file", path: "does-not-exist.csv", opts: lbl, want: "file not found; check the path"},
		{name: "directory", path: ".", opts: lbl, want: "is a directory, not a CSV file"},
		{name: "empty file", content: "", opts: lbl, want: "file is empty; expected a header row"},
		{name: "only a BOM and blank lines", content: "\xEF\xBB\xBF\n\n", opts: lbl, want: "file is empty"},
		{name: "header only", content: "a,b,label\n", opts: lbl, want: "no data rows: the file has a header (line 1) but nothing after it"},
		{name: "header only after blank lines", content: "\n\na,label\n\n", opts: lbl, want: "no data rows: the file has a header (line 3)"},
		{name: "duplicate column", content: "a,b,a,label\n1,2,3,x\n", opts: lbl,
			want: `:1: column "a": duplicate column name (columns 1 and 3); column names must be unique`, wantLine: 1, wantCol: "a"},
		{name: "duplicate column after trimming", content: "a, a ,label\n1,2,x\n", opts: lbl,
			want: `column "a": duplicate column name (columns 1 and 2)`, wantLine: 1, wantCol: "a"},
		{name: "unnamed column", content: "a,,label\n1,2,x\n", opts: lbl,
			want: ":1: header column 2 has no name", wantLine: 1},
		{name: "no label option", content: "a,label\n1,x\n", opts: Options{},
			want: `no label column given; name one of the columns: "a", "label"`},
		{name: "label not in header", content: "a,b,class\n1,2,x\n", opts: lbl,
			want: `:1: column "label": label column not in the header; available columns: "a", "b", "class"`, wantLine: 1, wantCol: "label"},
		{name: "label differs in case", content: "a,Label\n1,x\n", opts: lbl,
			want: `column "label": label column not in the header; did you mean "Label"?`},
		{name: "no header row", content: "1.5,2.5,x\n1,2,y\n", opts: lbl,
			want: "the first line looks like data: the file needs a header row"},
		{name: "only the label column", content: "label\nx\n", opts: lbl,
			want: `:1: no feature columns: the header has only the label column "label"`},
		{name: "requested feature missing", content: "a,b,label\n1,2,x\n", opts: Options{Label: "label", Features: []string{"b", "c"}},
			want: `:1: column "c": requested feature column not in the header; available columns: "a", "b", "label"`, wantLine: 1, wantCol: "c"},
		{name: "requested feature is the label", content: "a,label\n1,x\n", opts: Options{Label: "label", Features: []string{"label"}},
			want: `column "label": is the label column and cannot also be a feature`},
		{name: "requested feature twice", content: "a,label\n1,x\n", opts: Options{Label: "label", Features: []string{"a", "a"}},
			want: `column "a": requested twice in the feature list`},
		{name: "not a number", content: "mean_radius,label\n1,x\nabc,y\n", opts: lbl,
			want: `t.csv:3: column "mean_radius": "abc" is not a number`, wantLine: 3, wantCol: "mean_radius"},
		{name: "not a number is trimmed and quoted", content: "a,label\n  abc  ,x\n", opts: lbl,
			want: `:2: column "a": "abc" is not a number`},
		{name: "comma decimal in quotes", content: "a,label\n\"1,5\",x\n", opts: lbl,
			want: `:2: column "a": "1,5" is not a number`},
		{name: "NaN", content: "a,b,label\n1,NaN,x\n", opts: lbl,
			want: `:2: column "b": NaN is not allowed; clean the data or drop the row`, wantLine: 2, wantCol: "b"},
		{name: "lowercase nan", content: "a,label\nnan,x\n", opts: lbl, want: "NaN is not allowed"},
		{name: "+Inf", content: "a,label\n+Inf,x\n", opts: lbl, want: `column "a": +Inf is not allowed; clean the data or drop the row`},
		{name: "-infinity", content: "a,label\n-infinity,x\n", opts: lbl, want: "-Inf is not allowed"},
		{name: "overflow", content: "a,label\n1e999,x\n", opts: lbl, want: `"1e999" is out of range for a 64-bit float`},
		{name: "empty label", content: "a,label\n1,x\n2,\n", opts: lbl,
			want: `:3: column "label": empty label; every row needs a class label`, wantLine: 3, wantCol: "label"},
		{name: "blank label", content: "a,label\n1,   \n", opts: lbl, want: `:2: column "label": empty label`},
		{name: "too few fields", content: "a,b,label\n1,2,x\n1,x\n", opts: lbl,
			want: ":3: wrong number of fields: expected 3 (as in the header on line 1), got 2", wantLine: 3},
		{name: "too many fields", content: "a,label\n1,x,extra\n", opts: lbl, want: ":2: wrong number of fields: expected 2 (as in the header on line 1), got 3"},
		{name: "trailing comma", content: "a,label\n1,x,\n", opts: lbl, want: ":2: wrong number of fields: expected 2 (as in the header on line 1), got 3; the line ends with an extra comma"},
		{name: "empty feature cell", content: "a,b,label\n1,,x\n", opts: lbl,
			want: `:2: column "b": empty cell; every feature needs a number`, wantLine: 2, wantCol: "b"},
		{name: "line numbers count blank lines", content: "a,label\n\n1,x\n\n\nabc,y\n", opts: lbl, want: `:6: column "a": "abc" is not a number`},
		{name: "line numbers with CRLF", content: "a,label\r\n1,x\r\nabc,y\r\n", opts: lbl, want: `:3: column "a": "abc"`},
		{name: "line numbers after multi-line cell", content: "a,label\n1,\"two\nlines\"\nabc,y\n", opts: lbl, want: `:4: column "a"`},
		{name: "line numbers after BOM", content: "\xEF\xBB\xBFa,label\n1,x\nabc,y\n", opts: lbl, want: `:3: column "a"`},
		{name: "bare quote", content: "a,label\n1,x\n2,5\" disk\n", opts: lbl, want: ":3: malformed CSV at character 4: bare \" in non-quoted-field", wantLine: 3},
		{name: "unclosed quote", content: "a,label\n1,\"x\n", opts: lbl, want: ":2: malformed CSV", wantLine: 2},
		{name: "unclosed quote spanning lines", content: "a,label\n1,x\n2,\"y\n3,z\n4,w\n", opts: lbl,
			want: ":3: malformed CSV in the record starting on this line (noticed at line 5", wantLine: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = writeCSV(t, tt.content)
			}
			tab, err := LoadCSV(path, tt.opts)
			if err == nil {
				t.Fatalf("LoadCSV succeeded with %d rows, want an error containing %q", tab.Rows(), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), path) {
				t.Errorf("error = %q, want it to start with the path %q", err, path)
			}
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *dataset.Error", err)
			}
			if de.Path != path {
				t.Errorf("Error.Path = %q, want %q", de.Path, path)
			}
			if tt.wantLine != 0 && de.Line != tt.wantLine {
				t.Errorf("Error.Line = %d, want %d", de.Line, tt.wantLine)
			}
			if tt.wantCol != "" && de.Column != tt.wantCol {
				t.Errorf("Error.Column = %q, want %q", de.Column, tt.wantCol)
			}
		})
	}
}

func TestLoadCSVMissingFileIsNotExist(t *testing.T) {
	_, err := LoadCSV(filepath.Join(t.TempDir(), "nope.csv"), Options{Label: "label"})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false, want true", err)
	}
}

// TestLoadCSVNotReadable covers the error path for a path that cannot be
// opened for a reason other than absence; it runs as any user, root
// included (CI runs as root, where file modes do not stop a read).
func TestLoadCSVNotReadable(t *testing.T) {
	notDir := writeCSV(t, "a,label\n1,x\n")
	_, err := LoadCSV(filepath.Join(notDir, "child.csv"), Options{Label: "label"})
	var de *Error
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "cannot read file") || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadCSVUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("skipped as root: root reads files whatever their mode; TestLoadCSVNotReadable covers the same error path")
	}
	p := writeCSV(t, "a,label\n1,x\n")
	if err := os.Chmod(p, 0); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	_, err := LoadCSV(p, Options{Label: "label"})
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("error = %v, want permission denied", err)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		err  Error
		want string
	}{
		{"all parts", Error{Path: "b.csv", Line: 17, Column: "mean_radius", Msg: `"abc" is not a number`}, `b.csv:17: column "mean_radius": "abc" is not a number`},
		{"no column", Error{Path: "b.csv", Line: 3, Msg: "m"}, "b.csv:3: m"},
		{"no line", Error{Path: "b.csv", Column: "c", Msg: "m"}, `b.csv: column "c": m`},
		{"path only", Error{Path: "b.csv", Msg: "m"}, "b.csv: m"},
		{"no path", Error{Line: 2, Msg: "m"}, "line 2: m"},
		{"message only", Error{Msg: "m"}, "m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadCSVTolerant(t *testing.T) {
	// BOM, CRLF, padding around cells, quoted cells and blank lines are all
	// things spreadsheets produce; none should matter.
	p := writeCSV(t, "\xEF\xBB\xBF a , b ,label\r\n\r\n 1.5 ,\"-2\", yes \r\n3,4e2,no\r\n")
	tab, err := LoadCSV(p, Options{Label: "label"})
	if err != nil {
		t.Fatalf("LoadCSV: %v", err)
	}
	if !slices.Equal(tab.Features, []string{"a", "b"}) {
		t.Errorf("Features = %q, want [a b]", tab.Features)
	}
	if !slices.Equal(tab.Labels, []string{"yes", "no"}) {
		t.Errorf("Labels = %q, want [yes no]", tab.Labels)
	}
	want := [][]float64{{1.5, -2}, {3, 400}}
	for i, row := range want {
		if got := tab.X.RawRowView(i); !slices.Equal(got, row) {
			t.Errorf("row %d = %v, want %v", i, got, row)
		}
	}
}

func TestLoadCSVRequestedFeatures(t *testing.T) {
	p := writeCSV(t, "a,label,b,c\n1,x,2,3\n4,y,5,6\n")
	tab, err := LoadCSV(p, Options{Label: "label", Features: []string{"c", "a"}})
	if err != nil {
		t.Fatalf("LoadCSV: %v", err)
	}
	if !slices.Equal(tab.Features, []string{"c", "a"}) {
		t.Errorf("Features = %q, want [c a]", tab.Features)
	}
	if got := tab.X.RawRowView(1); !slices.Equal(got, []float64{6, 4}) {
		t.Errorf("row 1 = %v, want [6 4]", got)
	}
}

func TestLoadCSVIgnoresUnrequestedBadColumns(t *testing.T) {
	// Only the requested columns have to be numeric; an ID or free-text
	// column can stay in the file.
	p := writeCSV(t, "id,a,label\nP-001,1,x\n,2,y\n")
	tab, err := LoadCSV(p, Options{Label: "label", Features: []string{"a"}})
	if err != nil {
		t.Fatalf("LoadCSV: %v", err)
	}
	if tab.Rows() != 2 {
		t.Errorf("Rows() = %d, want 2", tab.Rows())
	}
}

// shipped is the real data file used by the happy-path tests.
const shipped = "../testdata/breast-cancer/eu-paris.csv"

func TestLoadCSVShipped(t *testing.T) {
	tab, err := LoadCSV(shipped, Options{Label: "label"})
	if err != nil {
		t.Fatalf("LoadCSV: %v", err)
	}
	st, err := os.Stat(shipped)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	raw, err := RawRows(shipped)
	if err != nil {
		t.Fatalf("RawRows: %v", err)
	}
	r, c := tab.X.Dims()
	checks := []struct {
		name      string
		got, want any
	}{
		{"rows", tab.Rows(), 123},
		{"X rows", r, 123},
		{"X cols", c, 30},
		{"features", len(tab.Features), 30},
		{"first feature", tab.Features[0], "mean_radius"},
		{"last feature", tab.Features[29], "worst_fractal_dimension"},
		{"classes", strings.Join(tab.Classes(), ","), "benign,malignant"},
		{"bytes", tab.Bytes, st.Size()},
		{"path", tab.Path, shipped},
		{"raw rows", len(raw), 123},
	}
	for _, ck := range checks {
		t.Run(ck.name, func(t *testing.T) {
			if ck.got != ck.want {
				t.Errorf("got %v, want %v", ck.got, ck.want)
			}
		})
	}
	t.Run("values match raw text", func(t *testing.T) {
		for i, line := range raw {
			cells := strings.Split(line, ",")
			for j, cell := range cells[:30] {
				want, err := strconv.ParseFloat(cell, 64)
				if err != nil {
					t.Fatalf("parsing raw cell: %v", err)
				}
				if got := tab.X.At(i, j); got != want {
					t.Fatalf("X[%d][%d] = %v, want %v", i, j, got, want)
				}
			}
			if tab.Labels[i] != cells[30] {
				t.Fatalf("Labels[%d] = %q, want %q", i, tab.Labels[i], cells[30])
			}
		}
	})
}

func TestRawRows(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{"plain", "a,label\n1,x\n2,y\n", []string{"1,x", "2,y"}},
		{"no trailing newline", "a,label\n1,x\n2,y", []string{"1,x", "2,y"}},
		{"CRLF and blank lines", "a,label\r\n\r\n1,x\r\n\r\n 2 , y \r\n", []string{"1,x", " 2 , y "}},
		{"BOM", "\xEF\xBB\xBFa,label\n1,x\n", []string{"1,x"}},
		{"quotes kept verbatim", "a,label\n\"1\",\"x\"\"y\"\n", []string{`"1","x""y"`}},
		{"multi-line cell is one row", "a,label\n1,\"x\ny\"\n2,z\n", []string{"1,\"x\ny\"", "2,z"}},
		{"header only", "a,label\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RawRows(writeCSV(t, tt.content))
			if err != nil {
				t.Fatalf("RawRows: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("RawRows = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRawRowsErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"empty", "", "file is empty"},
		{"malformed", "a,label\n1,x\"y\n", `:2: malformed CSV`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := RawRows(writeCSV(t, tt.content))
			var de *Error
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.As(err, &de) {
				t.Errorf("RawRows error = %v, want a *dataset.Error containing %q", err, tt.want)
			}
		})
	}
	if _, err := RawRows("does-not-exist.csv"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RawRows on a missing file: error = %v, want fs.ErrNotExist", err)
	}
}

// numbered returns a table of n rows whose label and single feature are the
// row number, so tests can see where each row went.
func numbered(n int) *Table {
	p := "a,label\n"
	for i := range n {
		p += strconv.Itoa(i) + "," + strconv.Itoa(i) + "\n"
	}
	tab, err := loadString(p)
	if err != nil {
		panic(err)
	}
	return tab
}

func loadString(content string) (*Table, error) {
	dir, err := os.MkdirTemp("", "dataset-test")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "t.csv")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		return nil, err
	}
	return LoadCSV(p, Options{Label: "label"})
}

func TestSplitSizes(t *testing.T) {
	tests := []struct {
		name      string
		rows      int
		fraction  float64
		wantEval  int
		wantTrain int
	}{
		{"zero", 10, 0, 0, 10},
		{"negative", 10, -0.5, 0, 10},
		{"NaN", 10, math.NaN(), 0, 10},
		{"fifth", 10, 0.2, 2, 8},
		{"rounds", 569, 0.2, 114, 455},
		{"tiny fraction still gives one eval row", 10, 0.01, 1, 9},
		{"huge fraction still leaves one train row", 10, 0.99, 9, 1},
		{"all", 10, 1, 10, 0},
		{"more than all", 10, 1.5, 10, 0},
		{"one row", 1, 0.5, 1, 0},
		{"one row, small fraction", 1, 0.2, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := numbered(tt.rows)
			train, eval := tab.Split(tt.fraction, 7)
			if eval.Rows() != tt.wantEval || train.Rows() != tt.wantTrain {
				t.Fatalf("Split(%v): train %d, eval %d rows; want %d, %d", tt.fraction, train.Rows(), eval.Rows(), tt.wantTrain, tt.wantEval)
			}
			for _, part := range []*Table{train, eval} {
				if part.Path != tab.Path || !slices.Equal(part.Features, tab.Features) || part.Bytes != tab.Bytes {
					t.Errorf("split part lost Path/Features/Bytes: %+v", part)
				}
				if part.Rows() == 0 && part.X != nil {
					t.Errorf("empty part has non-nil X")
				}
				if part.Rows() > 0 {
					if r, _ := part.X.Dims(); r != part.Rows() {
						t.Errorf("X has %d rows, Labels %d", r, part.Rows())
					}
				}
			}
			// Every row ends up in exactly one part, with its features.
			var all []string
			for _, part := range []*Table{train, eval} {
				for i, l := range part.Labels {
					if got := strconv.Itoa(int(part.X.At(i, 0))); got != l {
						t.Errorf("row with label %s has feature %s; rows were scrambled", l, got)
					}
					all = append(all, l)
				}
			}
			slices.Sort(all)
			want := slices.Clone(tab.Labels)
			slices.Sort(want)
			if !slices.Equal(all, want) {
				t.Errorf("parts hold %q, want the original rows %q", all, want)
			}
		})
	}
}

func TestSplitDeterministic(t *testing.T) {
	tab := numbered(50)
	train1, eval1 := tab.Split(0.2, 42)
	train2, eval2 := tab.Split(0.2, 42)
	if !slices.Equal(eval1.Labels, eval2.Labels) || !slices.Equal(train1.Labels, train2.Labels) {
		t.Error("same seed gave different splits")
	}
	_, eval3 := tab.Split(0.2, 43)
	if slices.Equal(eval1.Labels, eval3.Labels) {
		t.Error("seeds 42 and 43 gave the same eval rows; the seed is not used")
	}
	if !slices.Equal(tab.Labels, numbered(50).Labels) {
		t.Error("Split modified the original table")
	}
	eval1.X.Set(0, 0, -1)
	for i := range tab.Rows() {
		if tab.X.At(i, 0) == -1 {
			t.Error("split parts share memory with the original table")
		}
	}
}

// TestSplitGolden pins the exact shuffle so a change to the algorithm (which
// would silently change every site's train/eval split) is noticed.
func TestSplitGolden(t *testing.T) {
	tests := []struct {
		seed int64
		want []string
	}{
		{seed: 1, want: goldenEval1},
		{seed: 2026, want: goldenEval2026},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatInt(tt.seed, 10), func(t *testing.T) {
			_, eval := numbered(20).Split(0.25, tt.seed)
			if !slices.Equal(eval.Labels, tt.want) {
				t.Errorf("eval rows = %q, want %q", eval.Labels, tt.want)
			}
		})
	}
}

var (
	goldenEval1    = []string{"0", "11", "14", "17", "13"}
	goldenEval2026 = []string{"15", "5", "10", "19", "7"}
)

func TestBoundedDrawUniform(t *testing.T) {
	// A rough check that draws cover [0, n) evenly; a biased or off-by-one
	// draw would skew the shuffle.
	tab := numbered(5)
	counts := make(map[string]int)
	for seed := range int64(5000) {
		_, eval := tab.Split(0.2, seed)
		counts[eval.Labels[0]]++
	}
	for l, c := range counts {
		if c < 850 || c > 1150 {
			t.Errorf("row %s picked %d times in 5000, want about 1000", l, c)
		}
	}
	if len(counts) != 5 {
		t.Errorf("only rows %v were ever picked", counts)
	}
}

func TestClassIndex(t *testing.T) {
	tab, err := loadString("a,label\n1,benign\n2,malignant\n\n3,benign\n4,weird\n")
	if err != nil {
		t.Fatalf("loading: %v", err)
	}
	okTab, err := loadString("a,label\n1,benign\n2,malignant\n3,benign\n")
	if err != nil {
		t.Fatalf("loading: %v", err)
	}
	handMade := &Table{Path: "mem", Labels: []string{"a", "b"}}
	tests := []struct {
		name    string
		tab     *Table
		classes []string
		want    []int
		wantErr string
	}{
		{"ordered", okTab, []string{"benign", "malignant"}, []int{0, 1, 0}, ""},
		{"reversed", okTab, []string{"malignant", "benign"}, []int{1, 0, 1}, ""},
		{"superset", okTab, []string{"benign", "malignant", "other"}, []int{0, 1, 0}, ""},
		{"unknown label names value and line", tab, []string{"benign", "malignant"}, nil,
			`t.csv:6: label "weird" is not one of the known classes "benign", "malignant"`},
		{"empty class list", okTab, nil, nil, `label "benign" is not one of the known classes (none: the class list is empty)`},
		{"duplicate class", okTab, []string{"benign", "benign"}, nil, `class "benign" is listed twice`},
		{"hand-made table names the row", handMade, []string{"a"}, nil, `mem: row 2: label "b" is not one of the known classes "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.tab.ClassIndex(tt.classes)
			if tt.wantErr != "" {
				var de *Error
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &de) {
					t.Errorf("ClassIndex error = %v, want a *dataset.Error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ClassIndex: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ClassIndex = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClassIndexAfterSplitKeepsLines(t *testing.T) {
	tab, err := loadString("a,label\n1,x\n2,x\n3,x\n4,y\n")
	if err != nil {
		t.Fatalf("loading: %v", err)
	}
	train, eval := tab.Split(0.5, 3)
	for _, part := range []*Table{train, eval} {
		for i, l := range part.Labels {
			if l != "y" {
				continue
			}
			_, err := part.ClassIndex([]string{"x"})
			if err == nil || !strings.Contains(err.Error(), ":5: label \"y\"") {
				t.Errorf("ClassIndex after Split (row %d) error = %v, want it to point at line 5", i, err)
			}
		}
	}
}

func TestClasses(t *testing.T) {
	tests := []struct {
		name   string
		labels []string
		want   []string
	}{
		{"sorted distinct", []string{"b", "a", "b", "c"}, []string{"a", "b", "c"}},
		{"one", []string{"x", "x"}, []string{"x"}},
		{"none", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (&Table{Labels: tt.labels}).Classes(); !slices.Equal(got, tt.want) {
				t.Errorf("Classes() = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzLoadCSV(f *testing.F) {
	seeds := []string{
		"a,b,label\n1,2,x\n3,4,y\n",
		"\xEF\xBB\xBFa,label\r\n1,x\r\n",
		"a,label\n\"1\n\",x\n",
		"a,label\nNaN,x\n",
		"a,a,label\n1,2,x\n",
		"label\nx\n",
		"a,label\n1,x,3\n",
		"a,label\n1,\"x\n",
		"",
		"a,label\n",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content string) {
		p := filepath.Join(dir, "fuzz.csv")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatalf("writing fuzz input: %v", err)
		}
		tab, err := LoadCSV(p, Options{Label: "label"})
		if err != nil {
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("error %T %q is not a *dataset.Error", err, err)
			}
			if de.Path != p {
				t.Fatalf("error %q does not name the file", err)
			}
		} else {
			r, c := tab.X.Dims()
			if r != tab.Rows() || c != len(tab.Features) || r == 0 || c == 0 {
				t.Fatalf("inconsistent table: X %dx%d, %d labels, %d features", r, c, tab.Rows(), len(tab.Features))
			}
			for i := range r {
				for j := range c {
					if v := tab.X.At(i, j); math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("X[%d][%d] = %v slipped through", i, j, v)
					}
				}
				if tab.Labels[i] == "" {
					t.Fatalf("row %d has an empty label", i)
				}
			}
			train, eval := tab.Split(0.3, 1)
			if train.Rows()+eval.Rows() != tab.Rows() {
				t.Fatalf("split lost rows")
			}
			if _, err := tab.ClassIndex(tab.Classes()); err != nil {
				t.Fatalf("ClassIndex with the table's own classes: %v", err)
			}
			raw, err := RawRows(p)
			if err != nil {
				t.Fatalf("RawRows failed on a file LoadCSV accepted: %v", err)
			}
			if len(raw) != tab.Rows() {
				t.Fatalf("RawRows gave %d rows, LoadCSV %d", len(raw), tab.Rows())
			}
		}
		// RawRows must not panic on anything either.
		_, _ = RawRows(p)
	})
}

func TestRedactedDropsTheValueAndTheDirectory(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "patients.csv")
	if err := os.WriteFile(p, []byte("age,label\n41,x\nJohn Smith,y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadCSV(p, Options{Label: "label"})
	var de *Error
	if !errors.As(err, &de) || de.Value != "John Smith" {
		t.Fatalf("got %v", err)
	}
	r := de.Redacted().Error()
	if strings.Contains(r, "John") || strings.Contains(r, dir) || !strings.Contains(r, `patients.csv:3: column "age"`) {
		t.Fatalf("redacted error %q", r)
	}
	if !strings.Contains(de.Error(), "John Smith") {
		t.Fatal("the site's own error lost the value")
	}
}

// TestRequestedNamesMatchExactly: header names are trimmed (the one
// normalization), but a job's names are not: " a" is not column "a", so a
// site policy that judged " a" never sees column a read under that name.
// The error's hint (the file's columns) is dropped when it leaves the site.
func TestRequestedNamesMatchExactly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.csv")
	if err := os.WriteFile(path, []byte(" a , b,label\n1,2,x\n3,4,y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCSV(path, Options{Label: "label", Features: []string{"a"}}); err != nil {
		t.Fatalf("the trimmed header name: %v", err)
	}
	for _, opts := range []Options{
		{Label: "label", Features: []string{" a"}},
		{Label: "label", Features: []string{"a\t"}},
		{Label: " label", Features: []string{"a"}},
	} {
		_, err := LoadCSV(path, opts)
		var de *Error
		if !errors.As(err, &de) {
			t.Fatalf("%+v: loaded (%v)", opts, err)
		}
		if !strings.Contains(err.Error(), `"b"`) {
			t.Errorf("the local error should list the file's columns: %v", err)
		}
		if r := de.Redacted().Error(); strings.Contains(r, `"b"`) {
			t.Errorf("the redacted error lists the file's columns: %s", r)
		}
	}
	counts, truncated, err := ValueCounts(path, "label", 0)
	if err != nil || truncated || counts["x"] != 1 || counts["y"] != 1 || len(counts) != 2 {
		t.Fatalf("ValueCounts = %v %v %v", counts, truncated, err)
	}
	if counts, truncated, _ = ValueCounts(path, "a", 1); !truncated || len(counts) != 1 {
		t.Fatalf("ValueCounts with limit 1 = %v, truncated %v", counts, truncated)
	}
}
