package analytics

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// value is how the test sources read a cell: a number when the trimmed
// text parses as one.
func value(s string) Value {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return Value{S: s, F: f, Num: err == nil}
}

// memSource is an in-memory RowSource: a header and rows of text.
type memSource struct {
	header []string
	rows   [][]string
	scans  int
}

func (m *memSource) Columns() ([]string, error) { return m.header, nil }

func (m *memSource) Scan(columns []string, fn func([]Value) error) error {
	m.scans++
	idx, err := indexes(m.header, columns)
	if err != nil {
		return err
	}
	row := make([]Value, len(columns))
	for _, r := range m.rows {
		for i, j := range idx {
			row[i] = value(r[j])
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return nil
}

func indexes(header, columns []string) ([]int, error) {
	idx := make([]int, len(columns))
	for i, c := range columns {
		idx[i] = slices.Index(header, c)
		if idx[i] < 0 {
			return nil, fmt.Errorf("unknown column %q; available: %s", c, strings.Join(header, ", "))
		}
	}
	return idx, nil
}

// csvSource streams a CSV file with a header row, one record at a time, as
// the dataset package does: memory does not grow with the file.
type csvSource struct{ path string }

func (c csvSource) Scan(columns []string, fn func([]Value) error) error {
	f, err := os.Open(c.path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("%s: read header: %w", c.path, err)
	}
	idx, err := indexes(slices.Clone(header), columns)
	if err != nil {
		return fmt.Errorf("%s: %w", c.path, err)
	}
	row := make([]Value, len(columns))
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", c.path, err)
		}
		for i, j := range idx {
			row[i] = value(rec[j])
		}
		if err := fn(row); err != nil {
			return err
		}
	}
}

// loadCSV reads a whole CSV file into a memSource, for splitting and for
// central reference computations.
func loadCSV(t testing.TB, path string) *memSource {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return &memSource{header: recs[0], rows: recs[1:]}
}

// run drives a query end to end in process: the planner, Compute at every
// site (through the wire encoding, decoded strictly on both ends), and
// noise when prepare is given.
func run(t testing.TB, q *Query, sites []RowSource, k int, prepare func(i int, p *Partials)) (*Result, int, error) {
	t.Helper()
	p := NewPlanner(q)
	req, done, err := p.Next(nil)
	stages := 0
	for err == nil && !done {
		stages++
		got, derr := DecodeRequest(mustJSON(t, req))
		if derr != nil {
			t.Fatalf("stage %d: the site refuses the planner's request: %v", req.Stage, derr)
		}
		var answers []*Partials
		for i, s := range sites {
			a, cerr := Compute(got.Query, got, k, s)
			if cerr != nil {
				return nil, stages, cerr
			}
			if prepare != nil {
				prepare(i, a)
			}
			back, derr := DecodePartials(mustJSON(t, a))
			if derr != nil {
				t.Fatalf("stage %d: the planner refuses site %d's answer: %v", req.Stage, i, derr)
			}
			answers = append(answers, back)
		}
		req, done, err = p.Next(answers)
	}
	if err != nil {
		return nil, stages, err
	}
	res, err := p.Result()
	return res, stages, err
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
