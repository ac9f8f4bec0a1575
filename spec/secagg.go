package spec

import (
	"fmt"
	"math"

	"go.yaml.in/yaml/v3"

	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/secagg"
)

// DefaultSecAggClip bounds each coordinate of a site's update (its
// weights minus the round's) before fixed-point encoding, when the spec
// does not say: updates beyond ±100 in one coordinate are pathological,
// and the bound costs nothing in precision (docs/privacy.md).
const DefaultSecAggClip = 100.0

// SecureAggregation turns on secure aggregation (package secagg): the
// coordinator learns only the sum of the sites' updates. In YAML it is a
// boolean (secure_aggregation: true) or a mapping of its parameters
// (secure_aggregation: {threshold: 3, neighbors: 8, clip: 10}); nil
// parameters take their defaults.
type SecureAggregation struct {
	On        bool
	Threshold *int     // shares needed to recover a secret; default ceil(2n/3) of the sites asked
	Neighbors *int     // SecAgg+: neighbours per site; 0 (the default) pairs every two sites
	Clip      *float64 // ±bound on each update coordinate; default DefaultSecAggClip
}

const secAggKeys = "threshold, neighbors, clip"

// UnmarshalYAML accepts a boolean or a mapping of parameters.
func (s *SecureAggregation) UnmarshalYAML(n *yaml.Node) error {
	bad := func(line int, format string, args ...any) error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: field privacy.secure_aggregation: ", line) + fmt.Sprintf(format, args...)}}
	}
	switch n.Kind {
	case yaml.ScalarNode:
		var on bool
		if err := n.Decode(&on); err != nil {
			return bad(n.Line, "%q is not a boolean; want true, false or a mapping of %s (e.g. {threshold: 3})", n.Value, secAggKeys)
		}
		*s = SecureAggregation{On: on}
		return nil
	case yaml.MappingNode:
	default:
		return bad(n.Line, "want true, false or a mapping of %s (e.g. {threshold: 3})", secAggKeys)
	}
	out := SecureAggregation{On: true}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			return bad(k.Line, "key %q given twice", k.Value)
		}
		seen[k.Value] = true
		switch k.Value {
		case "threshold", "neighbors":
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
				return bad(v.Line, "%s: %q is not a whole number", k.Value, v.Value)
			}
			dst := new(int)
			if err := v.Decode(dst); err != nil {
				return bad(v.Line, "%s: %v", k.Value, err)
			}
			if k.Value == "threshold" {
				out.Threshold = dst
			} else {
				out.Neighbors = dst
			}
		case "clip":
			dst := new(float64)
			if err := v.Decode(dst); err != nil {
				return bad(v.Line, "clip: %q is not a number", v.Value)
			}
			out.Clip = dst
		default:
			return bad(k.Line, "unknown key %q (valid: %s)", k.Value, secAggKeys)
		}
	}
	*s = out
	return nil
}

// MarshalYAML writes the boolean form when no parameter is set.
func (s SecureAggregation) MarshalYAML() (any, error) {
	if s.Threshold == nil && s.Neighbors == nil && s.Clip == nil {
		return s.On, nil
	}
	m := map[string]any{}
	if s.Threshold != nil {
		m["threshold"] = *s.Threshold
	}
	if s.Neighbors != nil {
		m["neighbors"] = *s.Neighbors
	}
	if s.Clip != nil {
		m["clip"] = *s.Clip
	}
	return m, nil
}

// validate checks the parameters against the job: its site list, and its
// aggregator, which must combine updates through their mean alone.
func (s SecureAggregation) validate(j *Job, bad func(field, format string, args ...any)) {
	if !s.On {
		if s.Threshold != nil || s.Neighbors != nil || s.Clip != nil {
			bad("privacy.secure_aggregation", "parameters given with secure aggregation off")
		}
		return
	}
	const f = "privacy.secure_aggregation"
	if agg, err := models.NewAggregator(j.Aggregator.Name, j.Aggregator.Params()); err == nil {
		if _, ok := agg.(models.MeanBased); !ok {
			bad("aggregator", "%s needs every site's own update, which secure aggregation hides from the coordinator; use fedavg, fedprox, fedadam, fedyogi or fedadagrad, or turn %s off", agg.Name(), f)
		}
	}
	n := len(j.Sites)
	if t := s.Threshold; t != nil {
		switch {
		case *t < 2:
			bad(f+".threshold", "%d is out of range; want at least 2", *t)
		case n > 0 && *t > n:
			bad(f+".threshold", "%d is more than the %d sites listed", *t, n)
		case n > 0 && 2**t <= n:
			bad(f+".threshold", "%d is not more than half of the %d sites listed; two disjoint survivor sets could then each confirm a round, letting the coordinator unmask a single site; want at least %d", *t, n, n/2+1)
		case *t > MaxSites:
			bad(f+".threshold", "%d is out of range; a job has at most %d sites", *t, MaxSites)
		}
	}
	if k := s.Neighbors; k != nil && (*k < 0 || *k > MaxSites) {
		bad(f+".neighbors", "%d is out of range; want 0 (every pair of sites) or a neighbour count ≥ 2", *k)
	} else if k != nil && *k == 1 {
		bad(f+".neighbors", "1 is too few; want 0 (every pair of sites) or a neighbour count ≥ 2")
	}
	if c := s.Clip; c != nil && (!(*c > 0) || math.IsInf(*c, 0) || *c > 1e6) {
		bad(f+".clip", "%v is out of range; want 0 < clip ≤ 1e6 (the bound on each coordinate of a site's update)", *c)
	}
}

// SecAggOf is a wire spec's secure-aggregation parameters with defaults
// applied, for n sites asked: whether it is on, the threshold (the spec's,
// or secagg.DefaultThreshold of a neighbourhood: the n sites, or with
// SecAgg+ a site and its neighbours), the neighbour count and the clip.
func SecAggOf(p *federav1.JobSpec, n int) (on bool, threshold, neighbors int, clip float64) {
	pr := p.GetPrivacy()
	if !pr.GetSecureAggregation() {
		return false, 0, 0, 0
	}
	neighbors = int(pr.GetSecureAggregationNeighbors())
	size := n
	if neighbors > 0 {
		size = neighbors + 1
	}
	threshold = secagg.DefaultThreshold(size)
	if pr.SecureAggregationThreshold != nil {
		threshold = int(pr.GetSecureAggregationThreshold())
	}
	clip = DefaultSecAggClip
	if pr.SecureAggregationClip != nil {
		clip = pr.GetSecureAggregationClip()
	}
	return true, threshold, neighbors, clip
}

func secAggFromProto(p *federav1.Privacy) SecureAggregation {
	if p == nil {
		return SecureAggregation{}
	}
	s := SecureAggregation{On: p.GetSecureAggregation(), Clip: clonePtr(p.SecureAggregationClip)}
	if p.SecureAggregationThreshold != nil {
		s.Threshold = new(int(p.GetSecureAggregationThreshold()))
	}
	if p.SecureAggregationNeighbors != nil {
		s.Neighbors = new(int(p.GetSecureAggregationNeighbors()))
	}
	return s
}
