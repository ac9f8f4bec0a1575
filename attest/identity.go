package attest

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Source is where a process gets its own X.509-SVID and the trust bundles
// it verifies peers against. It is the extension point for identity: files
// from the dev CA today, the SPIFFE Workload API next.
type Source interface {
	x509svid.Source
	x509bundle.Source
	// ID is this process's own SPIFFE ID.
	ID() spiffeid.ID
}

// Identity is a Source backed by an SVID and bundle loaded once.
type Identity struct {
	svid    *x509svid.SVID
	bundles *x509bundle.Set
}

var _ Source = (*Identity)(nil)

// NewIdentity wraps an SVID and the bundles to trust.
func NewIdentity(svid *x509svid.SVID, bundles ...*x509bundle.Bundle) *Identity {
	return &Identity{svid: svid, bundles: x509bundle.NewSet(bundles...)}
}

// LoadIdentity reads svid.pem, key.pem and bundle.pem from dir. Each error
// names the file and what is wrong with it.
func LoadIdentity(dir string) (*Identity, error) {
	if dir == "" {
		return nil, errors.New("load identity: no identity directory given (want a directory with svid.pem, key.pem and bundle.pem)")
	}
	svidPath, keyPath, bundlePath := filepath.Join(dir, SVIDFile), filepath.Join(dir, KeyFile), filepath.Join(dir, BundleFile)
	for _, p := range []string{svidPath, keyPath, bundlePath} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("load identity: %w (an identity directory holds svid.pem, key.pem and bundle.pem; `federa dev-ca issue` writes one)", err)
		}
	}
	svid, err := x509svid.Load(svidPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("load identity: %s / %s: %w", svidPath, keyPath, err)
	}
	bundle, err := loadBundle(bundlePath, svid.ID.TrustDomain())
	if err != nil {
		return nil, err
	}
	return NewIdentity(svid, bundle), nil
}

// loadBundle reads a PEM bundle. Its trust domain comes from the CA
// certificate's SPIFFE URI when it has one, else from fallback.
func loadBundle(path string, fallback spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load trust bundle: %w", err)
	}
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("load trust bundle %s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("load trust bundle %s: no PEM CERTIFICATE blocks found", path)
	}
	td := fallback
	if len(certs[0].URIs) == 1 {
		if got, err := spiffeid.TrustDomainFromURI(certs[0].URIs[0]); err == nil {
			td = got
		}
	}
	return x509bundle.FromX509Authorities(td, certs), nil
}

// GetX509SVID implements x509svid.Source.
func (i *Identity) GetX509SVID() (*x509svid.SVID, error) { return i.svid, nil }

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (i *Identity) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return i.bundles.GetX509BundleForTrustDomain(td)
}

// ID is the SVID's SPIFFE ID.
func (i *Identity) ID() spiffeid.ID { return i.svid.ID }

// Expiry is when the SVID's leaf certificate stops being valid.
func (i *Identity) Expiry() time.Time { return i.svid.Certificates[0].NotAfter }
