package spec

import (
	"testing"

	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// FuzzParseJobSpec checks that no input panics Parse, and that whatever it
// accepts is valid, survives the wire and is accepted unchanged by the
// coordinator's CheckProto: a spec the CLI sends is never refused on receipt.
func FuzzParseJobSpec(f *testing.F) {
	for _, s := range []string{
		fullSpec,
		minimal,
		minimal + "eval_fraction: 0\n",
		minimal + "round_timeout: 1.0009s\n",
		minimal + "min_sites: 2147483648\n",
		minimal + "rounds: ten\n",
		minimal + "nmae: typo\n",
		minimal + "---\n" + minimal,
		minimal + "sites: [eu/paris, eu/paris]\n",
		"name: [churn\n",
		"# comment\n",
		"",
		"[1, 2]\n",
		"name: &a churn\ndataset: *a\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := Parse("fuzz.yaml", data)
		if err != nil {
			if j != nil {
				t.Fatalf("Parse returned a job alongside error %v", err)
			}
			return
		}
		if err := j.Validate(); err != nil {
			t.Fatalf("accepted spec fails Validate: %v\n%q", err, data)
		}
		p := j.Proto()
		wire, err := proto.Marshal(p)
		if err != nil {
			t.Fatalf("accepted spec cannot be marshalled: %v\n%q", err, data)
		}
		var got federav1.JobSpec
		if err := proto.Unmarshal(wire, &got); err != nil {
			t.Fatalf("accepted spec cannot be unmarshalled: %v", err)
		}
		checked, err := CheckProto(&got)
		if err != nil {
			t.Fatalf("accepted spec refused by CheckProto: %v\n%q", err, data)
		}
		if !proto.Equal(checked, p) {
			t.Fatalf("CheckProto changed an accepted spec:\n got %v\nwant %v", checked, p)
		}
	})
}
