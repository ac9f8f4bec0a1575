package analytics_test

import (
	"encoding/json"
	"fmt"
	"log"
	"strconv"

	"github.com/federa-dev/federa/analytics"
)

// rows is a tiny in-memory RowSource: one column "x" and a group "g".
type rows [][2]string

func (r rows) Scan(columns []string, fn func([]analytics.Value) error) error {
	row := make([]analytics.Value, len(columns))
	for _, rec := range r {
		for i, c := range columns {
			s := rec[0]
			if c == "x" {
				s = rec[1]
			}
			f, err := strconv.ParseFloat(s, 64)
			row[i] = analytics.Value{S: s, F: f, Num: err == nil}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return nil
}

// The whole protocol in one process: a planner, two sites, and the stages
// between them until the result is complete. Exact quantiles take several
// stages; everything else is done after the first.
func Example() {
	q, err := analytics.ParseQuery("example.yaml", []byte(`
name: example
group_by: [g]
totals: true
min_count: 3
aggregates:
  - {name: n, fn: count}
  - {name: mean_x, fn: mean, column: x}
  - {name: median_x, fn: quantile, column: x, q: [0.5]}
`))
	if err != nil {
		log.Fatal(err)
	}
	sites := []analytics.RowSource{
		// c has 1 row here (< k): withheld; then b too, else the total
		// would reveal c.
		rows{{"a", "1"}, {"a", "2"}, {"a", "3"}, {"a", "4"}, {"b", "10"}, {"b", "20"}, {"b", "30"}, {"c", "7"}},
		rows{{"a", "5"}, {"a", "6"}, {"a", "7"}, {"b", "40"}, {"b", "50"}, {"b", "60"}, {"c", "8"}, {"c", "9"}, {"c", "6"}},
	}
	const k = 3 // max(min_count, the site policy's minimum)
	p := analytics.NewPlanner(q)
	req, done, err := p.Next(nil)
	for err == nil && !done {
		var answers []*analytics.Partials
		for _, s := range sites {
			part, err := analytics.Compute(q, req, k, s)
			if err != nil {
				log.Fatal(err)
			}
			answers = append(answers, part)
		}
		req, done, err = p.Next(answers)
	}
	if err != nil {
		log.Fatal(err)
	}
	res, err := p.Result()
	if err != nil {
		log.Fatal(err)
	}
	for _, g := range res.Groups {
		b, _ := json.Marshal(g)
		fmt.Println(string(b))
	}
	// Output:
	// {"group":{"g":"a"},"values":{"mean_x":4,"median_x":[4],"n":7},"suppressed":false}
	// {"group":{"g":"b"},"suppressed":true}
	// {"group":{"g":"c"},"suppressed":true}
	// {"group":{},"values":{"mean_x":15.764705882352942,"median_x":[7],"n":17},"suppressed":false}
}
