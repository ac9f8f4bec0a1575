package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// File names used by the development CA and by identity directories.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
	SVIDFile   = "svid.pem"
	KeyFile    = "key.pem"
	BundleFile = "bundle.pem"
)

// DefaultSVIDTTL is how long a development SVID lives unless told otherwise.
// Long enough for a demo or a day's work; real deployments use SPIRE's short
// rotating SVIDs instead.
const DefaultSVIDTTL = 24 * time.Hour

// CA is a development certificate authority for one trust domain. It signs
// X.509-SVIDs; its certificate is the trust bundle.
type CA struct {
	TrustDomain spiffeid.TrustDomain
	Cert        *x509.Certificate
	Key         crypto.Signer
	// Now is injected so tests can issue expired or not-yet-valid SVIDs.
	Now func() time.Time
}

// NewCA creates a fresh in-memory CA for td, valid for ten years.
func NewCA(td spiffeid.TrustDomain) (*CA, error) {
	if td.IsZero() {
		return nil, errors.New("create dev CA: trust domain is empty")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create dev CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{Organization: []string{"federa dev CA"}, CommonName: td.Name()},
		URIs:                  []*url.URL{td.ID().URL()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create dev CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse dev CA certificate: %w", err)
	}
	return &CA{TrustDomain: td, Cert: cert, Key: key, Now: time.Now}, nil
}

// Bundle is the CA's trust bundle.
func (ca *CA) Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(ca.TrustDomain, []*x509.Certificate{ca.Cert})
}

// Issue signs a new X.509-SVID for id, valid for ttl from now.
func (ca *CA) Issue(id spiffeid.ID, ttl time.Duration) (*x509svid.SVID, error) {
	if id.IsZero() {
		return nil, errors.New("issue SVID: SPIFFE ID is empty")
	}
	if id.TrustDomain() != ca.TrustDomain {
		return nil, fmt.Errorf("issue SVID for %s: the CA signs for trust domain %q only", id, ca.TrustDomain)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("issue SVID for %s: ttl must be positive, got %s", id, ttl)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issue SVID for %s: generate key: %w", id, err)
	}
	now := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{Organization: []string{"federa"}},
		URIs:         []*url.URL{id.URL()},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue SVID for %s: %w", id, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issue SVID for %s: parse: %w", id, err)
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key}, nil
}

func (ca *CA) now() time.Time {
	if ca.Now != nil {
		return ca.Now()
	}
	return time.Now()
}

// Save writes the CA certificate (also as the trust bundle) and key to dir.
// It refuses to overwrite an existing CA so a second init cannot silently
// invalidate every identity already issued.
func (ca *CA) Save(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
		return fmt.Errorf("init dev CA in %s: %s already exists; remove the directory to start over", dir, CAKeyFile)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init dev CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return fmt.Errorf("init dev CA: marshal key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CACertFile, certPEM, 0o644},
		{BundleFile, certPEM, 0o644},
		{CAKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
	}
	for _, f := range files {
		if err := WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("init dev CA: %w", err)
		}
	}
	return nil
}

// LoadCA reads a CA written by Save.
func LoadCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("load dev CA: %w (run `federa dev-ca init --dir %s` first)", err, dir)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("load dev CA: %s: no PEM CERTIFICATE block", certPath)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load dev CA: %s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load dev CA: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("load dev CA: %s: no PEM block", keyPath)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load dev CA: %s: %w", keyPath, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("load dev CA: %s: key is not a signing key", keyPath)
	}
	if len(cert.URIs) != 1 {
		return nil, fmt.Errorf("load dev CA: %s: expected one SPIFFE trust domain URI", certPath)
	}
	td, err := spiffeid.TrustDomainFromURI(cert.URIs[0])
	if err != nil {
		return nil, fmt.Errorf("load dev CA: %s: %w", certPath, err)
	}
	return &CA{TrustDomain: td, Cert: cert, Key: signer, Now: time.Now}, nil
}

// IssueToDir issues an SVID for id and writes svid.pem, key.pem and
// bundle.pem into dir, the layout LoadIdentity reads.
func (ca *CA) IssueToDir(id spiffeid.ID, ttl time.Duration, dir string) error {
	svid, err := ca.Issue(id, ttl)
	if err != nil {
		return err
	}
	return WriteIdentity(dir, svid, ca.Bundle())
}

// WriteIdentity writes an SVID and its trust bundle into dir.
func WriteIdentity(dir string, svid *x509svid.SVID, bundle *x509bundle.Bundle) error {
	certPEM, keyPEM, err := svid.Marshal()
	if err != nil {
		return fmt.Errorf("write identity %s: %w", svid.ID, err)
	}
	bundlePEM, err := bundle.Marshal()
	if err != nil {
		return fmt.Errorf("write identity %s: bundle: %w", svid.ID, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write identity %s: %w", svid.ID, err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{SVIDFile, certPEM, 0o644}, {KeyFile, keyPEM, 0o600}, {BundleFile, bundlePEM, 0o644}} {
		if err := WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("write identity %s: %w", svid.ID, err)
		}
	}
	return nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on supported platforms.
		panic(err)
	}
	return n
}
