// Package dataset loads a site's local tabular data: a CSV file with a header
// row, numeric feature columns and one string class-label column, or an IDX
// (MNIST-format) images file and its labels file read as such a table.
// Source is the one entry point that knows the formats.
//
// The files are written by people, so every problem is reported as a single
// *Error that names the file, the line as a text editor numbers it, the column,
// and what would have been valid, e.g.
//
//	breast.csv:17: column "mean_radius": "abc" is not a number
//
// Callers that want the parts use errors.As.
package dataset

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/mat"
)

// Table is a numeric feature matrix with string class labels, loaded from one file.
type Table struct {
	Path     string
	Features []string   // column names in file order (or the requested order)
	X        *mat.Dense // rows × len(Features); nil when the table has no rows
	Labels   []string   // raw label value per row
	Bytes    int64      // size of the file on disk (raw data that stays put)

	// lines[i] is the 1-based file line of row i, so later errors (ClassIndex)
	// can point at the file. It is nil for tables not built by LoadCSV.
	lines []int
}

// Options says which columns of a file to use.
type Options struct {
	Label    string   // label column name; required
	Features []string // optional: which columns, in this order; empty = every column except the label, in file order (all must be numeric)
}

// Error is the one error type this package returns for bad input. Line is
// 1-based and Column is a column name; either is left zero when the problem
// is not tied to one line or column.
type Error struct {
	Path   string
	Line   int
	Column string
	Msg    string
	// Value is the offending cell's text when the error is about one cell.
	// It is data: Redacted drops it before an error leaves the site.
	Value string
	// Hint describes the file to help fix the problem (the columns it does
	// have, a near miss). It is about the data: Redacted drops it.
	Hint string
	// Err is the underlying cause, if any (for example fs.ErrNotExist), so
	// errors.Is keeps working through an *Error.
	Err error
}

// Error formats as path:line: column "x": msg, leaving out the parts that are
// zero, so editors and terminals can jump to the location.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, "column %q: ", e.Column)
	}
	b.WriteString(e.Msg)
	b.WriteString(e.Hint)
	return b.String()
}

// Redacted returns a copy fit to leave the site: the file by its base name
// only, no cell value and no hint about the file's columns — the line and
// column say where to look.
func (e *Error) Redacted() *Error {
	c := *e
	c.Path = filepath.Base(e.Path)
	c.Hint = ""
	if e.Value != "" {
		q := strconv.Quote(e.Value)
		c.Msg = strings.ReplaceAll(c.Msg, " (cell is "+q+")", "")
		c.Msg = strings.ReplaceAll(c.Msg, q, "the value (withheld; it stays at the site)")
		c.Value = ""
	}
	return &c
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// utf8BOM is what Excel and some Windows tools put before the header.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// LoadCSV reads a CSV file with a header row into a Table. Cells and header
// names are trimmed of surrounding whitespace (the one normalization of
// column names, applied here and by ReadHeader alike); the label and
// feature names in opts must match a trimmed header name exactly. Blank
// lines are skipped. Every feature cell must
// be a finite number and every label cell non-empty.
func LoadCSV(path string, opts Options) (*Table, error) {
	f, size, err := open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	r := newReader(f)
	header, headerLine, err := readHeader(r, path)
	if err != nil {
		return nil, err
	}
	labelIdx, featIdx, features, err := resolveColumns(path, headerLine, header, opts)
	if err != nil {
		return nil, err
	}

	t := &Table{Path: path, Features: features, Bytes: size}
	var data []float64
	interned := make(map[string]string)
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, readError(path, err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) != len(header) {
			hint := "check for a missing or extra comma, or quote cells that contain commas"
			if len(rec) == len(header)+1 && strings.TrimSpace(rec[len(rec)-1]) == "" {
				hint = "the line ends with an extra comma"
			}
			return nil, &Error{Path: path, Line: line, Msg: fmt.Sprintf(
				"wrong number of fields: expected %d (as in the header on line %d), got %d; %s",
				len(header), headerLine, len(rec), hint)}
		}
		label := strings.TrimSpace(rec[labelIdx])
		if label == "" {
			return nil, &Error{Path: path, Line: line, Column: header[labelIdx],
				Msg: "empty label; every row needs a class label (fill it in or drop the row)"}
		}
		for k, j := range featIdx {
			v, err := parseCell(rec[j])
			if err != nil {
				return nil, &Error{Path: path, Line: line, Column: features[k], Msg: err.Error(), Value: strings.TrimSpace(rec[j])}
			}
			data = append(data, v)
		}
		t.Labels = append(t.Labels, intern(interned, label))
		t.lines = append(t.lines, line)
	}
	if len(t.Labels) == 0 {
		return nil, &Error{Path: path, Msg: fmt.Sprintf(
			"no data rows: the file has a header (line %d) but nothing after it", headerLine)}
	}
	t.X = mat.NewDense(len(t.Labels), len(features), data)
	return t, nil
}

