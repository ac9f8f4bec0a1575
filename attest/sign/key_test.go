package sign_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/federa-dev/federa/attest/sign"
)

func itoa(n int) string { return strconv.Itoa(n) }

func parseECDSAPub(t *testing.T, pubPEM []byte) *ecdsa.PublicKey {
	t.Helper()
	block, _ := pem.Decode(pubPEM)
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("not a PEM public key:\n%s", pubPEM)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := key.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("public key is %T, want ECDSA P-256", key)
	}
	return pub
}

func ecdsaVerify(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	sum := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(pub, sum[:], sig)
}

func TestGenerateKeyIsP256(t *testing.T) {
	s := mustSigner(t)
	parseECDSAPub(t, s.PublicKeyPEM())
	other := mustSigner(t)
	if bytes.Equal(s.PublicKeyPEM(), other.PublicKeyPEM()) {
		t.Error("two generated keys are equal")
	}
}

func TestPublicKeyPEMIsACopy(t *testing.T) {
	s := mustSigner(t)
	p := s.PublicKeyPEM()
	p[0] = 'X'
	if s.PublicKeyPEM()[0] == 'X' {
		t.Error("PublicKeyPEM returned the signer's own slice")
	}
}

func TestLoadOrCreateCreatesThenLoads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys", "release")
	s1, err := sign.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "signing.key")
	pubPath := filepath.Join(dir, "signing.pub")

	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if block, _ := pem.Decode(keyPEM); block == nil || block.Type != "PRIVATE KEY" {
		t.Errorf("signing.key is not a PKCS#8 PEM block:\n%s", keyPEM)
	} else if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		t.Errorf("signing.key: %v", err)
	}
	pubPEM, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pubPEM, s1.PublicKeyPEM()) {
		t.Error("signing.pub differs from PublicKeyPEM")
	}
	if runtime.GOOS != "windows" {
		for path, want := range map[string]os.FileMode{keyPath: 0o600, pubPath: 0o644} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s has mode %04o, want %04o", filepath.Base(path), fi.Mode().Perm(), want)
			}
		}
	}

	s2, err := sign.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s1.PublicKeyPEM(), s2.PublicKeyPEM()) {
		t.Fatal("second LoadOrCreate made a new key")
	}
	// A bundle from the first load verifies under the second: same key.
	b, err := sign.SignBlob(s1, []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sign.VerifyBlob(s2.PublicKeyPEM(), b, []byte("m")); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d files, want signing.key and signing.pub only", len(entries))
	}
}

// signing.pub is derived from signing.key on every load, so a lost or
// edited public key file is put right rather than trusted.
func TestLoadOrCreateRepairsPublicKey(t *testing.T) {
	tests := []struct {
		name   string
		damage func(path string) error
	}{
		{"removed", os.Remove},
		{"edited", func(p string) error { return os.WriteFile(p, []byte("not a key"), 0o644) }},
		{"other key", func(p string) error { return os.WriteFile(p, mustSigner(t).PublicKeyPEM(), 0o644) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := sign.LoadOrCreate(dir)
			if err != nil {
				t.Fatal(err)
			}
			pubPath := filepath.Join(dir, "signing.pub")
			if err := tt.damage(pubPath); err != nil {
				t.Fatal(err)
			}
			if _, err := sign.LoadOrCreate(dir); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(pubPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, s.PublicKeyPEM()) {
				t.Error("signing.pub was not rewritten from signing.key")
			}
		})
	}
}

func TestLoadOrCreateRejects(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384DER, err := x509.MarshalPKCS8PrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	p384PEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p384DER})

	tests := []struct {
		name    string
		setup   func(dir string) error
		wantMsg string
	}{
		{
			name: "public key without private key",
			setup: func(dir string) error {
				return os.WriteFile(filepath.Join(dir, "signing.pub"), mustSigner(t).PublicKeyPEM(), 0o644)
			},
			wantMsg: "restore the private key or remove the public key",
		},
		{
			name: "key readable by others",
			setup: func(dir string) error {
				s := filepath.Join(t.TempDir(), "k")
				if _, err := sign.LoadOrCreate(s); err != nil {
					return err
				}
				data, err := os.ReadFile(filepath.Join(s, "signing.key"))
				if err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(dir, "signing.key"), data, 0o644)
			},
			wantMsg: "chmod 600",
		},
		{
			name: "not PEM",
			setup: func(dir string) error {
				return os.WriteFile(filepath.Join(dir, "signing.key"), []byte("secret"), 0o600)
			},
			wantMsg: "PEM decoding failed",
		},
		{
			name: "P-384 key",
			setup: func(dir string) error {
				return os.WriteFile(filepath.Join(dir, "signing.key"), p384PEM, 0o600)
			},
			wantMsg: "ECDSA P-384; federa signs with ECDSA P-256",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "key readable by others" && runtime.GOOS == "windows" {
				t.Skip("skipped on Windows: file modes mean nothing there")
			}
			dir := t.TempDir()
			if err := tt.setup(dir); err != nil {
				t.Fatal(err)
			}
			_, err := sign.LoadOrCreate(dir)
			if err == nil {
				t.Fatal("LoadOrCreate succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
			if _, statErr := os.Stat(filepath.Join(dir, "signing.key")); tt.name == "public key without private key" && statErr == nil {
				t.Error("a new private key was created beside an orphaned public key")
			}
		})
	}
	if _, err := sign.LoadOrCreate(""); err == nil {
		t.Error(`LoadOrCreate("") succeeded`)
	}
}

// Two processes (here goroutines) starting a fresh federation at once must
// end up with one key, not each with its own.
func TestLoadOrCreateConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "k")
	const n = 8
	pubs := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := sign.LoadOrCreate(dir)
			errs[i] = err
			if err == nil {
				pubs[i] = s.PublicKeyPEM()
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("LoadOrCreate %d: %v", i, errs[i])
		}
		if !bytes.Equal(pubs[i], pubs[0]) {
			t.Fatalf("LoadOrCreate %d returned another key", i)
		}
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, "signing.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, pubs[0]) {
		t.Error("signing.pub is not the key everyone got")
	}
}
