package analytics

import (
	"bytes"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
)

func TestDecodeRequestStrict(t *testing.T) {
	q := mustParse(t, "name: q\ngroup_by: [g]\naggregates: [{name: m, fn: quantile, column: x, q: [0.5]}]\n")
	good := string(mustJSON(t, &Request{Query: q, Stage: 2, Thresholds: []ThresholdSet{{Cell: Cell{Group: []string{"a"}}, Aggregate: "m", Thresholds: []float64{1, 2}}}}))
	if _, err := DecodeRequest([]byte(good)); err != nil {
		t.Fatal(err)
	}
	huge := `{"query":` + string(mustJSON(t, q)) + `,"stage":2,"thresholds":[{"group":["a"],"aggregate":"m","thresholds":[` + strings.Repeat("1,", MaxValues+1<<16) + `1]}]}`
	for _, tc := range []struct {
		name, msg, want string
	}{
		{"unknown top-level field", strings.Replace(good, `"stage"`, `"extra":1,"stage"`, 1), `unknown field "extra"`},
		{"unknown query field", strings.Replace(good, `"name":"q"`, `"name":"q","nmae":"r"`, 1), `unknown field "nmae"`},
		{"unknown aggregate field", strings.Replace(good, `"fn":"quantile"`, `"fn":"quantile","colunm":"x"`, 1), `unknown field "colunm"`},
		{"unknown threshold field", strings.Replace(good, `"aggregate":"m"`, `"aggregate":"m","cell":1`, 1), `unknown field "cell"`},
		{"wrong type", strings.Replace(good, `"stage":2`, `"stage":"2"`, 1), "cannot unmarshal"},
		{"trailing data", good + `{}`, "trailing data"},
		{"not JSON", `{"query":`, "unexpected EOF"},
		{"oversize", `{"query":null,"pad":"` + strings.Repeat("x", MaxMessageBytes) + `"}`, "bytes; at most"},
		{"too many values", huge, "more than"},
		{"too deep", strings.Repeat("[", 20) + strings.Repeat("]", 20), "nested deeper"},
		{"no query", `{"stage":1}`, "no query"},
		{"invalid query", strings.Replace(good, `"q":[0.5]`, `"q":[1.5]`, 1), "aggregates[0].q[0]: 1.5 is outside [0, 1]"},
		{"stage 0", strings.Replace(good, `"stage":2`, `"stage":0`, 1), "stage 0 is out of range"},
		{"thresholds at stage 1", strings.Replace(good, `"stage":2`, `"stage":1`, 1), "stage 1 carries no thresholds"},
		{"unsorted thresholds", strings.Replace(good, `[1,2]`, `[2,1]`, 1), "not above the one before"},
		{"not a quantile", strings.Replace(good, `"aggregate":"m"`, `"aggregate":"n"`, 1), `"n" is not a quantile aggregate`},
		{"bad cell", strings.Replace(good, `["a"]`, `["a","b"]`, 1), "2 group values; group_by has 1"},
		{"literal object", `{"query":{"name":"q","where":[{"column":"x","op":"==","value":{"a":1}}],"aggregates":[{"name":"n","fn":"count"}]},"stage":1}`, "want a number or a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := DecodeRequest([]byte(tc.msg))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeRequest: %v, want an error containing %q", err, tc.want)
			}
			if r != nil {
				t.Fatal("a request returned beside an error")
			}
		})
	}
}

func TestDecodePartialsStrict(t *testing.T) {
	good := `{"query":"d","stage":1,"cells":[{"group":["a"],"values":{"n":[3]}},{"total":true,"suppressed":true}]}`
	if _, err := DecodePartials([]byte(good)); err != nil {
		t.Fatal(err)
	}
	many := `{"query":"d","stage":1,"cells":[{"total":true,"values":{"n":[` + strings.Repeat("0,", MaxValues) + `0]}}]}`
	var cells bytes.Buffer
	for i := range MaxGroups + 2 {
		fmt.Fprintf(&cells, `{"group":["%d"]},`, i)
	}
	tooManyCells := `{"query":"d","stage":1,"cells":[` + strings.TrimSuffix(cells.String(), ",") + `]}`
	for _, tc := range []struct {
		name, msg, want string
	}{
		{"unknown field", strings.Replace(good, `"stage"`, `"rows":[[1]],"stage"`, 1), `unknown field "rows"`},
		{"unknown cell field", strings.Replace(good, `"total":true`, `"total":true,"raw":"x"`, 1), `unknown field "raw"`},
		{"oversize", `{"query":"` + strings.Repeat("x", MaxMessageBytes) + `"}`, "bytes; at most"},
		{"too many values", many, "more than"},
		{"too many cells", tooManyCells, "cells; at most"},
		{"suppressed with values", strings.Replace(good, `"suppressed":true`, `"suppressed":true,"values":{"n":[1]}`, 1), "a suppressed cell carries values"},
		{"negative noise", strings.Replace(good, `"stage":1`, `"stage":1,"noise_std":-1`, 1), "must be finite and not negative"},
		{"number out of range", strings.Replace(good, `[3]`, `[1e999]`, 1), "cannot unmarshal"},
		{"trailing", good + " x", "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := DecodePartials([]byte(tc.msg))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodePartials: %v, want an error containing %q", err, tc.want)
			}
			if p != nil {
				t.Fatal("partials returned beside an error")
			}
		})
	}
}

