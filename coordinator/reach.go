package coordinator

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// siteView is what the coordinator knows of its sites at one moment: every
// site its config lists, and the datasets each connected one announced in
// its hello. Submit and the site wait both read it, so the refusal at
// submit and the waiting message cannot disagree about who serves what.
type siteView struct {
	known     []string                   // every site name in the config, sorted
	connected map[string]map[string]bool // connected site -> datasets it serves
}

func (c *Coordinator) siteView() siteView {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := siteView{known: c.siteNames(), connected: map[string]map[string]bool{}}
	for name, s := range c.sessions {
		v.connected[name] = s.datasets
	}
	return v
}

// served is every dataset the connected sites serve, sorted.
func (v siteView) served() []string {
	set := map[string]bool{}
	for _, ds := range v.connected {
		for d := range ds {
			set[d] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// serving is the connected sites among candidates that serve dataset.
func (v siteView) serving(candidates []string, dataset string) []string {
	var out []string
	for _, s := range candidates {
		if v.connected[s][dataset] {
			out = append(out, s)
		}
	}
	return out
}

// unreachable says why no wait for sites could ever start the job, or
// returns nil. A job may be submitted before its sites connect, so only
// what the coordinator knows for certain counts: more sites needed than it
// knows; a listed site that is connected and does not serve the dataset
// (the runner would fail the job at once); or, for a job open to any site,
// every known site connected and too few of them serving the dataset. A
// site could still add the dataset and reconnect, but a user who misspelt
// a dataset wants to hear it now, not after the site wait.
func (v siteView) unreachable(sp *federav1.JobSpec) error {
	dataset := sp.GetDataset()
	if listed := sp.GetSites(); len(listed) > 0 {
		var bad []string
		for _, s := range listed {
			ds, ok := v.connected[s]
			if ok && !ds[dataset] {
				bad = append(bad, fmt.Sprintf("site %s does not serve it (it serves: [%s])", s, strings.Join(slices.Sorted(maps.Keys(ds)), ", ")))
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("field dataset: dataset %q: %s; every site in field sites must serve it", dataset, strings.Join(bad, "; "))
		}
		return nil
	}
	need := int(sp.GetMinSites())
	if need > len(v.known) {
		return fmt.Errorf("field min_sites: %d sites needed, but this coordinator knows only %d (%s); set min_sites to at most %d, or add sites to the coordinator config's sites list",
			need, len(v.known), listOrNone(v.known), len(v.known))
	}
	for _, s := range v.known {
		if _, ok := v.connected[s]; !ok {
			return nil // it may yet connect serving the dataset
		}
	}
	have := v.serving(v.known, dataset)
	if len(have) >= need {
		return nil
	}
	if len(have) == 0 {
		return fmt.Errorf("field dataset: no site serves dataset %q: all %d sites this coordinator knows are connected, and they serve [%s]",
			dataset, len(v.known), strings.Join(v.served(), ", "))
	}
	return fmt.Errorf("field dataset: %d of the %d sites needed (min_sites) serve dataset %q (%s): all %d sites this coordinator knows are connected, and they serve [%s]",
		len(have), need, dataset, strings.Join(have, ", "), len(v.known), strings.Join(v.served(), ", "))
}

// waiting is the job's message while it waits for sites: how many of the
// sites it needs that serve its dataset are connected, and, so a misspelt
// dataset shows at once, what the connected sites do serve.
func (v siteView) waiting(dataset string, have, need int) string {
	return fmt.Sprintf("waiting for sites: %d of %d sites serving dataset %q connected (%s)", have, need, dataset, v.connectedSummary())
}

// connectedSummary says what the connected sites serve and which known
// sites are not connected.
func (v siteView) connectedSummary() string {
	var missing []string
	for _, s := range v.known {
		if _, ok := v.connected[s]; !ok {
			missing = append(missing, s)
		}
	}
	out := "no site connected"
	if n := len(v.connected); n > 0 {
		out = fmt.Sprintf("%d connected %s serve: %s", n, plural(n, "site", "sites"), listOrNone(v.served()))
	}
	if len(missing) > 0 {
		out += "; not connected: " + strings.Join(missing, ", ")
	}
	return out
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
