package sign_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"

	"github.com/federa-dev/federa/attest/sign"
)

func sha256Of(b []byte) []byte {
	sum := sha256.Sum256(b)
	return sum[:]
}

var testProvenance = sign.Provenance{
	JobSpecDigest:   "sha256:5d41402abc4b2a76b9719d911017c592",
	Sites:           []string{"spiffe://example.org/site/eu/paris", "spiffe://example.org/site/us/boston"},
	Rounds:          12,
	PolicyRevisions: map[string]string{"eu/paris": "r17", "us/boston": "r4"},
	EpsilonSpent:    map[string]float64{"eu/paris": 0.75, "us/boston": 1.5},
	AuditCheckpoint: "federa.dev/audit\n42\nq6Z0uyX0E2s=\n",
}

func mustProvenanceBundle(t testing.TB, s *sign.Signer, artifact []byte) []byte {
	t.Helper()
	st, err := sign.Statement("model.safetensors", hex.EncodeToString(sha256Of(artifact)), testProvenance)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sign.SignProvenance(s, st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProvenanceRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		p    sign.Provenance
	}{
		{"full", testProvenance},
		{"zero", sign.Provenance{}},
		{"one site", sign.Provenance{JobSpecDigest: "sha256:aa", Sites: []string{"a"}, Rounds: 1, EpsilonSpent: map[string]float64{"a": 0}}},
	}
	s := mustSigner(t)
	artifact := []byte("model")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := sign.Statement("model.safetensors", hex.EncodeToString(sha256Of(artifact)), tt.p)
			if err != nil {
				t.Fatal(err)
			}
			bundle, err := sign.SignProvenance(s, st)
			if err != nil {
				t.Fatal(err)
			}
			got, err := sign.VerifyProvenance(s.PublicKeyPEM(), bundle, artifact)
			if err != nil {
				t.Fatalf("VerifyProvenance: %v", err)
			}
			if !reflect.DeepEqual(got, tt.p) {
				t.Errorf("VerifyProvenance = %+v, want %+v", got, tt.p)
			}
		})
	}
}

// The statement is what auditors and cosign read: check its shape by
// field name, not through this package's own decoder.
func TestStatementShape(t *testing.T) {
	digest := strings.Repeat("AB", 32)
	st, err := sign.Statement("model.safetensors", digest, testProvenance)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Type    string `json:"_type"`
		Subject []struct {
			Name   string            `json:"name"`
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
		PredicateType string         `json:"predicateType"`
		Predicate     map[string]any `json:"predicate"`
	}
	if err := json.Unmarshal(st, &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != "https://in-toto.io/Statement/v1" || got.PredicateType != "https://federa.dev/provenance/v1" {
		t.Errorf("_type %q, predicateType %q", got.Type, got.PredicateType)
	}
	if len(got.Subject) != 1 || got.Subject[0].Name != "model.safetensors" || got.Subject[0].Digest["sha256"] != strings.ToLower(digest) {
		t.Errorf("subject = %+v, want model.safetensors with lower-case sha256", got.Subject)
	}
	for _, k := range []string{"jobSpecDigest", "sites", "rounds", "policyRevisions", "epsilonSpent", "auditCheckpoint"} {
		if _, ok := got.Predicate[k]; !ok {
			t.Errorf("predicate lacks %q: %v", k, got.Predicate)
		}
	}
}

func TestStatementRejects(t *testing.T) {
	okDigest := strings.Repeat("0", 64)
	tests := []struct {
		name, artifact, digest string
		p                      sign.Provenance
		wantMsg                string
	}{
		{"no name", "", okDigest, sign.Provenance{}, "artifact name is empty"},
		{"short digest", "m", "abc", sign.Provenance{}, `"abc" is not 64 hex digits`},
		{"non-hex digest", "m", strings.Repeat("g", 64), sign.Provenance{}, "not 64 hex digits"},
		{"prefixed digest", "m", "sha256:" + okDigest, sign.Provenance{}, "not 64 hex digits"},
		{"negative rounds", "m", okDigest, sign.Provenance{Rounds: -1}, "rounds is -1"},
		{"NaN epsilon", "m", okDigest, sign.Provenance{EpsilonSpent: map[string]float64{"eu/paris": math.NaN()}}, `epsilonSpent["eu/paris"] is NaN`},
		{"infinite epsilon", "m", okDigest, sign.Provenance{EpsilonSpent: map[string]float64{"a": math.Inf(1)}}, "+Inf"},
		{"negative epsilon", "m", okDigest, sign.Provenance{EpsilonSpent: map[string]float64{"a": -0.5}}, "-0.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sign.Statement(tt.artifact, tt.digest, tt.p)
			if err == nil {
				t.Fatal("Statement succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
		})
	}
}

// SignProvenance refuses what cosign would refuse at verification time, so
// that a bad statement is caught when it can still be fixed.
func TestSignProvenanceRejects(t *testing.T) {
	s := mustSigner(t)
	d := strings.Repeat("a", 64)
	tests := []struct {
		name      string
		statement string
		wantMsg   string
	}{
		{"empty", ``, "not an in-toto Statement v1"},
		{"not JSON", `hello`, "not an in-toto Statement v1"},
		{"trailing data", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + d + `"}}],"predicateType":"x"} {}`, "data after"},
		{"Statement v0.1", `{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"digest":{"sha256":"` + d + `"}}],"predicateType":"x"}`, `_type is "https://in-toto.io/Statement/v0.1"`},
		{"unknown field", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + d + `"}}],"predicateType":"x","signedBy":"me"}`, `unknown field "signedBy"`},
		{"no subject", `{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"x"}`, "subject is empty"},
		{"subject without digest", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"m"}],"predicateType":"x"}`, `subject[0] ("m") has no digest`},
		{"bad sha256", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"m","digest":{"sha256":"zz"}}],"predicateType":"x"}`, `"zz" is not 64 hex digits`},
		{"no predicateType", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + d + `"}}]}`, "predicateType is empty"},
		{"predicate array", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + d + `"}}],"predicateType":"x","predicate":[1]}`, "predicate is not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sign.SignProvenance(s, []byte(tt.statement))
			if err == nil {
				t.Fatal("SignProvenance succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || !strings.HasPrefix(err.Error(), "sign provenance: ") {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
		})
	}
	if _, err := sign.SignProvenance(nil, []byte("{}")); err == nil {
		t.Error("SignProvenance(nil signer) succeeded")
	}
}

