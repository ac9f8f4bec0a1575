package site

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
)

// TestLoadFileTrustDomains: site.yaml's identity.trust_domains reach the
// site's identity, a relative bundle path is taken relative to the file,
// and a bundle that does not parse is one error naming the field.
func TestLoadFileTrustDomains(t *testing.T) {
	dir := t.TempDir()
	devIdentity(t, filepath.Join(dir, "id")) // example.org
	coordCA, err := attest.NewCA(spiffeid.RequireTrustDomainFromString("hospital.eu"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, body []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("hospital.eu.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: coordCA.Cert.Raw}))
	write("broken.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	write("data.csv", []byte("a,label\n1,x\n"))
	body := func(bundle string) []byte {
		return []byte(`identity:
  dir: id
  trust_domains:
    - {trust_domain: hospital.eu, bundle: ` + bundle + `}
coordinator: {address: "127.0.0.1:7443", id: "spiffe://hospital.eu/coordinator"}
datasets: [{name: bc, path: data.csv}]
`)
	}

	cfg, err := LoadFile(write("site.yaml", body("hospital.eu.pem")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := cfg.Identity.(interface{ Close() error }); ok {
		t.Cleanup(func() { c.Close() })
	}
	if b, err := cfg.Identity.GetX509BundleForTrustDomain(coordCA.TrustDomain); err != nil || !b.HasX509Authority(coordCA.Cert) {
		t.Fatalf("the coordinator's trust domain bundle = %v, %v", b, err)
	}

	p := write("broken.yaml", body("broken.pem"))
	_, err = LoadFile(p, nil)
	for _, w := range []string{p, "field identity.trust_domains[0].bundle", filepath.Join(dir, "broken.pem")} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
}
