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

// TestPreparedEgressMatchesEgress: the prepared path decides exactly as the
// plain one, for allowed and denied messages.
func TestPreparedEgressMatchesEgress(t *testing.T) {
	eng, err := LoadFS(t.Context(), Default(), ".")
	if err != nil {
		t.Fatal(err)
	}
	in := SampleEgress()
	adm, _ := eng.Admission(t.Context(), in)
	p, err := Prepare(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, edit := range []func(e *Egress){
		func(e *Egress) {},
		func(e *Egress) { e.Kind = "raw_rows" },
		func(e *Egress) { e.Bytes = e.MaxBytes + 1 },
		func(e *Egress) { e.Records = 1 },
		func(e *Egress) { e.Noise = nil },
	} {
		eg := *in.Egress
		edit(&eg)
		for _, summary := range []*Admitted{nil, adm.Summary()} {
			whole := in
			whole.Egress, whole.Admission = &eg, summary
			want, err1 := eng.Egress(t.Context(), whole)
			got, err2 := eng.EgressPrepared(t.Context(), p, &eg, summary)
			if (err1 == nil) != (err2 == nil) || want.Allow != got.Allow || strings.Join(want.Reasons, "|") != strings.Join(got.Reasons, "|") {
				t.Fatalf("egress %+v (admission %v): prepared %+v %v, plain %+v %v", eg, summary != nil, got, err2, want, err1)
			}
		}
	}
}

// TestPreparedDigestIsInputDigest: a message's digest from a prepared
// input is the very string InputDigest gives the whole input — with and
// without noise and an admission summary, nil reasons like empty ones —
// and "" exactly when InputDigest's is; Matches tells a prepared input
// from one for another job, site or requester.
func TestPreparedDigestIsInputDigest(t *testing.T) {
	base := SampleEgress()
	p, err := Prepare(base)
	if err != nil {
		t.Fatal(err)
	}
	egresses := []*Egress{
		nil,
		base.Egress,
		{Kind: KindMetrics, Bytes: 145, MaxBytes: 16384, Records: 50},
		{Kind: KindModelUpdate, Bytes: 1, MaxBytes: 2, Records: 3, Noise: &Noise{Mechanism: "gaussian", Sigma: 0.5, ClipNorm: 1}, EpsilonSpent: 1.5, DatasetEpsilonSpent: 2.25},
		{Kind: "<raw & rows>", Bytes: 1},
		{Kind: KindMetrics, EpsilonSpent: nan()},
	}
	admissions := []*Admitted{nil, {Allow: true}, {Allow: false, Reasons: []string{"no", "\"quoted\" <b>"}, MinRecords: 10, RequireDP: true}, {Reasons: []string{}}}
	for i, eg := range egresses {
		for j, adm := range admissions {
			in := base
			in.Egress, in.Admission = eg, adm
			want := InputDigest(in)
			if got := p.Digest(eg, adm); got != want {
				t.Errorf("egress %d, admission %d: Digest = %q, InputDigest = %q", i, j, got, want)
			}
		}
	}
	if !p.Matches(base) {
		t.Error("a prepared input does not match the input it was prepared from")
	}
	for name, edit := range map[string]func(*Input){
		"job":       func(in *Input) { in.Job.ID = "job-2" },
		"requester": func(in *Input) { in.Job.Requester.Role = "admin" },
		"column":    func(in *Input) { in.Site.Dataset.Columns[0].Classification = SpecialCategory },
		"dp":        func(in *Input) { in.Job.Privacy.DP = nil },
	} {
		in := SampleEgress()
		edit(&in)
		if p.Matches(in) {
			t.Errorf("a prepared input matches one with another %s", name)
		}
	}
}