// resign replaces the envelope's payload and signs it again with s, so a
// test can build validly signed statements that are wrong in other ways.
func resign(t *testing.T, s *sign.Signer, payload string) []byte {
	t.Helper()
	b, err := sign.SignProvenance(s, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyProvenanceRejects(t *testing.T) {
	s := mustSigner(t)
	other := mustSigner(t)
	artifact := []byte("the released model")
	bundle := mustProvenanceBundle(t, s, artifact)
	blobBundle, err := sign.SignBlob(s, artifact)
	if err != nil {
		t.Fatal(err)
	}
	sum := hex.EncodeToString(sha256Of(artifact))

	tests := []struct {
		name     string
		pub      []byte
		bundle   []byte
		artifact []byte
		wantIs   error
		wantMsg  string
	}{
		{
			name: "artifact byte flipped", bundle: bundle, artifact: flipByte(artifact, 3),
			wantIs: sign.ErrDigestMismatch, wantMsg: "is not a subject",
		},
		{
			name: "signature byte flipped",
			bundle: editBundle(t, bundle, func(b *protobundle.Bundle) {
				sig := b.GetDsseEnvelope().GetSignatures()[0].Sig
				sig[10] ^= 0x01
			}),
			artifact: artifact, wantIs: sign.ErrBadSignature,
		},
		{
			// Pointing the statement at another model breaks the signature.
			name: "subject digest edited",
			bundle: editBundle(t, bundle, func(b *protobundle.Bundle) {
				env := b.GetDsseEnvelope()
				env.Payload = bytes.Replace(env.Payload, []byte(sum), []byte(hex.EncodeToString(sha256Of(flipByte(artifact, 0)))), 1)
			}),
			artifact: flipByte(artifact, 0), wantIs: sign.ErrBadSignature,
		},
		{
			name: "epsilon edited",
			bundle: editBundle(t, bundle, func(b *protobundle.Bundle) {
				env := b.GetDsseEnvelope()
				env.Payload = bytes.Replace(env.Payload, []byte(`1.5`), []byte(`0.1`), 1)
			}),
			artifact: artifact, wantIs: sign.ErrBadSignature,
		},
		{
			// PAE binds the payload type: the same bytes under another type
			// are not what was signed.
			name: "payload type changed",
			bundle: editBundle(t, bundle, func(b *protobundle.Bundle) {
				b.GetDsseEnvelope().PayloadType = "application/json"
			}),
			artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: `payloadType is "application/json"`,
		},
		{
			name: "wrong key", pub: other.PublicKeyPEM(), bundle: bundle, artifact: artifact,
			wantIs: sign.ErrBadSignature, wantMsg: "bundle names key",
		},
		{
			name: "no signatures",
			bundle: editBundle(t, bundle, func(b *protobundle.Bundle) {
				b.GetDsseEnvelope().Signatures = nil
			}),
			artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "0 signatures",
		},
		{
			name: "two signatures",
			bundle: editBundle(t, bundle, func(b *protobundle.Bundle) {
				env := b.GetDsseEnvelope()
				env.Signatures = append(env.Signatures, &protodsse.Signature{Sig: []byte("x")})
			}),
			artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "2 signatures",
		},
		{
			name: "other predicate type",
			bundle: resign(t, s, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"m","digest":{"sha256":"`+sum+`"}}],`+
				`"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}`),
			artifact: artifact, wantMsg: `predicateType is "https://slsa.dev/provenance/v1"`,
		},
		{
			name: "predicate of the wrong shape",
			bundle: resign(t, s, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"m","digest":{"sha256":"`+sum+`"}}],`+
				`"predicateType":"https://federa.dev/provenance/v1","predicate":{"rounds":"twelve"}}`),
			artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "predicate",
		},
		{
			name: "model signature bundle", bundle: blobBundle, artifact: artifact,
			wantIs: sign.ErrMalformedBundle, wantMsg: "message signature",
		},
		{
			name: "payload not base64",
			bundle: editJSON(t, bundle, func(m map[string]any) {
				env := m["dsseEnvelope"].(map[string]any)
				env["payload"] = "!!" + env["payload"].(string)
			}),
			artifact: artifact, wantIs: sign.ErrMalformedBundle,
		},
		{name: "empty", bundle: []byte("  \n"), artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "empty"},
		{name: "truncated", bundle: bundle[:len(bundle)/2], artifact: artifact, wantIs: sign.ErrMalformedBundle},
		{
			name:     "no envelope",
			bundle:   editBundle(t, bundle, func(b *protobundle.Bundle) { b.Content = nil }),
			artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "dsseEnvelope is missing",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := tt.pub
			if pub == nil {
				pub = s.PublicKeyPEM()
			}
			p, err := sign.VerifyProvenance(pub, tt.bundle, tt.artifact)
			if err == nil {
				t.Fatal("VerifyProvenance succeeded")
			}
			t.Logf("error: %v", err)
			if !reflect.DeepEqual(p, sign.Provenance{}) {
				t.Errorf("returned provenance %+v with an error", p)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %q", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || !strings.HasPrefix(err.Error(), "verify provenance: ") {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
		})
	}
}

// The envelope signs PAE(payloadType, payload) per the DSSE spec, not the
// bare payload: checked here with the standard library alone so the test
// does not share a bug with the code.
func TestProvenanceSignsPAE(t *testing.T) {
	s := mustSigner(t)
	artifact := []byte("model")
	bundle := mustProvenanceBundle(t, s, artifact)
	var env struct {
		DSSEEnvelope struct {
			Payload     string `json:"payload"`
			PayloadType string `json:"payloadType"`
			Signatures  []struct {
				Sig string `json:"sig"`
			} `json:"signatures"`
		} `json:"dsseEnvelope"`
	}
	if err := json.Unmarshal(bundle, &env); err != nil {
		t.Fatal(err)
	}
	payload, err := base64.StdEncoding.DecodeString(env.DSSEEnvelope.Payload)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(env.DSSEEnvelope.Signatures[0].Sig)
	if err != nil {
		t.Fatal(err)
	}
	pae := []byte("DSSEv1 28 application/vnd.in-toto+json " + itoa(len(payload)) + " " + string(payload))
	pub := parseECDSAPub(t, s.PublicKeyPEM())
	if !ecdsaVerify(pub, pae, sig) {
		t.Error("signature is not over PAE(payloadType, payload)")
	}
	if ecdsaVerify(pub, payload, sig) {
		t.Error("signature is over the bare payload")
	}
}

// editJSON edits a bundle as plain JSON, for damage the protobuf types
// cannot express (a field that is not valid base64, say).
func editJSON(t *testing.T, bundle []byte, edit func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(bundle, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
