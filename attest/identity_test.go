package attest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/federa-dev/federa/attest"
)

func TestIssueToDirLoadIdentity(t *testing.T) {
	ca := newCA(t, td)
	dir := filepath.Join(t.TempDir(), "paris")
	const ttl = 3 * time.Hour
	if err := ca.IssueToDir(paris, ttl, dir); err != nil {
		t.Fatalf("IssueToDir: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, attest.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}

	id, err := attest.LoadIdentity(dir)
	if err != nil {
		t.Fatalf("LoadIdentity: %v", err)
	}
	if id.ID() != paris {
		t.Errorf("ID = %s, want %s", id.ID(), paris)
	}
	if d := time.Until(id.Expiry()) - ttl; d.Abs() > time.Minute {
		t.Errorf("Expiry = %s, want about %s from now", id.Expiry(), ttl)
	}
	svid, err := id.GetX509SVID()
	if err != nil || svid.ID != paris || svid.PrivateKey == nil {
		t.Errorf("GetX509SVID = %v, %v", svid, err)
	}
	b, err := id.GetX509BundleForTrustDomain(td)
	if err != nil {
		t.Fatalf("bundle for own trust domain: %v", err)
	}
	if auth := b.X509Authorities(); len(auth) != 1 || !auth[0].Equal(ca.Cert) {
		t.Errorf("bundle authorities are not the CA certificate")
	}
	if _, err := id.GetX509BundleForTrustDomain(otherTD); err == nil {
		t.Error("identity trusts a trust domain it has no bundle for")
	}
}

func TestLoadIdentityFromSavedCA(t *testing.T) {
	// The CLI flow: dev-ca init, then dev-ca issue with the CA from disk.
	caDir := t.TempDir()
	if err := newCA(t, td).Save(caDir); err != nil {
		t.Fatal(err)
	}
	ca, err := attest.LoadCA(caDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ca.IssueToDir(attest.CoordinatorID(td), attest.DefaultSVIDTTL, dir); err != nil {
		t.Fatal(err)
	}
	id, err := attest.LoadIdentity(dir)
	if err != nil || id.ID() != attest.CoordinatorID(td) {
		t.Errorf("LoadIdentity = %v, %v", id, err)
	}
}

func TestLoadIdentityErrors(t *testing.T) {
	ca := newCA(t, td)
	other := t.TempDir()
	if err := ca.IssueToDir(boston, time.Hour, other); err != nil {
		t.Fatal(err)
	}
	otherKey, err := os.ReadFile(filepath.Join(other, attest.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) func(string) error {
		return func(dir string) error { return os.WriteFile(filepath.Join(dir, name), data, 0o600) }
	}
	remove := func(name string) func(string) error {
		return func(dir string) error { return os.Remove(filepath.Join(dir, name)) }
	}
	tests := []struct {
		name    string
		corrupt func(dir string) error
		want    []string
	}{
		{"missing svid.pem", remove(attest.SVIDFile), []string{attest.SVIDFile, "dev-ca issue"}},
		{"missing key.pem", remove(attest.KeyFile), []string{attest.KeyFile}},
		{"missing bundle.pem", remove(attest.BundleFile), []string{attest.BundleFile}},
		{"garbage svid.pem", write(attest.SVIDFile, []byte("not a certificate")), []string{attest.SVIDFile}},
		{"garbage key.pem", write(attest.KeyFile, []byte("not a key")), []string{attest.KeyFile}},
		{"garbage bundle.pem", write(attest.BundleFile, []byte("not a bundle")), []string{attest.BundleFile, "no PEM CERTIFICATE"}},
		{"bundle.pem with a broken certificate", write(attest.BundleFile, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")), []string{attest.BundleFile}},
		{"bundle.pem with only a key", write(attest.BundleFile, otherKey), []string{attest.BundleFile, "no PEM CERTIFICATE"}},
		{"key of another identity", write(attest.KeyFile, otherKey), []string{attest.KeyFile, "does not match"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := ca.IssueToDir(paris, time.Hour, dir); err != nil {
				t.Fatal(err)
			}
			if err := tt.corrupt(dir); err != nil {
				t.Fatal(err)
			}
			id, err := attest.LoadIdentity(dir)
			if err == nil {
				t.Fatalf("LoadIdentity succeeded with %s", id.ID())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("no directory", func(t *testing.T) {
		_, err := attest.LoadIdentity("")
		if err == nil || !strings.Contains(err.Error(), "no identity directory") {
			t.Errorf("LoadIdentity(\"\") error = %v", err)
		}
	})
	t.Run("directory does not exist", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope")
		_, err := attest.LoadIdentity(missing)
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("LoadIdentity(missing) error = %v, want it to name the path", err)
		}
	})
}

func TestLoadIdentityBundleWithoutSPIFFEURI(t *testing.T) {
	// A bundle from elsewhere may lack the trust domain URI; the SVID's own
	// trust domain is then assumed.
	ca := newCA(t, td)
	ca.Cert.URIs = nil
	dir := t.TempDir()
	svid, err := ca.Issue(paris, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := attest.WriteIdentity(dir, svid, ca.Bundle()); err != nil {
		t.Fatal(err)
	}
	id, err := attest.LoadIdentity(dir)
	if err != nil {
		t.Fatalf("LoadIdentity: %v", err)
	}
	if _, err := id.GetX509BundleForTrustDomain(td); err != nil {
		t.Errorf("no bundle for the SVID's trust domain: %v", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.pem")
	for _, content := range []string{"first", "second, longer", "3"} {
		if err := attest.WriteFileAtomic(p, []byte(content), 0o640); err != nil {
			t.Fatalf("WriteFileAtomic: %v", err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Errorf("file = %q, %v; want %q", got, err, content)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if err := attest.WriteFileAtomic(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Error("WriteFileAtomic into a missing directory succeeded")
	}
}
