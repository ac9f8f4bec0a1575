package attest_test

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/federa-dev/federa/attest"
)

var (
	td      = spiffeid.RequireTrustDomainFromString("example.org")
	otherTD = spiffeid.RequireTrustDomainFromString("other.org")
	paris   = spiffeid.RequireFromString("spiffe://example.org/site/eu/paris")
	boston  = spiffeid.RequireFromString("spiffe://example.org/site/us/boston")
)

func newCA(t *testing.T, td spiffeid.TrustDomain) *attest.CA {
	t.Helper()
	ca, err := attest.NewCA(td)
	if err != nil {
		t.Fatalf("NewCA(%s): %v", td, err)
	}
	return ca
}

func TestNewCA(t *testing.T) {
	ca := newCA(t, td)
	if ca.TrustDomain != td {
		t.Errorf("TrustDomain = %s, want %s", ca.TrustDomain, td)
	}
	if !ca.Cert.IsCA {
		t.Error("CA certificate is not a CA")
	}
	if len(ca.Cert.URIs) != 1 || ca.Cert.URIs[0].String() != "spiffe://example.org" {
		t.Errorf("CA URIs = %v, want the trust domain's SPIFFE ID", ca.Cert.URIs)
	}
	if _, err := attest.NewCA(spiffeid.TrustDomain{}); err == nil || !strings.Contains(err.Error(), "trust domain is empty") {
		t.Errorf("NewCA(zero) error = %v", err)
	}
}

func TestSaveLoadCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca := newCA(t, td)
	if err := ca.Save(dir); err != nil {
		t.Fatalf("Save: %v", err)
	}
	for name, perm := range map[string]os.FileMode{
		attest.CACertFile: 0o644,
		attest.BundleFile: 0o644,
		attest.CAKeyFile:  0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("Save did not write %s: %v", name, err)
			continue
		}
		if fi.Mode().Perm() != perm {
			t.Errorf("%s has mode %v, want %v", name, fi.Mode().Perm(), perm)
		}
	}

	loaded, err := attest.LoadCA(dir)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if loaded.TrustDomain != td || !loaded.Cert.Equal(ca.Cert) {
		t.Errorf("LoadCA gave trust domain %s and a different certificate", loaded.TrustDomain)
	}
	// The loaded key is the same key: what it signs verifies against the
	// bundle the original CA handed out.
	svid, err := loaded.Issue(paris, time.Hour)
	if err != nil {
		t.Fatalf("Issue from loaded CA: %v", err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, ca.Bundle()); err != nil {
		t.Errorf("SVID from loaded CA does not verify against the original bundle: %v", err)
	}
}

func TestSaveRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	first := newCA(t, td)
	if err := first.Save(dir); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(dir, attest.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	err = newCA(t, td).Save(dir)
	if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Save error = %v, want it to refuse and name the directory", err)
	}
	after, err := os.ReadFile(filepath.Join(dir, attest.CACertFile))
	if err != nil || !bytes.Equal(before, after) {
		t.Error("a refused Save changed ca.pem")
	}
	loaded, err := attest.LoadCA(dir)
	if err != nil || !loaded.Cert.Equal(first.Cert) {
		t.Errorf("after a refused Save LoadCA = %v, %v; want the first CA", loaded, err)
	}
}

func TestLoadCAErrors(t *testing.T) {
	ca := newCA(t, td)
	tests := []struct {
		name  string
		setup func(dir string) error
		want  []string
	}{
		{"empty directory", func(string) error { return nil }, []string{attest.CACertFile, "dev-ca init"}},
		{"garbage certificate", func(dir string) error {
			if err := ca.Save(dir); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, attest.CACertFile), []byte("hello"), 0o644)
		}, []string{attest.CACertFile, "no PEM CERTIFICATE"}},
		{"missing key", func(dir string) error {
			if err := ca.Save(dir); err != nil {
				return err
			}
			return os.Remove(filepath.Join(dir, attest.CAKeyFile))
		}, []string{attest.CAKeyFile}},
		{"garbage key", func(dir string) error {
			if err := ca.Save(dir); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, attest.CAKeyFile), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
		}, []string{attest.CAKeyFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := tt.setup(dir); err != nil {
				t.Fatal(err)
			}
			_, err := attest.LoadCA(dir)
			if err == nil {
				t.Fatal("LoadCA succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestIssue(t *testing.T) {
	ca := newCA(t, td)
	tests := []struct {
		name string
		id   spiffeid.ID
		ttl  time.Duration
		want string // "" means success
	}{
		{"site", paris, time.Hour, ""},
		{"coordinator", attest.CoordinatorID(td), attest.DefaultSVIDTTL, ""},
		{"other trust domain", spiffeid.RequireFromString("spiffe://other.org/site/eu/paris"), time.Hour, `trust domain "example.org" only`},
		{"zero ttl", paris, 0, "ttl must be positive"},
		{"negative ttl", paris, -time.Hour, "ttl must be positive"},
		{"empty id", spiffeid.ID{}, time.Hour, "SPIFFE ID is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svid, err := ca.Issue(tt.id, tt.ttl)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Issue error = %v, want one containing %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if svid.ID != tt.id {
				t.Errorf("SVID ID = %s, want %s", svid.ID, tt.id)
			}
			id, _, err := x509svid.Verify(svid.Certificates, ca.Bundle())
			if err != nil || id != tt.id {
				t.Errorf("Verify = %s, %v; want %s", id, err, tt.id)
			}
			leaf := svid.Certificates[0]
			if leaf.IsCA {
				t.Error("SVID is a CA certificate")
			}
			if d := time.Until(leaf.NotAfter) - tt.ttl; d > time.Minute || d < -time.Minute {
				t.Errorf("SVID expires at %s, want about %s from now", leaf.NotAfter, tt.ttl)
			}
			wantUsage := map[x509.ExtKeyUsage]bool{x509.ExtKeyUsageServerAuth: true, x509.ExtKeyUsageClientAuth: true}
			for _, u := range leaf.ExtKeyUsage {
				delete(wantUsage, u)
			}
			if len(wantUsage) != 0 {
				t.Errorf("SVID cannot be used for both ends of mTLS: ExtKeyUsage %v", leaf.ExtKeyUsage)
			}
		})
	}
}

func TestIssueUsesInjectedClock(t *testing.T) {
	ca := newCA(t, td)
	past := time.Now().Add(-48 * time.Hour)
	ca.Now = func() time.Time { return past }
	svid, err := ca.Issue(paris, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := svid.Certificates[0].NotAfter; !got.Before(time.Now()) || got.Sub(past.Add(time.Hour)).Abs() > time.Second {
		t.Errorf("NotAfter = %s, want %s", got, past.Add(time.Hour))
	}
}
