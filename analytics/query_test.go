package analytics

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const fullSpec = `
name: alcohol-by-class
dataset: wine
where:
  - {column: alcohol, op: ">=", value: 12.5}
  - {column: label, op: in, value: [a, b, 3]}
group_by: [label]
aggregates:
  - {name: n,      fn: count}
  - {name: mean_a, fn: mean,      column: alcohol}
  - {name: var_a,  fn: variance,  column: alcohol}
  - {name: hist_a, fn: histogram, column: alcohol, edges: [11, 12, 13, 14, 15]}
  - {name: med_a,  fn: quantile,  column: alcohol, q: [0.5, 0.9]}
  - {name: corr,   fn: correlation, columns: [alcohol, ash]}
  - {name: ols,    fn: linear_regression, label: alcohol, columns: [ash, hue]}
min_count: 5
totals: true
privacy: {epsilon: 1.0, delta: 1e-6, bounds: {alcohol: [10, 16], ash: [1, 4], hue: [0, 2]}}
`

func TestParseFullSpec(t *testing.T) {
	q, err := ParseQuery("q.yaml", []byte(fullSpec))
	if err != nil {
		t.Fatal(err)
	}
	if q.Name != "alcohol-by-class" || q.Dataset != "wine" || !q.Totals || q.MinCount != 5 || len(q.Aggregates) != 7 {
		t.Fatalf("parsed %+v", q)
	}
	if c := q.Where[0]; c.Op != ">=" || !c.Value.Items[0].Num || c.Value.Items[0].F != 12.5 {
		t.Fatalf("where[0] %+v", c)
	}
	if c := q.Where[1]; !c.Value.List || len(c.Value.Items) != 3 || c.Value.Items[0].Num || !c.Value.Items[2].Num {
		t.Fatalf("where[1] %+v", c)
	}
	if q.Privacy.Delta != 1e-6 || q.Privacy.Bounds["alcohol"][1] != 16 {
		t.Fatalf("privacy %+v", q.Privacy)
	}
	// The wire form decodes strictly back to the same query.
	back, err := DecodeRequest(mustJSON(t, &Request{Query: q, Stage: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Query, q) {
		t.Fatalf("JSON round trip changed the query:\n got %+v\nwant %+v", back.Query, q)
	}
}

// TestParseErrors: every bad spec gets an error naming the line, the field
// and what would be valid.
func TestParseErrors(t *testing.T) {
	const head = "name: q\n"
	const agg = "aggregates: [{name: n, fn: count}]\n"
	for _, tc := range []struct {
		name, spec string
		want       []string
	}{
		{"empty", "", []string{"file is empty"}},
		{"comments only", "# nothing\n", []string{"file is empty"}},
		{"not a mapping", "[1, 2]\n", []string{"query: want a mapping"}},
		{"two documents", head + agg + "---\n" + head + agg, []string{"more than one YAML document"}},
		{"unknown field", head + agg + "nmae: x\n", []string{"line 3: nmae: unknown field; valid: name, dataset, where"}},
		{"unknown aggregate field", head + "aggregates:\n  - {name: n, fn: count, colunm: x}\n", []string{"line 3: aggregates[0].colunm: unknown field; valid: name, fn, column"}},
		{"unknown privacy field", head + agg + "privacy: {epsilon: 1, delta: 0.1, eps: 2}\n", []string{"privacy.eps: unknown field; valid: epsilon, delta, bounds"}},
		{"duplicate field", head + agg + "name: r\n", []string{"line 3: name: given twice"}},
		{"no name", agg, []string{"name: required"}},
		{"no aggregates", head, []string{"aggregates: required"}},
		{"unknown fn", head + "aggregates: [{name: n, fn: median}]\n", []string{`line 2: aggregates[0].fn: "median" is not supported; valid: correlation, count, histogram, linear_regression, mean, quantile, stddev, sum, variance`}},
		{"duplicate names", head + "aggregates:\n  - {name: n, fn: count}\n  - {name: n, fn: mean, column: x}\n", []string{`line 4: aggregates[1].name: "n" is already the name of aggregates[0]`}},
		{"mean without column", head + "aggregates: [{name: m, fn: mean}]\n", []string{"aggregates[0].column: required"}},
		{"field fn does not take", head + "aggregates: [{name: m, fn: mean, column: x, edges: [1, 2]}]\n", []string{"aggregates[0].edges: not used by fn mean, which takes column"}},
		{"unsorted edges", head + "aggregates:\n  - {name: n, fn: count}\n  - {name: a, fn: count}\n  - {name: h, fn: histogram, column: x, edges: [1, 3, 2]}\n", []string{"line 5: aggregates[2].edges: must be sorted ascending"}},
		{"repeated edge", head + "aggregates: [{name: h, fn: histogram, column: x, edges: [1, 2, 2]}]\n", []string{"aggregates[0].edges: must be strictly ascending"}},
		{"empty edges", head + "aggregates: [{name: h, fn: histogram, column: x, edges: []}]\n", []string{"aggregates[0].edges: want at least 2 edges"}},
		{"no edges", head + "aggregates: [{name: h, fn: histogram, column: x}]\n", []string{"aggregates[0].edges: want at least 2 edges"}},
		{"infinite edge", head + "aggregates: [{name: h, fn: histogram, column: x, edges: [1, .inf]}]\n", []string{"aggregates[0].edges[1]: \".inf\" is not a finite number"}},
		{"text edge", head + "aggregates: [{name: h, fn: histogram, column: x, edges: [1, two]}]\n", []string{`aggregates[0].edges[1]: "two" is not a number`}},
		{"q above 1", head + "aggregates: [{name: m, fn: quantile, column: x, q: [0.5, 1.5]}]\n", []string{"aggregates[0].q[1]: 1.5 is outside [0, 1]"}},
		{"q below 0", head + "aggregates: [{name: m, fn: quantile, column: x, q: [-0.1]}]\n", []string{"aggregates[0].q[0]: -0.1 is outside [0, 1]"}},
		{"no q", head + "aggregates: [{name: m, fn: quantile, column: x}]\n", []string{"aggregates[0].q: required"}},
		{"correlation of one column", head + "aggregates: [{name: c, fn: correlation, columns: [x]}]\n", []string{"aggregates[0].columns: want at least 2 columns"}},
		{"repeated column", head + "aggregates: [{name: c, fn: correlation, columns: [x, x]}]\n", []string{`aggregates[0].columns[1]: "x" is already aggregates[0].columns[0]`}},
		{"regression label in columns", head + "aggregates: [{name: r, fn: linear_regression, label: y, columns: [x, y]}]\n", []string{`aggregates[0].label: "y" is also in columns`}},
		{"bad op", head + agg + "where: [{column: x, op: '=', value: 1}]\n", []string{`line 3: where[0].op: "=" is not supported; valid: ==, !=, <, <=, >, >=, in`}},
		{"in without a list", head + agg + "where: [{column: x, op: in, value: 1}]\n", []string{"where[0].value: op in needs a list, e.g. [a, b]"}},
		{"list without in", head + agg + "where: [{column: x, op: '==', value: [1, 2]}]\n", []string{"where[0].value: a list is only for op in"}},
		{"ordering text", head + agg + "where: [{column: x, op: '<', value: abc}]\n", []string{`where[0].value: op < compares numbers; "abc" is not a number`}},
		{"where without value", head + agg + "where: [{column: x, op: '=='}]\n", []string{"where[0].value: required"}},
		{"where null value", head + agg + "where: [{column: x, op: '==', value: ~}]\n", []string{"where[0].value: empty; give a value or leave the field out"}},
		{"group_by limit", head + agg + "group_by: [a, b, c, d, e, f, g, h, i]\n", []string{"group_by: 9 columns; at most 8"}},
		{"group_by repeated", head + agg + "group_by: [a, a]\n", []string{`group_by[1]: "a" is already group_by[0]`}},
		{"group_by scalar", head + agg + "group_by: label\n", []string{"group_by: want a list"}},
		{"min_count negative", head + agg + "min_count: -1\n", []string{"min_count: -1 is out of range"}},
		{"min_count fraction", head + agg + "min_count: 2.5\n", []string{`min_count: "2.5" is not a whole number`}},
		{"totals not bool", head + agg + "totals: yes\n", []string{`totals: "yes" is not true or false`}},
		{"epsilon zero", head + agg + "privacy: {epsilon: 0, delta: 1e-6}\n", []string{"privacy.epsilon: 0 is out of range; want a finite number > 0"}},
		{"epsilon negative", head + agg + "privacy: {epsilon: -1, delta: 1e-6}\n", []string{"privacy.epsilon: -1 is out of range"}},
		{"delta one", head + agg + "privacy: {epsilon: 1, delta: 1}\n", []string{"privacy.delta: 1 is out of range; want 0 < delta < 1"}},
		{"delta missing", head + agg + "privacy: {epsilon: 1}\n", []string{"privacy.delta: 0 is out of range"}},
		{"bounds missing", head + "aggregates: [{name: m, fn: mean, column: alcohol}]\nprivacy: {epsilon: 1, delta: 1e-6}\n", []string{"line 3: privacy.bounds: missing bounds for column alcohol, which aggregates[0] (mean) uses; add alcohol: [low, high]"}},
		{"bounds for a regression label", head + "aggregates: [{name: r, fn: linear_regression, label: y, columns: [x]}]\nprivacy: {epsilon: 1, delta: 1e-6, bounds: {x: [0, 1]}}\n", []string{"missing bounds for column y"}},
		{"bounds reversed", head + "aggregates: [{name: m, fn: mean, column: a}]\nprivacy: {epsilon: 1, delta: 1e-6, bounds: {a: [5, 1]}}\n", []string{"privacy.bounds.a: low 5 is not below high 1"}},
		{"bounds three numbers", head + "aggregates: [{name: m, fn: mean, column: a}]\nprivacy: {epsilon: 1, delta: 1e-6, bounds: {a: [1, 2, 3]}}\n", []string{"privacy.bounds.a: want [low, high], got 3 numbers"}},
		{"bounds too wide", head + "aggregates: [{name: v, fn: variance, column: a}]\nprivacy: {epsilon: 1, delta: 1e-6, bounds: {a: [-1e100, 1e100]}}\n", []string{"privacy.bounds: the bounds are too wide"}},
		{"alias", "name: &n q\ndataset: *n\n" + agg, []string{"dataset: YAML aliases (*n) are not supported"}},
		{"too many quantiles", head + "aggregates: [{name: m, fn: quantile, column: x, q: [" + strings.Repeat("0.5, ", 32) + "0.5]}]\n", []string{"aggregates: 33 quantiles"}},
		{"all problems at once", "aggregates: [{name: m, fn: mean}]\nmin_count: -2\n", []string{"name: required", "aggregates[0].column: required", "min_count: -2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ParseQuery("q.yaml", []byte(tc.spec))
			if err == nil {
				t.Fatalf("accepted: %+v", q)
			}
			if q != nil {
				t.Fatal("a query returned beside an error")
			}
			if !strings.HasPrefix(err.Error(), "query spec q.yaml: ") {
				t.Errorf("error does not name the file: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateOptions(t *testing.T) {
	q := mustParse(t, "name: q\naggregates: [{name: n, fn: count}]\n")
	if err := q.Validate(ValidateOptions{}); err != nil {
		t.Fatalf("dataset is optional by default: %v", err)
	}
	err := q.Validate(ValidateOptions{RequireDataset: true})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "dataset" {
		t.Fatalf("RequireDataset without a dataset: %v", err)
	}
	q.Dataset = "wine"
	if err := q.Validate(ValidateOptions{RequireDataset: true}); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseQuery checks that no input panics ParseQuery, and that whatever
// it accepts validates, survives the wire unchanged and is accepted by a
// site.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		fullSpec,
		"name: q\naggregates: [{name: n, fn: count}]\n",
		"name: q\naggregates: [{name: h, fn: histogram, column: x, edges: [1, 3, 2]}]\n",
		"name: q\nwhere: [{column: x, op: in, value: [1, a, 2.5e3]}]\naggregates: [{name: n, fn: count}]\n",
		"name: q\nwhere: [{column: x, op: '==', value: -0}]\naggregates: [{name: n, fn: count}]\n",
		"name: &a q\ndataset: *a\n",
		"name: [q\n",
		"name: q\n---\nname: r\n",
		"<<: {name: q}\n",
		"name: q\naggregates: [{name: n, fn: quantile, column: x, q: [.nan]}]\n",
		"",
		"~\n",
		"name: q\nprivacy: {epsilon: 1e308, delta: 0.5, bounds: {x: [-1e308, 1e308]}}\naggregates: [{name: v, fn: variance, column: x}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := ParseQuery("fuzz.yaml", data)
		if err != nil {
			if q != nil {
				t.Fatalf("a query returned beside error %v", err)
			}
			return
		}
		if err := q.Validate(ValidateOptions{}); err != nil {
			t.Fatalf("accepted query fails Validate: %v\n%q", err, data)
		}
		wire, err := json.Marshal(&Request{Query: q, Stage: 1})
		if err != nil {
			t.Fatalf("accepted query cannot be marshalled: %v\n%q", err, data)
		}
		back, err := DecodeRequest(wire)
		if err != nil {
			t.Fatalf("accepted query refused on the wire: %v\n%q", err, data)
		}
		if !reflect.DeepEqual(back.Query, q) || back.Query.Digest() != q.Digest() {
			t.Fatalf("the wire changed an accepted query:\n got %+v\nwant %+v", back.Query, q)
		}
		if q.private() {
			if s, err := Sensitivity(q); err != nil || !(s > 0) {
				t.Fatalf("accepted private query has no sensitivity (%v): %v", s, err)
			}
		}
	})
}