// open opens path for reading and returns its size, turning the usual
// failures into an *Error that says what to do.
func open(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fileError(path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fileError(path, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, 0, &Error{Path: path, Msg: "is a directory, not a CSV file"}
	}
	return f, st.Size(), nil
}

func fileError(path string, err error) error {
	cause := err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		cause = pe.Err // the path is already in our message
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		msg := "file not found; check the path"
		if wd, werr := os.Getwd(); werr == nil && !filepath.IsAbs(path) {
			msg += " (relative paths are resolved from " + wd + ")"
		}
		return &Error{Path: path, Msg: msg, Err: err}
	case errors.Is(err, fs.ErrPermission):
		return &Error{Path: path, Msg: "permission denied; the file must be readable by this process", Err: err}
	default:
		return &Error{Path: path, Msg: "cannot read file: " + cause.Error(), Err: err}
	}
}

// newReader returns a csv.Reader that skips a leading UTF-8 BOM and leaves
// field-count checks to us, so ragged rows get a line number and a hint.
func newReader(f io.Reader) *csv.Reader {
	br := bufio.NewReader(f)
	if b, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(b, utf8BOM) {
		br.Discard(len(utf8BOM))
	}
	r := csv.NewReader(br)
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	return r
}

// readHeader reads and trims the header row and rejects empty or duplicate
// column names, returning the header's line number.
func readHeader(r *csv.Reader, path string) ([]string, int, error) {
	rec, err := r.Read()
	if err == io.EOF {
		return nil, 0, &Error{Path: path, Msg: "file is empty; expected a header row naming the columns, then one row per sample"}
	}
	if err != nil {
		return nil, 0, readError(path, err)
	}
	line, _ := r.FieldPos(0)
	header := make([]string, len(rec))
	first := make(map[string]int, len(rec))
	for i, c := range rec {
		c = strings.TrimSpace(c)
		header[i] = c
		if c == "" {
			return nil, 0, &Error{Path: path, Line: line, Msg: fmt.Sprintf(
				"header column %d has no name; every column needs a unique name", i+1)}
		}
		if j, dup := first[c]; dup {
			return nil, 0, &Error{Path: path, Line: line, Column: c, Msg: fmt.Sprintf(
				"duplicate column name (columns %d and %d); column names must be unique", j+1, i+1)}
		}
		first[c] = i
	}
	return header, line, nil
}

