package coordinator

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
)

// TestLoadFileTrustDomains: coordinator.yaml's identity.trust_domains reach
// the coordinator's identity, and a bad entry is one error naming the file
// and the field.
func TestLoadFileTrustDomains(t *testing.T) {
	dir := t.TempDir()
	own, err := attest.NewCA(spiffeid.RequireTrustDomainFromString("hospital.eu"))
	if err != nil {
		t.Fatal(err)
	}
	if err := own.IssueToDir(attest.CoordinatorID(own.TrustDomain), time.Hour, filepath.Join(dir, "id")); err != nil {
		t.Fatal(err)
	}
	bank, err := attest.NewCA(spiffeid.RequireTrustDomainFromString("bank.us"))
	if err != nil {
		t.Fatal(err)
	}
	bankPEM := filepath.Join(dir, "bank.us.pem")
	if err := os.WriteFile(bankPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: bank.Cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	head := "state_dir: " + filepath.Join(dir, "state") + "\nsites: [spiffe://bank.us/site/us/boston]\n"

	cfg, err := LoadFile(write("good.yaml", head+`identity:
  dir: `+filepath.Join(dir, "id")+`
  trust_domains:
    - {trust_domain: bank.us, bundle: `+bankPEM+`}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := cfg.Identity.(interface{ Close() error }); ok {
		t.Cleanup(func() { c.Close() })
	}
	if b, err := cfg.Identity.GetX509BundleForTrustDomain(bank.TrustDomain); err != nil || !b.HasX509Authority(bank.Cert) {
		t.Fatalf("bank.us bundle = %v, %v", b, err)
	}

	for _, tt := range []struct {
		name, identity string
		want           []string
	}{
		{"bad trust domain name", "{dir: " + filepath.Join(dir, "id") + ", trust_domains: [{trust_domain: 'bank us', bundle: " + bankPEM + "}]}",
			[]string{"field identity.trust_domains[0].trust_domain", `"bank us" is not a trust domain name`}},
		{"bad endpoint_spiffe_id", "{dir: " + filepath.Join(dir, "id") + ", trust_domains: [{trust_domain: bank.us, bundle: " + bankPEM + ", endpoint: 'https://spire.bank.us:8443', endpoint_spiffe_id: spire/server}]}",
			[]string{"field identity.trust_domains[0].endpoint_spiffe_id", "is not a SPIFFE ID"}},
		{"unknown key in an entry", "{dir: " + filepath.Join(dir, "id") + ", trust_domains: [{trust_domain: bank.us, bundel: x}]}",
			[]string{"bundel"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(tt.name, " ", "-")+".yaml", head+"identity: "+tt.identity+"\n")
			_, err := LoadFile(p, nil)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range append(tt.want, p) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestLoadFileRelativePaths: relative paths in coordinator.yaml are taken
// relative to the file, as in site.yaml, so a coordinator started from
// another working directory finds its state rather than creating a fresh,
// empty one there.
func TestLoadFileRelativePaths(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "etc")
	ca, err := attest.NewCA(spiffeid.RequireTrustDomainFromString("example.org"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueToDir(attest.CoordinatorID(ca.TrustDomain), time.Hour, filepath.Join(conf, "id")); err != nil {
		t.Fatal(err)
	}
	bank, err := attest.NewCA(spiffeid.RequireTrustDomainFromString("bank.us"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "bank.us.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: bank.Cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(conf, "coordinator.yaml")
	if err := os.WriteFile(path, []byte(`state_dir: state
access_policy: access
identity:
  dir: id
  trust_domains: [{trust_domain: bank.us, bundle: bank.us.pem}]
sites: [spiffe://example.org/site/eu/paris]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // anywhere but beside the file

	cfg, err := LoadFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := cfg.Identity.(interface{ Close() error }); ok {
		t.Cleanup(func() { c.Close() })
	}
	if want := filepath.Join(conf, "state"); cfg.StateDir != want {
		t.Errorf("StateDir = %q, want %q (relative to the file)", cfg.StateDir, want)
	}
	if want := filepath.Join(conf, "access"); cfg.AccessPolicy != want {
		t.Errorf("AccessPolicy = %q, want %q (relative to the file)", cfg.AccessPolicy, want)
	}
	if b, err := cfg.Identity.GetX509BundleForTrustDomain(bank.TrustDomain); err != nil || !b.HasX509Authority(bank.Cert) {
		t.Errorf("bank.us bundle (relative to the file) = %v, %v", b, err)
	}
}
