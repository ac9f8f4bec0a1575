package sign

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
)

// InTotoPayloadType is the DSSE payloadType of an in-toto statement; cosign
// and sigstore-go refuse any other for an attestation.
const InTotoPayloadType = "application/vnd.in-toto+json"

// pae is DSSE's pre-authentication encoding, the bytes actually signed:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII
// decimal. Binding the payload type stops a signature over one kind of
// payload being replayed as another.
func pae(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// SignProvenance signs an in-toto Statement v1 (see Statement) as a DSSE
// envelope inside a sigstore bundle v0.3, which cosign
// verify-blob-attestation --new-bundle-format accepts. The statement is
// signed byte for byte as given; it is checked first so that a statement
// cosign would refuse is refused here, at signing time.
func SignProvenance(s *Signer, statement []byte) ([]byte, error) {
	if s == nil {
		return nil, errors.New("sign provenance: nil signer")
	}
	if _, err := parseStatement(statement); err != nil {
		return nil, fmt.Errorf("sign provenance: %w", err)
	}
	sig, err := s.sv.SignMessage(bytes.NewReader(pae(InTotoPayloadType, statement)))
	if err != nil {
		return nil, fmt.Errorf("sign provenance: %w", err)
	}
	b := &protobundle.Bundle{
		Content: &protobundle.Bundle_DsseEnvelope{
			DsseEnvelope: &protodsse.Envelope{
				Payload:     bytes.Clone(statement),
				PayloadType: InTotoPayloadType,
				// No keyid: the DSSE verifier in cosign skips a signature
				// whose keyid differs from the one it derives itself, and
				// the bundle's key hint already names the key.
				Signatures: []*protodsse.Signature{{Sig: sig}},
			},
		},
	}
	out, err := marshalBundle(s, b)
	if err != nil {
		return nil, fmt.Errorf("sign provenance: %w", err)
	}
	return out, nil
}

// VerifyProvenance checks that bundle is a SignProvenance bundle signed by
// the key in pubPEM, that its statement is federa provenance, and that one
// of its subjects is artifact (by SHA-256). It returns the provenance only
// when all of that holds.
func VerifyProvenance(pubPEM, bundle, artifact []byte) (Provenance, error) {
	key, err := parsePublicKey(pubPEM)
	if err != nil {
		return Provenance{}, fmt.Errorf("verify provenance: %w", err)
	}
	b, err := parseBundle(bundle)
	if err != nil {
		return Provenance{}, fmt.Errorf("verify provenance: %w", err)
	}
	env := b.GetDsseEnvelope()
	if env == nil {
		if b.GetMessageSignature() != nil {
			return Provenance{}, fmt.Errorf("verify provenance: %w: bundle holds a message signature (a model signature?), not a DSSE envelope", ErrMalformedBundle)
		}
		return Provenance{}, fmt.Errorf("verify provenance: %w: dsseEnvelope is missing", ErrMalformedBundle)
	}
	if env.GetPayloadType() != InTotoPayloadType {
		return Provenance{}, fmt.Errorf("verify provenance: %w: dsseEnvelope.payloadType is %q; want %q", ErrMalformedBundle, env.GetPayloadType(), InTotoPayloadType)
	}
	// Exactly one, as sigstore-go demands: with several, which key a
	// verifier trusted would depend on the verifier.
	if n := len(env.GetSignatures()); n != 1 {
		return Provenance{}, fmt.Errorf("verify provenance: %w: dsseEnvelope has %d signatures; want 1", ErrMalformedBundle, n)
	}
	// Signature first: nothing in the payload is read before it is known
	// to come from the key.
	if err := key.verify(env.GetSignatures()[0].GetSig(), pae(env.GetPayloadType(), env.GetPayload()), b.GetVerificationMaterial().GetPublicKey().GetHint()); err != nil {
		return Provenance{}, fmt.Errorf("verify provenance: %w", err)
	}
	st, err := parseStatement(env.GetPayload())
	if err != nil {
		return Provenance{}, fmt.Errorf("verify provenance: %w: %w", ErrMalformedBundle, err)
	}
	if st.PredicateType != ProvenancePredicateType {
		return Provenance{}, fmt.Errorf("verify provenance: predicateType is %q; want %q", st.PredicateType, ProvenancePredicateType)
	}
	got := sha256.Sum256(artifact)
	if !st.subjectMatches(got[:]) {
		return Provenance{}, fmt.Errorf("verify provenance: %w: artifact sha256 %s is not a subject of the statement", ErrDigestMismatch, hex.EncodeToString(got[:]))
	}
	var p Provenance
	if len(st.Predicate) > 0 {
		if err := json.Unmarshal(st.Predicate, &p); err != nil {
			return Provenance{}, fmt.Errorf("verify provenance: %w: predicate: %w", ErrMalformedBundle, err)
		}
	}
	return p, nil
}
