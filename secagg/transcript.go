package secagg

import (
	"encoding/binary"
	"slices"
)

// Domain-separation labels: every hash, key derivation and signed message
// starts with one, so no byte string means two things.
const (
	labelKeys        = "federa/secagg/v1/keys"
	labelConsistency = "federa/secagg/v1/consistency"
	labelGraph       = "federa/secagg/v1/graph"
	labelShareKey    = "federa/secagg/v1/share-key"
	labelShareAD     = "federa/secagg/v1/share-ad"
	labelPairMask    = "federa/secagg/v1/pair-mask"
	labelSelfMask    = "federa/secagg/v1/self-mask"
)

// canon is the one canonical encoding: the label and then every field, each
// preceded by its length as a 4-byte big-endian integer. Distinct field
// lists give distinct byte strings.
func canon(label string, fields ...[]byte) []byte {
	size := 4 + len(label)
	for _, f := range fields {
		size += 4 + len(f)
	}
	b := make([]byte, 0, size)
	b = appendField(b, []byte(label))
	for _, f := range fields {
		b = appendField(b, f)
	}
	return b
}

func appendField(b, f []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
	return append(b, f...)
}

// KeysMessage returns the bytes a site signs with its SVID key to vouch for
// the keys it advertises in this session, and that every other site
// verifies before ShareKeys. It binds the session, the site's name and both
// public keys.
func KeysMessage(session []byte, k Keys) []byte {
	return canon(labelKeys, session, []byte(k.Site), k.CPK, k.SPK)
}

// ConsistencyMessage returns the bytes each survivor signs in the
// consistency check: the session and the survivor set U3. U3 is a set: the
// message sorts and de-duplicates a copy, so order and repeats do not
// change it.
func ConsistencyMessage(session []byte, u3 []string) []byte {
	names := slices.Clone(u3)
	slices.Sort(names)
	names = slices.Compact(names)
	fields := make([][]byte, 0, 2+len(names))
	fields = append(fields, session, binary.BigEndian.AppendUint32(nil, uint32(len(names))))
	for _, s := range names {
		fields = append(fields, []byte(s))
	}
	return canon(labelConsistency, fields...)
}
