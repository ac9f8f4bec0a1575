package policy

import (
	"math"
	"strings"
	"testing"
)

func nan() float64 { return math.NaN() }

func TestInputDigest(t *testing.T) {
	a := SampleInput()
	b := SampleInput()
	b.Version = "" // filled in: same document
	if InputDigest(a) != InputDigest(b) {
		t.Error("digest depends on whether the version was filled in")
	}
	c := SampleInput()
	c.Job.Features = nil
	d := SampleInput()
	d.Job.Features = []string{}
	if InputDigest(c) != InputDigest(d) {
		t.Error("digest differs between nil and empty features, which the policy sees alike")
	}
	if InputDigest(a) == InputDigest(c) {
		t.Error("digest ignores the features")
	}
	if !strings.HasPrefix(InputDigest(a), "sha256:") || len(InputDigest(a)) != 71 {
		t.Errorf("digest %q is not sha256:<hex>", InputDigest(a))
	}
	bad := SampleInput()
	bad.Job.Privacy.DP.Epsilon = math.Inf(1)
	if got := InputDigest(bad); got != "" {
		t.Errorf("digest of an unencodable input = %q, want empty", got)
	}
}
