package sign_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/federa-dev/federa/attest/sign"
)

func mustSigner(t testing.TB) *sign.Signer {
	t.Helper()
	s, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// editBundle parses a bundle, lets edit change it and re-encodes it, so a
// test can tamper with one field the way an attacker with a JSON editor
// would.
func editBundle(t testing.TB, bundle []byte, edit func(*protobundle.Bundle)) []byte {
	t.Helper()
	var b protobundle.Bundle
	if err := protojson.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	edit(&b)
	out, err := protojson.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func flipByte(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x01
	return out
}

func TestSignBlobRoundTrip(t *testing.T) {
	big := make([]byte, 1<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		artifact []byte
	}{
		{"empty", nil},
		{"one byte", []byte{0}},
		{"text", []byte("model weights")},
		{"1 MiB", big},
	}
	s := mustSigner(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bundle, err := sign.SignBlob(s, tt.artifact)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(bundle, []byte(sign.BundleMediaType)) {
				t.Errorf("bundle lacks media type %s:\n%s", sign.BundleMediaType, bundle)
			}
			if err := sign.VerifyBlob(s.PublicKeyPEM(), bundle, tt.artifact); err != nil {
				t.Fatalf("VerifyBlob: %v", err)
			}
		})
	}
}

func TestSignBlobNilSigner(t *testing.T) {
	if _, err := sign.SignBlob(nil, []byte("x")); err == nil {
		t.Fatal("SignBlob(nil) succeeded")
	}
}

func TestVerifyBlobRejects(t *testing.T) {
	s := mustSigner(t)
	other := mustSigner(t)
	artifact := []byte("the released model")
	bundle, err := sign.SignBlob(s, artifact)
	if err != nil {
		t.Fatal(err)
	}
	prov := mustProvenanceBundle(t, s, artifact)

	tests := []struct {
		name     string
		pub      []byte
		bundle   []byte
		artifact []byte
		wantIs   error  // nil: any error
		wantMsg  string // a substring the user would need to see
	}{
		{
			name: "first artifact byte flipped", bundle: bundle, artifact: flipByte(artifact, 0),
			wantIs: sign.ErrDigestMismatch, wantMsg: "artifact sha256",
		},
		{
			name: "last artifact byte flipped", bundle: bundle, artifact: flipByte(artifact, len(artifact)-1),
			wantIs: sign.ErrDigestMismatch,
		},
		{
			name: "artifact truncated", bundle: bundle, artifact: artifact[:len(artifact)-1],
			wantIs: sign.ErrDigestMismatch,
		},
		{
			name: "signature byte flipped",
			bundle: editBundle(t, bundle, func(b *protobundle.Bundle) {
				sig := b.GetMessageSignature().Signature
				sig[len(sig)-1] ^= 0x01
			}),
			artifact: artifact, wantIs: sign.ErrBadSignature,
		},
		{
			// The signature is still valid for the artifact; only the
			// recorded digest lies. cosign accepts this; we must not.
			name: "bundle digest byte flipped",
			bundle: editBundle(t, bundle, func(b *protobundle.Bundle) {
				b.GetMessageSignature().GetMessageDigest().Digest[0] ^= 0x01
			}),
			artifact: artifact, wantIs: sign.ErrDigestMismatch,
		},
		{
			// Digest and artifact agree, but the signature is over the
			// original: replacing the model and fixing up the digest fails.
			name: "artifact replaced and digest fixed up",
			bundle: editBundle(t, bundle, func(b *protobundle.Bundle) {
				d := b.GetMessageSignature().GetMessageDigest()
				d.Digest = sha256Of(flipByte(artifact, 0))
			}),
			artifact: flipByte(artifact, 0), wantIs: sign.ErrBadSignature,
		},
		{
			name: "wrong key", pub: other.PublicKeyPEM(), bundle: bundle, artifact: artifact,
			wantIs: sign.ErrBadSignature, wantMsg: "bundle names key",
		},
		{
			name: "provenance bundle", bundle: prov, artifact: artifact,
			wantIs: sign.ErrMalformedBundle, wantMsg: "DSSE envelope",
		},
		{name: "empty bundle", bundle: nil, artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "empty"},
		{name: "not JSON", bundle: []byte("MEUCIQ=="), artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "not sigstore bundle JSON"},
		{name: "JSON array", bundle: []byte("[1,2]"), artifact: artifact, wantIs: sign.ErrMalformedBundle},
		{name: "unknown field", bundle: []byte(`{"mediaType":"x","extra":1}`), artifact: artifact, wantIs: sign.ErrMalformedBundle},
		{name: "empty object", bundle: []byte("{}"), artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "mediaType is missing"},
		{
			name: "old media type",
			bundle: editBundle(t, bundle, func(b *protobundle.Bundle) {
				b.MediaType = "application/vnd.dev.sigstore.bundle+json;version=0.1"
			}),
			artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "version=0.1",
		},
		{
			name:     "no verification material",
			bundle:   editBundle(t, bundle, func(b *protobundle.Bundle) { b.VerificationMaterial = nil }),
			artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "verificationMaterial is missing",
		},
		{
			name: "certificate instead of key",
			bundle: editBundle(t, bundle, func(b *protobundle.Bundle) {
				b.VerificationMaterial.Content = &protobundle.VerificationMaterial_Certificate{
					Certificate: &protocommon.X509Certificate{RawBytes: []byte("not a cert")},
				}
			}),
			artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "not a certificate",
		},
		{
			name:     "no content",
			bundle:   editBundle(t, bundle, func(b *protobundle.Bundle) { b.Content = nil }),
			artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "messageSignature is missing",
		},
		{
			name:     "no digest",
			bundle:   editBundle(t, bundle, func(b *protobundle.Bundle) { b.GetMessageSignature().MessageDigest = nil }),
			artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "messageDigest is missing",
		},
		{
			name: "SHA-384 digest",
			bundle: editBundle(t, bundle, func(b *protobundle.Bundle) {
				b.GetMessageSignature().GetMessageDigest().Algorithm = protocommon.HashAlgorithm_SHA2_384
			}),
			artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "SHA2_384",
		},
		{
			name: "short digest",
			bundle: editBundle(t, bundle, func(b *protobundle.Bundle) {
				d := b.GetMessageSignature().GetMessageDigest()
				d.Digest = d.Digest[:16]
			}),
			artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "16 bytes",
		},
		{
			name:     "empty signature",
			bundle:   editBundle(t, bundle, func(b *protobundle.Bundle) { b.GetMessageSignature().Signature = nil }),
			artifact: artifact, wantIs: sign.ErrMalformedBundle, wantMsg: "signature is empty",
		},
		{
			name:     "garbage signature",
			bundle:   editBundle(t, bundle, func(b *protobundle.Bundle) { b.GetMessageSignature().Signature = []byte("garbage") }),
			artifact: artifact, wantIs: sign.ErrBadSignature,
		},
		{name: "no public key", pub: []byte{}, bundle: bundle, artifact: artifact, wantMsg: "parse public key"},
		{name: "private key as public key", pub: []byte("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"), bundle: bundle, artifact: artifact, wantMsg: "parse public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := tt.pub
			if pub == nil {
				pub = s.PublicKeyPEM()
			}
			err := sign.VerifyBlob(pub, tt.bundle, tt.artifact)
			if err == nil {
				t.Fatal("VerifyBlob succeeded")
			}
			t.Logf("error: %v", err)
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %q", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
			if !strings.HasPrefix(err.Error(), "verify blob: ") {
				t.Errorf("error %q does not say what was being done", err)
			}
		})
	}
}

