package analytics

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// regions builds a site holding, per region, that many rows with x = 1, 2,
// 3, … (positive, so a union's sum exceeds any of its parts').
func regions(counts map[string]int) *memSource {
	m := &memSource{header: []string{"region", "x"}}
	for _, r := range sortedKeys(counts) {
		for i := range counts[r] {
			m.rows = append(m.rows, []string{r, fmt.Sprint(i + 1 + len(r))})
		}
	}
	return m
}

const regionQuery = `
name: by-region
group_by: [region]
totals: true
min_count: 5
aggregates:
  - {name: n, fn: count}
  - {name: sx, fn: sum, column: x}
`

func mustParse(t testing.TB, spec string) *Query {
	t.Helper()
	q, err := ParseQuery("test.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func groupOf(t testing.TB, res *Result, key string) Group {
	t.Helper()
	for _, g := range res.Groups {
		if g.Group["region"] == key || (key == "" && len(g.Group) == 0) {
			return g
		}
	}
	t.Fatalf("no group %q in %s", key, mustJSON(t, res))
	return Group{}
}

// TestSmallCellSuppressedEverywhere: one site holds k−1 rows of a region
// that the others hold plenty of. The region is suppressed in the
// published result and carries no values.
func TestSmallCellSuppressedEverywhere(t *testing.T) {
	q := mustParse(t, regionQuery)
	sites := []RowSource{
		regions(map[string]int{"north": 4, "south": 30, "east": 40, "west": 50}),
		regions(map[string]int{"north": 20, "south": 30, "east": 40, "west": 50}),
		regions(map[string]int{"north": 20, "south": 30, "east": 40, "west": 50}),
	}
	res, _, err := run(t, q, sites, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	north := groupOf(t, res, "north")
	if !north.Suppressed || north.Values != nil {
		t.Fatalf("north (4 rows at one site, k=5) published: %+v", north)
	}
	if strings.Contains(string(mustJSON(t, north)), "values") {
		t.Errorf("a suppressed cell's JSON carries values: %s", mustJSON(t, north))
	}
	checkNotDerivable(t, q, res, sites, 5)
}

// TestSmallCellOnlyAtOneSite: a region only one site holds, with k−1 rows.
func TestSmallCellOnlyAtOneSite(t *testing.T) {
	q := mustParse(t, regionQuery)
	sites := []RowSource{
		regions(map[string]int{"rare": 4, "south": 30, "east": 40}),
		regions(map[string]int{"south": 30, "east": 40}),
		regions(map[string]int{"south": 7, "east": 40}),
	}
	res, _, err := run(t, q, sites, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g := groupOf(t, res, "rare"); !g.Suppressed {
		t.Fatalf("rare published: %+v", g)
	}
	checkNotDerivable(t, q, res, sites, 5)
}

// TestSiteKStricterThanQuery: the site's own k (passed to Compute) wins
// over a smaller min_count.
func TestSiteKStricterThanQuery(t *testing.T) {
	q := mustParse(t, regionQuery) // min_count 5
	sites := []RowSource{regions(map[string]int{"north": 8, "south": 30, "east": 40})}
	res, _, err := run(t, q, sites, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g := groupOf(t, res, "north"); !g.Suppressed {
		t.Fatalf("north has 8 rows at a site with k=10 and was published: %+v", g)
	}
	// And a k below min_count does not loosen it.
	res, _, err = run(t, q, []RowSource{regions(map[string]int{"north": 4, "south": 30, "east": 40})}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g := groupOf(t, res, "north"); !g.Suppressed {
		t.Fatalf("k=1 passed to Compute overrode min_count 5: %+v", g)
	}
}

// TestMissingValuesCountForSuppression: a cell with many rows but only k−1
// values of an aggregate's column is withheld: the mean of those few
// values would describe fewer than k people.
func TestMissingValuesCountForSuppression(t *testing.T) {
	q := mustParse(t, `
name: sparse
group_by: [region]
min_count: 5
aggregates:
  - {name: n, fn: count}
  - {name: mx, fn: mean, column: x}
`)
	m := &memSource{header: []string{"region", "x"}}
	for i := range 20 {
		x := ""
		if i < 3 {
			x = fmt.Sprint(100 + i)
		}
		m.rows = append(m.rows, []string{"a", x}, []string{"b", fmt.Sprint(i)})
	}
	res, _, err := run(t, q, []RowSource{m}, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g := groupOf(t, res, "a"); !g.Suppressed {
		t.Fatalf("region a (20 rows, 3 values of x) published: %+v", g)
	}
	if g := groupOf(t, res, "b"); g.Suppressed {
		t.Fatalf("region b (20 rows and values) suppressed")
	}
}

// TestComplementarySuppression plants small cells in many random
// federations and checks that nothing small is derivable from the
// published result or from any one site's release.
func TestComplementarySuppression(t *testing.T) {
	q := mustParse(t, regionQuery)
	rng := rand.New(rand.NewPCG(7, 11))
	names := []string{"a", "b", "c", "d", "e", "f"}
	planted, checked := 0, 0
	for trial := range 300 {
		var sites []RowSource
		for range 1 + rng.IntN(3) {
			counts := map[string]int{}
			for _, n := range names {
				switch rng.IntN(4) {
				case 0: // absent
				case 1:
					counts[n] = 1 + rng.IntN(4) // small: 1 … k−1
					planted++
				default:
					counts[n] = 5 + rng.IntN(30)
				}
			}
			sites = append(sites, regions(counts))
		}
		t.Run(fmt.Sprint(trial), func(t *testing.T) {
			var released []*Partials
			res, _, err := run(t, q, sites, 5, func(_ int, p *Partials) { released = append(released, p) })
			if err != nil {
				t.Fatal(err)
			}
			if checkNotDerivable(t, q, res, sites, 5) {
				checked++
			}
			for i, p := range released {
				checkSiteNotDerivable(t, fmt.Sprintf("site %d", i), p, 5)
			}
		})
	}
	if planted < 100 || checked < 50 {
		t.Fatalf("only %d small cells planted and %d results with a total beside suppressed groups", planted, checked)
	}
}

// truth is the exact count and sum of x per region over some sites.
func truth(t testing.TB, sites []RowSource) (count, sum map[string]float64, perSite []map[string]float64) {
	count, sum = map[string]float64{}, map[string]float64{}
	for _, s := range sites {
		m := s.(*memSource)
		mine := map[string]float64{}
		for _, r := range m.rows {
			count[r[0]]++
			mine[r[0]]++
			sum[r[0]] += value(r[1]).F
		}
		perSite = append(perSite, mine)
	}
	return count, sum, perSite
}

// checkNotDerivable: when the total and some groups are published, the
// total minus the visible groups (the only thing the published result
// reveals about the suppressed ones) covers at least k rows, so it equals
// neither the count nor the sum of any suppressed cell that holds fewer
// than k rows at some site (values are positive), and no suppressed cell
// alone.
func checkNotDerivable(t testing.TB, q *Query, res *Result, sites []RowSource, k float64) (checked bool) {
	t.Helper()
	count, sum, perSite := truth(t, sites)
	total := groupOf(t, res, "")
	var hidden []string
	restN, restS := 0.0, 0.0
	for _, g := range res.Groups {
		if len(g.Group) == 0 {
			continue
		}
		r := g.Group["region"]
		if g.Suppressed {
			if g.Values != nil {
				t.Errorf("suppressed %s carries values", r)
			}
			hidden = append(hidden, r)
			continue
		}
		if got := g.Values["n"].(float64); got != count[r] {
			t.Errorf("region %s: count %v, want %v", r, got, count[r])
		}
		for _, site := range perSite {
			if n := site[r]; n >= 1 && n < k {
				t.Errorf("region %s is published although a site holds %v rows of it", r, n)
			}
		}
		restN += g.Values["n"].(float64)
		restS += g.Values["sx"].(float64)
	}
	if total.Suppressed || len(hidden) == 0 {
		return false
	}
	if len(hidden) == 1 {
		t.Errorf("exactly one group suppressed (%s) beside a published total: total − visible reveals it", hidden[0])
	}
	diffN := total.Values["n"].(float64) - restN
	diffS := total.Values["sx"].(float64) - restS
	if diffN > 0 && diffN < k {
		t.Errorf("total − visible reveals %v rows (< k=%v) of %v", diffN, k, hidden)
	}
	for _, r := range hidden {
		for i, site := range perSite {
			n := site[r]
			if n >= 1 && n < k && diffN == n {
				t.Errorf("total − visible count %v equals site %d's small count of %s", diffN, i, r)
			}
		}
		if diffN == count[r] && diffS == sum[r] {
			t.Errorf("total − visible equals suppressed region %s (count %v, sum %v)", r, count[r], sum[r])
		}
		for i, m := range sites {
			small, smallSum := 0.0, 0.0
			for _, row := range m.(*memSource).rows {
				if row[0] == r {
					small++
					smallSum += value(row[1]).F
				}
			}
			if small >= 1 && small < k && diffS == smallSum {
				t.Errorf("total − visible sum %v equals site %d's small sum of %s", diffS, i, r)
			}
		}
	}
	return true
}

// checkSiteNotDerivable: in one site's release, its total minus its
// visible groups covers 0 or at least k rows.
func checkSiteNotDerivable(t testing.TB, site string, p *Partials, k float64) {
	t.Helper()
	var total *CellPartial
	visible := 0.0
	withheld := 0
	for i, c := range p.Cells {
		switch {
		case c.Total:
			total = &p.Cells[i]
		case c.Suppressed:
			withheld++
		default:
			visible += c.Values["n"][0]
		}
	}
	if total == nil || total.Suppressed || withheld == 0 {
		return
	}
	if d := total.Values["n"][0] - visible; d > 0 && d < k {
		t.Errorf("%s: its total − its visible groups reveals %v rows (< k=%v)", site, d, k)
	}
}

// TestCoordinatorComplement feeds the planner a site that withheld exactly
// one group and nothing else (as a site whose policy lacks complementary
// suppression might): the coordinator suppresses the smallest visible group
// so that total − visible is not that group.
func TestCoordinatorComplement(t *testing.T) {
	q := mustParse(t, `
name: c
group_by: [region]
totals: true
min_count: 5
aggregates: [{name: n, fn: count}]
`)
	p := NewPlanner(q)
	if _, _, err := p.Next(nil); err != nil {
		t.Fatal(err)
	}
	site := &Partials{Query: q.Digest(), Stage: 1, Cells: []CellPartial{
		{Cell: Cell{Group: []string{"a"}}, Suppressed: true},
		{Cell: Cell{Group: []string{"b"}}, Values: map[string][]float64{"n": {10}}},
		{Cell: Cell{Group: []string{"c"}}, Values: map[string][]float64{"n": {20}}},
		{Cell: Cell{Total: true}, Values: map[string][]float64{"n": {33}}},
	}}
	if _, done, err := p.Next([]*Partials{site}); err != nil || !done {
		t.Fatalf("done %v, err %v", done, err)
	}
	res, err := p.Result()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range res.Groups {
		got = append(got, fmt.Sprintf("%s:%v", g.Group["region"], g.Suppressed))
	}
	if want := "a:true b:true c:false :false"; strings.Join(got, " ") != want {
		t.Fatalf("suppression %s, want %s", got, want)
	}

	// Withholding b leaves total − visible = a + b = 12 rows: safe. But
	// when the total itself is all that is left and covers fewer than k
	// rows, it goes too.
	for _, tc := range []struct {
		cells []CellPartial
		want  string
	}{
		{[]CellPartial{
			{Cell: Cell{Group: []string{"a"}}, Suppressed: true},
			{Cell: Cell{Group: []string{"b"}}, Values: map[string][]float64{"n": {10}}},
			{Cell: Cell{Total: true}, Values: map[string][]float64{"n": {12}}},
		}, "a:true b:true :false"},
		{[]CellPartial{
			{Cell: Cell{Group: []string{"a"}}, Suppressed: true},
			{Cell: Cell{Group: []string{"b"}}, Suppressed: true},
			{Cell: Cell{Total: true}, Values: map[string][]float64{"n": {3}}},
		}, "a:true b:true :true"},
	} {
		p = NewPlanner(q)
		p.Next(nil)
		site.Cells = tc.cells
		if _, _, err := p.Next([]*Partials{site}); err != nil {
			t.Fatal(err)
		}
		res, _ = p.Result()
		got = nil
		for _, g := range res.Groups {
			got = append(got, fmt.Sprintf("%s:%v", g.Group["region"], g.Suppressed))
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("suppression %s, want %s", got, tc.want)
		}
	}
}

// TestGroupCap: group_by on an identifier fails at the site, and groups
// that only exceed the cap together fail at the coordinator, both with the
// number seen.
func TestGroupCap(t *testing.T) {
	q := mustParse(t, `
name: ids
group_by: [id]
aggregates: [{name: n, fn: count}]
`)
	ids := func(from, to int) *memSource {
		m := &memSource{header: []string{"id"}}
		for i := from; i < to; i++ {
			m.rows = append(m.rows, []string{fmt.Sprint(i)})
		}
		return m
	}
	_, _, err := run(t, q, []RowSource{ids(0, 5000)}, 1, nil)
	if err == nil || !strings.Contains(err.Error(), "more than 1000 distinct groups") || !strings.Contains(err.Error(), "group 1001 first appears at row 1001") {
		t.Fatalf("group_by an identifier: %v", err)
	}
	_, _, err = run(t, q, []RowSource{ids(0, 600), ids(600, 1200), ids(1200, 1300)}, 1, nil)
	if err == nil || !strings.Contains(err.Error(), "1300 distinct groups") {
		t.Fatalf("1300 groups over three sites: %v", err)
	}
}
