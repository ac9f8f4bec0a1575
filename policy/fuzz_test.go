package policy

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
)

// FuzzInput feeds arbitrary JSON through Input: whatever decodes must build
// an input document exactly equal to the one encoding/json and OPA's generic
// conversion would give (the builder is a hand-written fast path), survive a
// JSON round trip unchanged, and have a stable digest.
func FuzzInput(f *testing.F) {
	for _, in := range []Input{SampleInput(), SampleEgress(), {}} {
		bs, err := json.Marshal(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bs)
	}
	f.Add([]byte(`{"job": {"model": {"params": {"a": [1, 2.5e-7, null, true, {"b": "\u00e9"}], "big": 1e300}}}}`))
	f.Add([]byte(`{"version": "v9", "egress": {"kind": "raw", "bytes": -1, "noise": {}}, "job": {"features": null}}`))
	f.Add([]byte(`{"site": {"dataset": {"columns": [{"name": "a", "tags": []}, {}]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var in Input
		if err := json.Unmarshal(data, &in); err != nil {
			return
		}
		got, err := inputValue(in)
		if err != nil {
			// JSON cannot carry what the builder refuses (NaN, invalid UTF-8).
			t.Fatalf("inputValue(%s): %v", data, err)
		}
		canonical, err := json.Marshal(normalize(in))
		if err != nil {
			t.Fatal(err)
		}
		var generic any
		if err := util.UnmarshalJSON(canonical, &generic); err != nil {
			t.Fatal(err)
		}
		want, err := ast.InterfaceToValue(generic)
		if err != nil {
			t.Fatal(err)
		}
		if got.Compare(want) != 0 {
			t.Fatalf("input document differs from encoding/json's:\n got %v\nwant %v", got, want)
		}

		var again Input
		if err := json.Unmarshal(canonical, &again); err != nil {
			t.Fatal(err)
		}
		if bs, _ := json.Marshal(again); string(bs) != string(canonical) {
			t.Fatalf("JSON round trip changed the input:\n%s\n%s", canonical, bs)
		}
		if d := InputDigest(in); d == "" || d != InputDigest(again) {
			t.Fatalf("digest %q differs after a round trip (%q)", d, InputDigest(again))
		}
	})
}

// FuzzDecision feeds arbitrary JSON to the decoders the Engine applies to
// data.federa.admission and data.federa.egress: they must never panic, a
// decoded decision must re-encode to what it read, and an obligation this
// version does not know must end up in Unknown and turn an allow into a deny.
func FuzzDecision(f *testing.F) {
	f.Add([]byte(`{"allow": true, "reasons": [], "obligations": {"min_records": 10, "require_dp": true, "max_epsilon": 8, "drop_columns": ["a"]}, "require_approval": false}`))
	f.Add([]byte(`{"allow": true, "obligations": {"geo_fence": "eu", "max_rounds": 3}}`))
	f.Add([]byte(`{"allow": false, "reasons": ["no"]}`))
	f.Add([]byte(`{"allow": "true"}`))
	f.Add([]byte(`{"allow": true, "obligations": {"min_records": 1e400}}`))
	f.Add([]byte(`[1, {"allow": true}]`))
	f.Add([]byte(`{"allow": true, "obligations": {"min_records": -0, "max_epsilon": 1e-320}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeDecision(data)
		if ed, eerr := DecodeEgressDecision(data); eerr == nil && err == nil && ed.Allow != d.Allow {
			t.Fatalf("admission and egress decoders disagree on allow: %v vs %v", d.Allow, ed.Allow)
		}
		if err != nil {
			if d.Allow {
				t.Fatalf("a decode error came with an allow: %+v", d)
			}
			return
		}
		var raw map[string]any
		if err := util.UnmarshalJSON(data, &raw); err != nil {
			t.Fatalf("decoded what is not a JSON object: %v", err)
		}
		if raw["allow"] != d.Allow {
			t.Fatalf("allow %v decoded as %v", raw["allow"], d.Allow)
		}
		obligations, _ := raw["obligations"].(map[string]any)
		for k, v := range obligations {
			_, unknown := d.Obligations.Unknown[k]
			if slices.Contains(knownObligations, k) == unknown {
				t.Fatalf("obligation %q (known=%v) misfiled; Unknown=%v", k, !unknown, d.Obligations.Unknown)
			}
			if unknown && !reflect.DeepEqual(d.Obligations.Unknown[k], v) {
				t.Fatalf("unknown obligation %q = %v, read %v", k, d.Obligations.Unknown[k], v)
			}
		}
		if d.Reasons == nil {
			t.Fatal("decoded reasons are nil, which records as null")
		}
		enforced := d.enforceable()
		if len(d.Obligations.Unknown) > 0 && enforced.Allow {
			t.Fatalf("allowed with unknown obligations %v", d.Obligations.Unknown)
		}
		// What was decoded re-encodes to the same known fields.
		bs, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeDecision(bs)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", bs, err)
		}
		d.Obligations.Unknown = nil
		if !reflect.DeepEqual(back, d) {
			t.Fatalf("re-encoding changed the decision:\n%+v\n%+v", d, back)
		}
	})
}