// resolveColumns finds the label column and the feature columns in header.
func resolveColumns(path string, line int, header []string, opts Options) (labelIdx int, featIdx []int, features []string, err error) {
	index := make(map[string]int, len(header))
	for i, c := range header {
		index[c] = i
	}
	// Requested names are matched exactly against the (trimmed) header: the
	// site's policy judged the names as the job wrote them, so a name that
	// only matches after trimming or case-folding is a different column.
	label := opts.Label
	if label == "" {
		return 0, nil, nil, &Error{Path: path, Msg: "no label column given; name one of the columns: " + available(header)}
	}
	labelIdx, ok := index[label]
	if !ok {
		return 0, nil, nil, &Error{Path: path, Line: line, Column: label,
			Msg: "label column not in the header", Hint: suggest(label, header)}
	}

	if len(opts.Features) == 0 {
		for i, c := range header {
			if i != labelIdx {
				featIdx = append(featIdx, i)
				features = append(features, c)
			}
		}
		if len(features) == 0 {
			return 0, nil, nil, &Error{Path: path, Line: line, Msg: fmt.Sprintf(
				"no feature columns: the header has only the label column %q", label)}
		}
		return labelIdx, featIdx, features, nil
	}

	seen := make(map[string]bool, len(opts.Features))
	for _, name := range opts.Features {
		i, ok := index[name]
		switch {
		case !ok:
			return 0, nil, nil, &Error{Path: path, Line: line, Column: name,
				Msg: "requested feature column not in the header", Hint: suggest(name, header)}
		case i == labelIdx:
			return 0, nil, nil, &Error{Path: path, Line: line, Column: name,
				Msg: "is the label column and cannot also be a feature"}
		case seen[name]:
			return 0, nil, nil, &Error{Path: path, Line: line, Column: name,
				Msg: "requested twice in the feature list; list each feature once"}
		}
		seen[name] = true
		featIdx = append(featIdx, i)
		features = append(features, name)
	}
	return labelIdx, featIdx, features, nil
}

// suggest lists the available columns, pointing out a near miss in case or
// whitespace and a header that looks like a data row.
func suggest(name string, header []string) string {
	for _, c := range header {
		if strings.EqualFold(c, name) {
			return fmt.Sprintf("; did you mean %q? (names are case-sensitive)", c)
		}
	}
	msg := "; available columns: " + available(header)
	numeric := 0
	for _, c := range header {
		if _, err := strconv.ParseFloat(c, 64); err == nil {
			numeric++
		}
	}
	if numeric > len(header)/2 {
		msg += " (the first line looks like data: the file needs a header row naming the columns)"
	}
	return msg
}

// available quotes the column names, shortening very wide headers so the error
// stays readable.
func available(header []string) string {
	const max = 40
	q := make([]string, 0, min(len(header), max))
	for i, c := range header {
		if i == max {
			return strings.Join(q, ", ") + fmt.Sprintf(", ... (%d columns in all)", len(header))
		}
		q = append(q, strconv.Quote(c))
	}
	return strings.Join(q, ", ")
}

// parseCell parses one feature cell, rejecting what a model cannot train on.
// The error text is the message part of an *Error.
func parseCell(raw string) (float64, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return 0, errors.New("empty cell; every feature needs a number (fill it in or drop the row)")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return 0, fmt.Errorf("%q is out of range for a 64-bit float", s)
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if math.IsNaN(v) {
		return 0, fmt.Errorf("NaN is not allowed; clean the data or drop the row (cell is %q)", s)
	}
	if math.IsInf(v, 0) {
		sign := "+"
		if v < 0 {
			sign = "-"
		}
		return 0, fmt.Errorf("%sInf is not allowed; clean the data or drop the row (cell is %q)", sign, s)
	}
	return v, nil
}

// readError turns encoding/csv's errors into an *Error with the line where
// the problem is.
func readError(path string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		// Report the line the record starts on: for an unclosed quote the
		// parser only notices at the end of the file, far from the cause.
		msg := fmt.Sprintf("malformed CSV at character %d: %v", pe.Column, pe.Err)
		if pe.Line != pe.StartLine {
			msg = fmt.Sprintf("malformed CSV in the record starting on this line (noticed at line %d, character %d): %v", pe.Line, pe.Column, pe.Err)
		}
		switch {
		case errors.Is(pe.Err, csv.ErrBareQuote):
			msg += `; a " inside an unquoted cell must be doubled and the cell quoted, e.g. "5"" disk"`
		case errors.Is(pe.Err, csv.ErrQuote):
			msg += "; a quoted cell is never closed, or has text after its closing quote"
		}
		return &Error{Path: path, Line: pe.StartLine, Msg: msg, Err: err}
	}
	return &Error{Path: path, Msg: "cannot read file: " + err.Error(), Err: err}
}