// The legacy spelling of the v0.3 media type names the same format.
func TestVerifyBlobLegacyMediaType(t *testing.T) {
	s := mustSigner(t)
	artifact := []byte("m")
	bundle, err := sign.SignBlob(s, artifact)
	if err != nil {
		t.Fatal(err)
	}
	bundle = editBundle(t, bundle, func(b *protobundle.Bundle) {
		b.MediaType = "application/vnd.dev.sigstore.bundle+json;version=0.3"
	})
	if err := sign.VerifyBlob(s.PublicKeyPEM(), bundle, artifact); err != nil {
		t.Fatal(err)
	}
}

// FuzzVerifyBlob: whatever the bundle, VerifyBlob returns an error or nil,
// and never panics; it succeeds only for the bundle that was signed (or a
// re-encoding of it).
func FuzzVerifyBlob(f *testing.F) {
	s := mustSigner(f)
	artifact := []byte("fuzzed model")
	bundle, err := sign.SignBlob(s, artifact)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bundle)
	f.Add(mustProvenanceBundle(f, s, artifact))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{}},"messageSignature":{}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{}},"dsseEnvelope":{"signatures":[{}]}}`))
	f.Add([]byte("null"))
	pub := s.PublicKeyPEM()
	f.Fuzz(func(t *testing.T, b []byte) {
		if sign.VerifyBlob(pub, b, artifact) == nil {
			// Accepted: it must carry the signed digest, else the digest
			// check is not doing its job.
			var pb protobundle.Bundle
			if err := protojson.Unmarshal(b, &pb); err != nil {
				t.Fatalf("accepted a bundle that does not parse: %v", err)
			}
			if !bytes.Equal(pb.GetMessageSignature().GetMessageDigest().GetDigest(), sha256Of(artifact)) {
				t.Fatal("accepted a bundle with another digest")
			}
		}
		_, _ = sign.VerifyProvenance(pub, b, artifact)
	})
}
