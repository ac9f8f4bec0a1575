package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/encoding/protojson"
)

// BundleMediaType is the media type of every bundle this package writes.
// v0.3 is the first version cosign's --new-bundle-format reads without a
// certificate chain, and the one sigstore-go writes today.
const BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// legacyV03MediaType is the spelling of v0.3 used by early writers; it means
// the same bundle, so it is accepted on read.
const legacyV03MediaType = "application/vnd.dev.sigstore.bundle+json;version=0.3"

// maxBundleSize bounds what the verifiers parse. A federa bundle is a few
// KiB (the provenance predicate is the biggest part); the bound keeps a
// hostile file from costing more than a moment.
const maxBundleSize = 16 << 20

// Sentinel errors, for callers that react to the kind of failure (the CLI
// prints a different hint for a tampered model than for a wrong key).
var (
	// ErrMalformedBundle: the bundle is not a bundle this package can check.
	ErrMalformedBundle = errors.New("sign: malformed bundle")
	// ErrDigestMismatch: the artifact is not the one the bundle names.
	ErrDigestMismatch = errors.New("sign: artifact digest does not match bundle")
	// ErrBadSignature: the signature does not verify under the given key.
	ErrBadSignature = errors.New("sign: signature does not verify")
)

// marshalBundle fills in what every federa bundle shares: the media type
// and a key hint as its verification material. There is deliberately no
// tlog entry and no timestamp (see the package doc).
func marshalBundle(s *Signer, b *protobundle.Bundle) ([]byte, error) {
	b.MediaType = BundleMediaType
	b.VerificationMaterial = &protobundle.VerificationMaterial{
		Content: &protobundle.VerificationMaterial_PublicKey{
			PublicKey: &protocommon.PublicKeyIdentifier{Hint: s.hint},
		},
	}
	out, err := protojson.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("marshal bundle: %w", err)
	}
	// protojson varies its whitespace from build to build on purpose;
	// re-indenting makes the file people diff and read the same every time.
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "  "); err != nil {
		return nil, fmt.Errorf("marshal bundle: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// parseBundle checks the parts of a bundle that do not depend on its
// content kind, with errors that say which field is wrong.
func parseBundle(data []byte) (*protobundle.Bundle, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformedBundle)
	}
	if len(data) > maxBundleSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d a bundle may have", ErrMalformedBundle, len(data), maxBundleSize)
	}
	var b protobundle.Bundle
	if err := protojson.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%w: not sigstore bundle JSON: %w", ErrMalformedBundle, err)
	}
	switch b.GetMediaType() {
	case BundleMediaType, legacyV03MediaType:
	case "":
		return nil, fmt.Errorf("%w: mediaType is missing; want %q", ErrMalformedBundle, BundleMediaType)
	default:
		return nil, fmt.Errorf("%w: mediaType %q is not supported; want %q", ErrMalformedBundle, b.GetMediaType(), BundleMediaType)
	}
	vm := b.GetVerificationMaterial()
	if vm == nil {
		return nil, fmt.Errorf("%w: verificationMaterial is missing", ErrMalformedBundle)
	}
	if vm.GetPublicKey() == nil {
		// A certificate means a keyless (Fulcio) signature, which needs a
		// trust root and a log this offline verifier does not have.
		return nil, fmt.Errorf("%w: verificationMaterial has no publicKey; federa bundles are signed with a key, not a certificate", ErrMalformedBundle)
	}
	return &b, nil
}

// publicKey is the verifier side of a Signer: the key parsed from
// signing.pub and its hint.
type publicKey struct {
	v    *signature.ECDSAVerifier
	hint string
}

func parsePublicKey(pubPEM []byte) (*publicKey, error) {
	key, err := cryptoutils.UnmarshalPEMToPublicKey(pubPEM)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	pub, ok := key.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("parse public key: key is %T; federa signs with ECDSA P-256", key)
	}
	if pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("parse public key: key is ECDSA %s; federa signs with ECDSA P-256", pub.Curve.Params().Name)
	}
	v, err := signature.LoadECDSAVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	hint, err := keyHint(pub)
	if err != nil {
		return nil, err
	}
	return &publicKey{v: v, hint: hint}, nil
}

// verify checks sig over msg. The hint is unauthenticated, so it never
// decides anything; it only turns "bad signature" into the likelier
// "signed by another key" when the two disagree.
func (k *publicKey) verify(sig, msg []byte, bundleHint string) error {
	if len(sig) == 0 {
		return fmt.Errorf("%w: signature is empty", ErrMalformedBundle)
	}
	if err := k.v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg)); err != nil {
		if bundleHint != "" && bundleHint != k.hint {
			return fmt.Errorf("%w: bundle names key %s, but the given key is %s", ErrBadSignature, bundleHint, k.hint)
		}
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return nil
}