// Rows returns the number of samples.
func (t *Table) Rows() int { return len(t.Labels) }

// Classes returns the sorted distinct label values.
func (t *Table) Classes() []string {
	seen := make(map[string]bool)
	var out []string
	for _, l := range t.Labels {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// ClassIndexOrUnseen is ClassIndex for scoring: a row whose label is not
// in classes (a class the model never saw, because no site had it) gets
// index -1, which no prediction matches, and is counted in unseen instead
// of failing the whole file.
func (t *Table) ClassIndexOrUnseen(classes []string) (idx []int, unseen int, err error) {
	index := make(map[string]int, len(classes))
	for i, c := range classes {
		if j, dup := index[c]; dup {
			return nil, 0, &Error{Path: t.Path, Msg: fmt.Sprintf(
				"class %q is listed twice in the class list (positions %d and %d)", c, j, i)}
		}
		index[c] = i
	}
	idx = make([]int, len(t.Labels))
	for i, l := range t.Labels {
		k, ok := index[l]
		if !ok {
			k = -1
			unseen++
		}
		idx[i] = k
	}
	return idx, unseen, nil
}

// ClassIndex maps each row's label to its index in classes, the class order a
// model was built with (usually agreed across sites, so a site may lack some
// classes). The error names the first label that is not in classes and the
// line (or, for tables not loaded from a file, the row) where it occurs.
func (t *Table) ClassIndex(classes []string) ([]int, error) {
	out, unseen, err := t.ClassIndexOrUnseen(classes)
	if err != nil || unseen == 0 {
		return out, err
	}
	i := slices.Index(out, -1)
	l := t.Labels[i]
	e := &Error{Path: t.Path, Value: l, Msg: fmt.Sprintf("label %q is not one of the known classes %s", l, quoteAll(classes))}
	if i < len(t.lines) {
		e.Line = t.lines[i]
	} else {
		e.Msg = fmt.Sprintf("row %d: %s", i+1, e.Msg)
	}
	return nil, e
}

func quoteAll(ss []string) string {
	if len(ss) == 0 {
		return "(none: the class list is empty)"
	}
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// Split deterministically shuffles the rows with seed and puts round(fraction
// × Rows) of them in eval and the rest in train. When 0 < fraction < 1 and
// there are at least two rows, each side gets at least one row, so a small
// site still has something to evaluate on. fraction <= 0 (or NaN) gives an
// empty eval table and fraction >= 1 an empty train table; an empty table has
// 0 rows and a nil X. Both tables keep Path, Features and Bytes; t is not
// modified and the results share no memory with it.
//
// The shuffle is a Fisher–Yates driven by PCG with a fixed unbiased draw, so
// the same seed gives the same split on every platform and Go release.
func (t *Table) Split(fraction float64, seed int64) (train, eval *Table) {
	n := t.Rows()
	k := 0
	switch {
	case math.IsNaN(fraction) || fraction <= 0:
		k = 0
	case fraction >= 1:
		k = n
	default:
		k = int(math.Round(fraction * float64(n)))
		if n >= 2 {
			k = max(1, min(k, n-1))
		}
	}

	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	src := rand.NewPCG(uint64(seed), 0x5eed_da7a_5e7_0001)
	for i := n - 1; i > 0; i-- {
		j := boundedDraw(src, uint64(i+1))
		perm[i], perm[j] = perm[j], perm[i]
	}
	return t.subset(perm[k:]), t.subset(perm[:k])
}

// boundedDraw returns a uniform integer in [0, n) using Lemire's
// multiply-and-reject method on the raw PCG stream; written out here rather
// than using rand.Rand.IntN so the sequence cannot change with Go's library.
func boundedDraw(src *rand.PCG, n uint64) int {
	threshold := -n % n // 2^64 mod n: low words below this are biased
	for {
		hi, lo := bits.Mul64(src.Uint64(), n)
		if lo >= threshold {
			return int(hi)
		}
	}
}

// subset copies the given rows into a new table.
func (t *Table) subset(rows []int) *Table {
	out := &Table{Path: t.Path, Features: slices.Clone(t.Features), Bytes: t.Bytes}
	if len(rows) == 0 {
		return out
	}
	out.Labels = make([]string, len(rows))
	if t.lines != nil {
		out.lines = make([]int, len(rows))
	}
	var data []float64
	if t.X != nil {
		_, c := t.X.Dims()
		data = make([]float64, 0, len(rows)*c)
		for _, r := range rows {
			data = append(data, t.X.RawRowView(r)...)
		}
		out.X = mat.NewDense(len(rows), c, data)
	}
	for i, r := range rows {
		out.Labels[i] = t.Labels[r]
		if out.lines != nil && r < len(t.lines) {
			out.lines[i] = t.lines[r]
		}
	}
	return out
}

// RawRows returns each data record of the CSV exactly as it appears in the
// file (without the line ending), header and blank lines excluded. Tests use
// it to assert that no raw row ever leaves a site. A record whose quoted cell
// spans several lines is returned as one string containing those newlines.
func RawRows(path string) ([]string, error) {
	f, _, err := open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fileError(path, err)
	}
	data = bytes.TrimPrefix(data, utf8BOM)

	// InputOffset marks where each record ends, so slicing the raw bytes
	// between offsets gives the record's text untouched by CSV unquoting.
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	var rows []string
	var prev int64
	for n := 0; ; n++ {
		_, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, readError(path, err)
		}
		end := r.InputOffset()
		text := strings.Trim(string(data[prev:end]), "\r\n")
		prev = end
		if n == 0 {
			continue // header
		}
		rows = append(rows, text)
	}
	if prev == 0 {
		return nil, &Error{Path: path, Msg: "file is empty; expected a header row naming the columns, then one row per sample"}
	}
	return rows, nil
}

// ReadHeader returns the column names of a CSV file without reading its
// rows, for deciding what a job would touch before touching it.
func ReadHeader(path string) ([]string, error) {
	f, _, err := open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	header, _, err := readHeader(newReader(f), path)
	return header, err
}

// ValueCounts counts the rows holding each value (trimmed, as LoadCSV
// reads it) of one column of a CSV file, reading no other column. It stops
// adding new values at limit distinct ones (0: no limit) and reports
// truncated, so a column of unique values costs bounded memory.
func ValueCounts(path, column string, limit int) (counts map[string]int, truncated bool, err error) {
	f, _, err := open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	r := newReader(f)
	header, line, err := readHeader(r, path)
	if err != nil {
		return nil, false, err
	}
	idx := slices.Index(header, column)
	if idx < 0 {
		return nil, false, &Error{Path: path, Line: line, Column: column, Msg: "column not in the header"}
	}
	counts = map[string]int{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return counts, truncated, nil
		}
		if err != nil {
			return nil, false, readError(path, err)
		}
		if idx >= len(rec) {
			continue // LoadCSV reports short rows with their line
		}
		v := strings.TrimSpace(rec[idx])
		if _, ok := counts[v]; !ok && limit > 0 && len(counts) >= limit {
			truncated = true
			continue
		}
		counts[v]++
	}
}

// intern returns the one copy of label kept in seen. A cell is a substring
// of its whole line (or a reader's buffer), and keeping it would keep that
// alive; labels repeat, so one copy each is enough.
func intern(seen map[string]string, label string) string {
	if l, ok := seen[label]; ok {
		return l
	}
	label = strings.Clone(label)
	seen[label] = label
	return label
}
