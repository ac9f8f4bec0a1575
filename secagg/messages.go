package secagg

import (
	"bytes"
	"fmt"
)

// keyBytes is the length of an X25519 public or private key.
const keyBytes = 32

// Keys is a site's phase-1 advertisement: two fresh X25519 public keys for
// this session. The caller sends it signed over KeysMessage.
type Keys struct {
	Site string
	// CPK is the public key that encrypts the shares sent to and from Site.
	CPK []byte
	// SPK is the public key that derives Site's pairwise masks.
	SPK []byte
}

func (k Keys) clone() Keys {
	return Keys{Site: k.Site, CPK: bytes.Clone(k.CPK), SPK: bytes.Clone(k.SPK)}
}

func (k Keys) equal(o Keys) bool {
	return k.Site == o.Site && bytes.Equal(k.CPK, o.CPK) && bytes.Equal(k.SPK, o.SPK)
}

// Share is one phase-2 message: From's Shamir shares of its mask key s_sk
// and its self-mask seed b, for To, encrypted with AES-256-GCM under a key
// only From and To can derive (X25519 of their c keys through HKDF, bound
// to the session and both names). The associated data binds the session,
// both names and all four of their public keys, so a share decrypts only
// if From and To saw the same keys for each other.
type Share struct {
	From, To   string
	Ciphertext []byte
}

// shareCiphertextBytes is the length of Share.Ciphertext: two 32-byte
// field elements and the 16-byte GCM tag.
const shareCiphertextBytes = 2*feBytes + 16

// RevealKind says which secret a Reveal is a share of.
type RevealKind uint8

const (
	// RevealSelfMask marks a share of the self-mask seed b of a site that
	// survived (is in U3): the coordinator needs b to remove its self mask.
	RevealSelfMask RevealKind = 1
	// RevealMaskKey marks a share of the mask key s_sk of a site that
	// dropped after sharing (in U2, not in U3): the coordinator needs it to
	// remove the pairwise masks the survivors added for it.
	RevealMaskKey RevealKind = 2
)

func (k RevealKind) String() string {
	switch k {
	case RevealSelfMask:
		return "self-mask seed"
	case RevealMaskKey:
		return "mask key"
	}
	return fmt.Sprintf("RevealKind(%d)", uint8(k))
}

// Reveal is one phase-5 message part: From's Shamir share of a secret of
// Of — of the self-mask seed if Of survived, of the mask key if Of
// dropped. Never both for one Of from an honest site.
type Reveal struct {
	From, Of string
	Kind     RevealKind
	// Share is a 32-byte little-endian field element.
	Share []byte
}