// TestPlannerRefusesBadAnswers: answers that no honest site sends fail the
// query with an error naming the answer and what is wrong.
func TestPlannerRefusesBadAnswers(t *testing.T) {
	q := mustParse(t, `
name: q
group_by: [g]
totals: true
aggregates:
  - {name: n, fn: count}
  - {name: v, fn: variance, column: x}
  - {name: h, fn: histogram, column: x, edges: [0, 1, 2]}
`)
	other := mustParse(t, "name: other\naggregates: [{name: n, fn: count}]\n")
	ok := func() *Partials {
		return &Partials{Query: q.Digest(), Stage: 1, Cells: []CellPartial{
			{Cell: Cell{Group: []string{"a"}}, Values: map[string][]float64{"n": {6}, "v": {6, 3, 2}, "h": {3, 3}}},
			{Cell: Cell{Total: true}, Values: map[string][]float64{"n": {6}, "v": {6, 3, 2}, "h": {3, 3}}},
		}}
	}
	for _, tc := range []struct {
		name   string
		change func(p *Partials)
		want   string
	}{
		{"other query", func(p *Partials) { p.Query = other.Digest() }, "answers a different query"},
		{"other stage", func(p *Partials) { p.Stage = 2 }, "answers stage 2"},
		{"missing aggregate", func(p *Partials) { delete(p.Cells[0].Values, "h") }, "2 aggregates; the query has 3"},
		{"short vector", func(p *Partials) { p.Cells[0].Values["v"] = []float64{6, 3} }, "aggregate v: 2 values; want 3"},
		{"renamed aggregate", func(p *Partials) { p.Cells[0].Values["x"] = p.Cells[0].Values["h"]; delete(p.Cells[0].Values, "h") }, "aggregate h: 0 values; want 2"},
		{"cell twice", func(p *Partials) { p.Cells[1] = p.Cells[0] }, "appears twice"},
		{"wrong group arity", func(p *Partials) { p.Cells[0].Group = []string{"a", "b"} }, "2 group values"},
		{"fractional count", func(p *Partials) { p.Cells[0].Values["n"] = []float64{2.5} }, "not a count"},
		{"negative bin", func(p *Partials) { p.Cells[0].Values["h"] = []float64{-1, 3} }, "bin 0 count -1 is not a count"},
		{"negative M2", func(p *Partials) { p.Cells[0].Values["v"] = []float64{6, 3, -2} }, "is negative"},
		{"noise without privacy", func(p *Partials) { p.NoiseStd = 1 }, "noise on a query without privacy"},
		{"not finite", func(p *Partials) { p.Cells[0].Values["v"][1] = math.Inf(1) }, "not finite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPlanner(q)
			if _, _, err := p.Next(nil); err != nil {
				t.Fatal(err)
			}
			a := ok()
			tc.change(a)
			_, _, err := p.Next([]*Partials{ok(), a})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "answer 1") {
				t.Fatalf("Next: %v, want an error about answer 1 containing %q", err, tc.want)
			}
			if _, _, again := p.Next(nil); again == nil {
				t.Fatal("the planner went on after an error")
			}
			if _, err := p.Result(); err == nil {
				t.Fatal("Result after an error")
			}
		})
	}
	// The unchanged answers are accepted.
	p := NewPlanner(q)
	p.Next(nil)
	if _, done, err := p.Next([]*Partials{ok(), ok()}); err != nil || !done {
		t.Fatalf("done %v, err %v", done, err)
	}
}

