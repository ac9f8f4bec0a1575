package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Peer signatures let one site prove a message is its own to another site
// through a relay it does not trust (the coordinator relaying secure
// aggregation keys): the message is signed with the site's X.509 SVID key
// and sent with the SVID chain, and the receiver checks the chain against
// its own trust bundle and the SPIFFE ID against the site the message
// claims to come from.

// SignAsSVID signs msg with the key of src's current SVID. It returns the
// signature and the SVID chain (DER, leaf first) to send with it.
func SignAsSVID(src x509svid.Source, msg []byte) (sig []byte, chain [][]byte, err error) {
	svid, err := src.GetX509SVID()
	if err != nil {
		return nil, nil, fmt.Errorf("sign: no SVID: %w", err)
	}
	if len(svid.Certificates) == 0 || svid.PrivateKey == nil {
		return nil, nil, errors.New("sign: the SVID has no certificate or no key")
	}
	switch svid.PrivateKey.Public().(type) {
	case ed25519.PublicKey:
		sig, err = svid.PrivateKey.Sign(rand.Reader, msg, crypto.Hash(0))
	case *ecdsa.PublicKey, *rsa.PublicKey:
		d := sha256.Sum256(msg)
		sig, err = svid.PrivateKey.Sign(rand.Reader, d[:], crypto.SHA256)
	default:
		return nil, nil, fmt.Errorf("sign: SVID key type %T is not supported", svid.PrivateKey.Public())
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sign with the SVID key: %w", err)
	}
	for _, c := range svid.Certificates {
		chain = append(chain, c.Raw)
	}
	return sig, chain, nil
}

// VerifySiteSignature checks that chain is an SVID valid at now (with
// MaxClockSkew's slack before its NotBefore) under
// bundles, that it names site (a "<jurisdiction>/<name>" site ID, in any
// trust domain the bundles hold), and that sig is its key's signature
// over msg. The error says which of these failed.
func VerifySiteSignature(bundles x509bundle.Source, site string, chain [][]byte, msg, sig []byte, now time.Time) error {
	if len(chain) == 0 {
		return fmt.Errorf("signature of %s: no certificate chain", site)
	}
	id, certs, err := verifySVID(chain, bundles, now)
	if err != nil {
		return fmt.Errorf("signature of %s: the certificate chain does not verify against this site's trust bundle: %w", site, err)
	}
	if name, ok := SiteName(id); !ok || name != site {
		return fmt.Errorf("signature of %s: signed by %s, which is not that site", site, id)
	}
	leaf := certs[0][0]
	var algo x509.SignatureAlgorithm
	switch leaf.PublicKey.(type) {
	case ed25519.PublicKey:
		algo = x509.PureEd25519
	case *ecdsa.PublicKey:
		algo = x509.ECDSAWithSHA256
	case *rsa.PublicKey:
		algo = x509.SHA256WithRSA
	default:
		return fmt.Errorf("signature of %s: key type %T is not supported", site, leaf.PublicKey)
	}
	if err := leaf.CheckSignature(algo, msg, sig); err != nil {
		return fmt.Errorf("signature of %s does not match the message: %w", site, err)
	}
	return nil
}
