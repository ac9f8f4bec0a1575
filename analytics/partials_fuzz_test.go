package analytics

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzMergePartials is the coordinator's side of a query: one site's
// answer is arbitrary bytes, decoded with DecodePartials and merged by the
// planner beside an honest site's, stage after stage until the query is
// done (later stages reuse the fuzzed answer with the stage number the
// planner asked for). Nothing may panic; a refusal names the message or
// the answer; an accepted set of answers gives a Result that encodes as
// JSON (no NaN or Inf reaches it).
func FuzzMergePartials(f *testing.F) {
	q := mustParse(f, `
name: q
group_by: [g]
totals: true
aggregates:
  - {name: n, fn: count}
  - {name: m, fn: mean, column: x}
  - {name: v, fn: variance, column: x}
  - {name: h, fn: histogram, column: x, edges: [0, 1, 2]}
  - {name: c, fn: correlation, columns: [x, y]}
  - {name: r, fn: linear_regression, label: y, columns: [x]}
  - {name: p, fn: quantile, column: x, q: [0.5]}
`)
	src := &memSource{header: []string{"g", "x", "y"}, rows: [][]string{
		{"a", "0.5", "1"}, {"a", "1.5", "3"}, {"a", "1", "2.5"}, {"b", "0.25", "0"}, {"b", "1.75", "4"}, {"b", "1", "1"},
	}}
	honest := func(tb testing.TB, req *Request) *Partials {
		tb.Helper()
		p, err := Compute(q, req, 1, src)
		if err != nil {
			tb.Fatalf("an honest site refuses stage %d: %v", req.Stage, err)
		}
		return p
	}
	first := NewPlanner(q)
	req, _, err := first.Next(nil)
	if err != nil {
		f.Fatal(err)
	}
	seed, err := json.Marshal(honest(f, req))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"query":"x","stage":1,"cells":[{"total":true,"values":{"n":[1e308]}}]}`))
	f.Add([]byte(`{"query":"x","stage":1,"cells":[{"group":["a"],"values":{"n":[-1],"h":[1,"NaN"]}}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := NewPlanner(q)
		req, done, err := p.Next(nil)
		if err != nil {
			t.Fatal(err)
		}
		for stage := 0; !done; stage++ {
			if stage > 10 {
				t.Fatal("the planner did not finish in 10 stages")
			}
			hostile, err := DecodePartials(b)
			if err != nil {
				if !strings.HasPrefix(err.Error(), "decode partials: ") {
					t.Fatalf("error %q does not name what it decoded", err)
				}
				return
			}
			if stage > 0 {
				hostile.Stage = req.Stage
			}
			req, done, err = p.Next([]*Partials{honest(t, req), hostile})
			if err != nil {
				if !strings.Contains(err.Error(), "answer 1") {
					t.Fatalf("refusal %q does not name the hostile answer", err)
				}
				if _, err := p.Result(); err == nil {
					t.Fatal("Result after a refused answer")
				}
				return
			}
		}
		res, err := p.Result()
		if err != nil {
			t.Fatalf("Result after the last stage: %v", err)
		}
		if _, err := json.Marshal(res); err != nil {
			t.Fatalf("accepted answers give a result that does not encode: %v", err)
		}
	})
}
