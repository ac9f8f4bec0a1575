package sign

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
)

// SignBlob signs artifact and returns a sigstore bundle v0.3 (JSON) holding
// a message signature: the artifact's SHA-256 digest and an ASN.1 ECDSA
// signature over the artifact. cosign verify-blob --new-bundle-format
// accepts it (see the package doc).
func SignBlob(s *Signer, artifact []byte) ([]byte, error) {
	if s == nil {
		return nil, errors.New("sign blob: nil signer")
	}
	digest := sha256.Sum256(artifact)
	sig, err := s.sv.SignMessage(bytes.NewReader(artifact))
	if err != nil {
		return nil, fmt.Errorf("sign blob: %w", err)
	}
	b := &protobundle.Bundle{
		Content: &protobundle.Bundle_MessageSignature{
			MessageSignature: &protocommon.MessageSignature{
				MessageDigest: &protocommon.HashOutput{
					Algorithm: protocommon.HashAlgorithm_SHA2_256,
					Digest:    digest[:],
				},
				Signature: sig,
			},
		},
	}
	out, err := marshalBundle(s, b)
	if err != nil {
		return nil, fmt.Errorf("sign blob: %w", err)
	}
	return out, nil
}

// VerifyBlob checks that bundle is a SignBlob bundle for artifact, signed by
// the key in pubPEM (the contents of signing.pub).
//
// It checks the recorded digest as well as the signature, which cosign does
// not (it verifies the signature over the artifact and ignores the digest
// field): a bundle whose digest was edited is refused here even though its
// signature still holds.
func VerifyBlob(pubPEM, bundle, artifact []byte) error {
	key, err := parsePublicKey(pubPEM)
	if err != nil {
		return fmt.Errorf("verify blob: %w", err)
	}
	b, err := parseBundle(bundle)
	if err != nil {
		return fmt.Errorf("verify blob: %w", err)
	}
	ms := b.GetMessageSignature()
	if ms == nil {
		if b.GetDsseEnvelope() != nil {
			return fmt.Errorf("verify blob: %w: bundle holds a DSSE envelope (a provenance attestation?), not a message signature", ErrMalformedBundle)
		}
		return fmt.Errorf("verify blob: %w: messageSignature is missing", ErrMalformedBundle)
	}
	md := ms.GetMessageDigest()
	if md == nil {
		return fmt.Errorf("verify blob: %w: messageSignature.messageDigest is missing", ErrMalformedBundle)
	}
	if md.GetAlgorithm() != protocommon.HashAlgorithm_SHA2_256 {
		return fmt.Errorf("verify blob: %w: messageDigest.algorithm is %s; want SHA2_256", ErrMalformedBundle, md.GetAlgorithm())
	}
	if len(md.GetDigest()) != sha256.Size {
		return fmt.Errorf("verify blob: %w: messageDigest.digest has %d bytes; want %d", ErrMalformedBundle, len(md.GetDigest()), sha256.Size)
	}
	got := sha256.Sum256(artifact)
	if !bytes.Equal(got[:], md.GetDigest()) {
		return fmt.Errorf("verify blob: %w: artifact sha256 %s, bundle says %s", ErrDigestMismatch, hex.EncodeToString(got[:]), hex.EncodeToString(md.GetDigest()))
	}
	if err := key.verify(ms.GetSignature(), artifact, b.GetVerificationMaterial().GetPublicKey().GetHint()); err != nil {
		return fmt.Errorf("verify blob: %w", err)
	}
	return nil
}
