package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/federa-dev/federa/internal/fsutil"
)

// Names of the key files LoadOrCreate keeps in its directory. signing.pub
// is the file handed to cosign with --key and published with the models.
const (
	PrivateKeyFile = "signing.key"
	PublicKeyFile  = "signing.pub"
)

// Signer holds a federation's release-signing key. It is safe for
// concurrent use.
type Signer struct {
	sv     *signature.ECDSASignerVerifier
	pubPEM []byte
	hint   string
}

// GenerateKey returns a Signer with a fresh ECDSA P-256 key. P-256 with
// SHA-256 is what cosign assumes for a PEM public key given with --key.
func GenerateKey() (*Signer, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return newSigner(priv)
}

func newSigner(priv *ecdsa.PrivateKey) (*Signer, error) {
	if priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("signing key is ECDSA %s; federa signs with ECDSA P-256", priv.Curve.Params().Name)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("load signing key: %w", err)
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	hint, err := keyHint(priv.Public())
	if err != nil {
		return nil, err
	}
	return &Signer{sv: sv, pubPEM: pubPEM, hint: hint}, nil
}

// PublicKeyPEM returns the PEM-encoded PKIX public key, the contents of
// signing.pub. The caller may modify the returned slice.
func (s *Signer) PublicKeyPEM() []byte {
	return bytes.Clone(s.pubPEM)
}

// keyHint is the bundle's public_key hint: base64(SHA-256(PKIX DER)), the
// fingerprint cosign and sigstore-go put there, so bundles from either tool
// name the key the same way.
func keyHint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

// LoadOrCreate returns the Signer whose key is dir/signing.key, creating the
// directory and a new key on first use. It (re)writes dir/signing.pub from
// the private key, so the published key can never drift from the one that
// signs.
//
// It refuses a signing.pub without a signing.key rather than mint a new key:
// that public key may already be published, and silently replacing it would
// make every earlier release unverifiable against what users hold.
func LoadOrCreate(dir string) (*Signer, error) {
	if dir == "" {
		return nil, errors.New("load signing key: empty directory name")
	}
	keyPath := filepath.Join(dir, PrivateKeyFile)
	pubPath := filepath.Join(dir, PublicKeyFile)

	s, err := loadKey(keyPath)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		if _, perr := os.Stat(pubPath); perr == nil {
			return nil, fmt.Errorf("load signing key: %s exists but %s does not; restore the private key or remove the public key to start a new one", pubPath, keyPath)
		}
		if s, err = createKey(dir, keyPath); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}

	if cur, err := os.ReadFile(pubPath); err == nil && bytes.Equal(cur, s.pubPEM) {
		return s, nil
	}
	if err := fsutil.WriteFile(pubPath, s.pubPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write public key: %w", err)
	}
	return s, nil
}

func loadKey(path string) (*Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load signing key: %w", err)
	}
	// Like ssh, refuse a key others can read: it signs every release.
	// Windows reports 0666 for every file, so the check means nothing there.
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load signing key %s: mode %04o lets others read it; chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load signing key: %w", err)
	}
	key, err := cryptoutils.UnmarshalPEMToPrivateKey(data, nil)
	if err != nil {
		return nil, fmt.Errorf("load signing key %s: %w", path, err)
	}
	priv, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("load signing key %s: key is %T; federa signs with ECDSA P-256", path, key)
	}
	s, err := newSigner(priv)
	if err != nil {
		return nil, fmt.Errorf("load signing key %s: %w", path, err)
	}
	return s, nil
}

// createKey writes a new key without ever replacing one: the key is written
// to a temporary file and hard-linked into place, which fails if another
// process got there first, in which case its key is the one used.
func createKey(dir, keyPath string) (*Signer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create signing key directory: %w", err)
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	s, err := newSigner(priv)
	if err != nil {
		return nil, err
	}
	keyPEM, err := cryptoutils.MarshalPrivateKeyToPEM(priv)
	if err != nil {
		return nil, fmt.Errorf("marshal signing key: %w", err)
	}
	if err := fsutil.CreateExclusive(keyPath, keyPEM, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadKey(keyPath)
		}
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	return s, nil
}