func TestPlannerProtocol(t *testing.T) {
	q := mustParse(t, "name: q\naggregates: [{name: n, fn: count}]\n")
	p := NewPlanner(q)
	if _, err := p.Result(); err != ErrNotDone {
		t.Fatalf("Result before the first stage: %v", err)
	}
	if _, _, err := p.Next([]*Partials{{}}); err == nil {
		t.Fatal("answers before the first request accepted")
	}
	p = NewPlanner(q)
	req, done, err := p.Next(nil)
	if err != nil || done || req.Stage != 1 || req.Query != q || len(req.Thresholds) != 0 {
		t.Fatalf("first request %+v, done %v, err %v", req, done, err)
	}
	if _, _, err := p.Next(nil); err == nil || !strings.Contains(err.Error(), "no site answered") {
		t.Fatalf("no answers: %v", err)
	}
	bad := NewPlanner(&Query{Name: "x"})
	if _, _, err := bad.Next(nil); err == nil || !strings.Contains(err.Error(), "aggregates: required") {
		t.Fatalf("planner of an invalid query: %v", err)
	}
}

// TestComputeRefusesForeignRequest: a stage request carrying another query
// than the one the site admitted is refused.
func TestComputeRefusesForeignRequest(t *testing.T) {
	q := mustParse(t, "name: q\naggregates: [{name: n, fn: count}]\n")
	other := mustParse(t, "name: q\naggregates: [{name: n, fn: count, column: secret}]\n")
	m := &memSource{header: []string{"secret"}, rows: [][]string{{"1"}}}
	if _, err := Compute(q, &Request{Query: other, Stage: 1}, 1, m); err == nil || !strings.Contains(err.Error(), "different query") {
		t.Fatalf("Compute: %v", err)
	}
}

// TestHostileMessageRefusedBeforeDecoding: a message of half a million
// tiny values is refused without allocating its decoded form.
func TestHostileMessageRefusedBeforeDecoding(t *testing.T) {
	msg := []byte(`{"query":"d","stage":1,"cells":[{"total":true,"values":{"n":[` + strings.Repeat("0,", 2*MaxValues) + `0]}}]}`)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := DecodePartials(msg)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("accepted")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("refusing a %d-byte message allocated %d bytes: %v", len(msg), grew, err)
	}
}

// TestThresholdBudget: with many cells and quantiles, a stage spreads
// MaxThresholds over the intervals instead of exceeding it, and the
// request still passes the sites' checks.
func TestThresholdBudget(t *testing.T) {
	var qs string
	for i := range 32 {
		qs += fmt.Sprintf("%v, ", float64(i)/31.5)
	}
	qs = strings.TrimSuffix(qs, ", ")
	q := mustParse(t, "name: q\ngroup_by: [g]\naggregates: [{name: m, fn: quantile, column: x, q: ["+qs+"]}]\n")
	p := NewPlanner(q)
	p.Next(nil)
	site := &Partials{Query: q.Digest(), Stage: 1}
	for i := range 300 { // 300 cells · 1023 thresholds > MaxThresholds
		site.Cells = append(site.Cells, CellPartial{Cell: Cell{Group: []string{fmt.Sprint(i)}}, Values: map[string][]float64{"m": {1000}}})
	}
	req, done, err := p.Next([]*Partials{site})
	for stage := 2; stage <= 3; stage++ {
		if err != nil || done {
			t.Fatalf("done %v, err %v", done, err)
		}
		n := 0
		for _, ts := range req.Thresholds {
			n += len(ts.Thresholds)
		}
		if n > MaxThresholds || n < MaxThresholds/4 {
			t.Fatalf("stage %d sends %d thresholds; the budget is %d", stage, n, MaxThresholds)
		}
		if _, err := DecodeRequest(mustJSON(t, req)); err != nil {
			t.Fatalf("the sites refuse the stage %d request: %v", stage, err)
		}
		// Answer as a site holding the values 0 … 999 in every cell.
		ans := &Partials{Query: q.Digest(), Stage: stage}
		for _, ts := range req.Thresholds {
			counts := make([]float64, len(ts.Thresholds))
			for i, x := range ts.Thresholds {
				counts[i] = min(max(math.Floor(x)+1, 0), 1000)
			}
			ans.Cells = append(ans.Cells, CellPartial{Cell: ts.Cell, Values: map[string][]float64{"m": counts}})
		}
		req, done, err = p.Next([]*Partials{ans})
	}
}
