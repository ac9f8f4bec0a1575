package analytics

// count is the number of rows in the cell, or with a column the number of
// rows where that column is not missing (pandas' count). It releases [n].
type count struct{}

func init() { register("count", count{}) }

func (count) fields() []string { return []string{"column"} }

func (count) check(a *Aggregate, path string, bad func(string, string, ...any)) {
	if a.Column != "" {
		checkColumn(bad, path+".column", a.Column)
	}
}

func (count) inputs(a *Aggregate) ([]string, bool) {
	if a.Column == "" {
		return nil, false
	}
	return []string{a.Column}, false
}

func (count) width(*Aggregate, bool) int              { return 1 }
func (count) sens2(*Aggregate, []float64) float64     { return 1 }
func (count) newAcc(*Aggregate, accEnv) acc           { return &countAcc{} }
func (count) newMerger(_ *Aggregate, e accEnv) merger { return &countMerger{private: e.private} }

type countAcc struct{ rows int64 }

func (c *countAcc) add([]float64)      { c.rows++ }
func (c *countAcc) addRows(n int64)    { c.rows += n }
func (c *countAcc) n() int64           { return c.rows }
func (c *countAcc) release() []float64 { return []float64{float64(c.rows)} }

type countMerger struct {
	private bool
	total   float64
}

func (c *countMerger) add(v []float64) error {
	if !c.private {
		if err := checkCount("count", v[0]); err != nil {
			return err
		}
	}
	c.total += v[0]
	return nil
}

func (c *countMerger) n() float64 { return c.total }
func (c *countMerger) value() any { return num(c.total) }
