package spec

import (
	"testing"
)

func TestParseSecureAggregation(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want SecureAggregation
	}{
		{"privacy: {secure_aggregation: true}\n", SecureAggregation{On: true}},
		{"privacy: {secure_aggregation: false}\n", SecureAggregation{}},
		{"privacy: {secure_aggregation: {threshold: 2}}\nsites: [eu/a, eu/b, eu/c]\n", SecureAggregation{On: true, Threshold: ptr(2)}},
		{"privacy: {secure_aggregation: {neighbors: 4, clip: 10}}\n", SecureAggregation{On: true, Neighbors: ptr(4), Clip: ptr(10.0)}},
	} {
		j, err := Parse("job.yaml", []byte(minimal+tc.yaml))
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		got := j.Privacy.SecureAggregation
		if got.On != tc.want.On || !eqPtr(got.Threshold, tc.want.Threshold) || !eqPtr(got.Neighbors, tc.want.Neighbors) || !eqPtr(got.Clip, tc.want.Clip) {
			t.Fatalf("%q: parsed %+v, want %+v", tc.yaml, got, tc.want)
		}
		// Through the wire and back, and the defaults every party derives.
		back := FromProto(j.Proto()).Privacy.SecureAggregation
		if back.On != got.On || !eqPtr(back.Threshold, got.Threshold) || !eqPtr(back.Clip, got.Clip) {
			t.Fatalf("%q: through the wire %+v, want %+v", tc.yaml, back, got)
		}
	}
	j, _ := Parse("job.yaml", []byte(minimal+"privacy: {secure_aggregation: true}\n"))
	if on, thr, k, clip := SecAggOf(j.Proto(), 5); !on || thr != 4 || k != 0 || clip != DefaultSecAggClip {
		t.Fatalf("defaults for 5 sites: %v %d %d %v; want threshold ceil(10/3) = 4, every pair, clip %v", on, thr, k, clip, DefaultSecAggClip)
	}
	j, _ = Parse("job.yaml", []byte(minimal+"privacy: {secure_aggregation: {neighbors: 8}}\n"))
	if _, thr, _, _ := SecAggOf(j.Proto(), 100); thr != 6 {
		t.Fatalf("SecAgg+ with 8 neighbours: threshold %d, want ceil(2·9/3) = 6 of a neighbourhood", thr)
	}
}

func eqPtr[T comparable](a, b *T) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func TestParseSecureAggregationErrors(t *testing.T) {
	checkParseErrors(t, []parseErrorCase{
		{"not a boolean", minimal + "privacy: {secure_aggregation: yes please}\n", []string{"line 3", "field privacy.secure_aggregation", "not a boolean"}},
		{"unknown key", minimal + "privacy: {secure_aggregation: {threshold: 2, quorum: 3}}\n", []string{"line 3", `unknown key "quorum"`, "valid: threshold, neighbors, clip"}},
		{"threshold not whole", minimal + "privacy: {secure_aggregation: {threshold: 2.5}}\n", []string{"threshold", `"2.5" is not a whole number`}},
		{"threshold one", minimal + "privacy: {secure_aggregation: {threshold: 1}}\n", []string{"field privacy.secure_aggregation.threshold:", "want at least 2"}},
		{"threshold half", minimal + "privacy: {secure_aggregation: {threshold: 2}}\nsites: [eu/a, eu/b, eu/c, eu/d]\n", []string{"field privacy.secure_aggregation.threshold:", "not more than half of the 4 sites", "want at least 3"}},
		{"threshold over sites", minimal + "privacy: {secure_aggregation: {threshold: 4}}\nsites: [eu/a, eu/b, eu/c]\n", []string{"more than the 3 sites listed"}},
		{"one neighbour", minimal + "privacy: {secure_aggregation: {neighbors: 1}}\n", []string{"field privacy.secure_aggregation.neighbors:", "too few"}},
		{"clip zero", minimal + "privacy: {secure_aggregation: {clip: 0}}\n", []string{"field privacy.secure_aggregation.clip:", "0 is out of range"}},
		{"robust strategy", minimal + "privacy: {secure_aggregation: true}\naggregator: median\n", []string{"field aggregator:", "median needs every site's own update", "fedavg, fedprox"}},
		{"krum", minimal + "privacy: {secure_aggregation: true}\naggregator: {name: krum, f: 1}\n", []string{"krum needs every site's own update"}},
	})
}
