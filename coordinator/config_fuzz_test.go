package coordinator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
)

// FuzzLoadFile feeds LoadFile arbitrary coordinator.yaml bytes, beside a
// real identity folder. It must never panic; a refusal names the file; an
// accepted config passes Validate.
func FuzzLoadFile(f *testing.F) {
	dir := f.TempDir()
	ca, err := attest.NewCA(spiffeid.RequireTrustDomainFromString("example.org"))
	if err != nil {
		f.Fatal(err)
	}
	if err := ca.IssueToDir(attest.CoordinatorID(ca.TrustDomain), time.Hour, filepath.Join(dir, "id")); err != nil {
		f.Fatal(err)
	}
	good := `listen: 127.0.0.1:0
state_dir: state
identity: {dir: id}
sites: [spiffe://example.org/site/eu/paris, spiffe://example.org/site/sg/singapore]
users:
  - {id: spiffe://example.org/user/alice, roles: [data-scientist]}
  - {id: spiffe://example.org/user/bob, roles: ["site-admin:eu/paris"]}
heartbeat_interval: 2s
site_wait_timeout: 1m
limits: {max_connections: 10}
`
	f.Add(good)
	f.Add("identity: {dir: id}\nsites: [not-an-id]\nusers: [{id: x, roles: [admin]}]\n")
	f.Add("listen: [\n")
	f.Add("heartbeat_interval: -5s\nunknown_key: 1\n")
	f.Add("")
	p := filepath.Join(dir, "coordinator.yaml")
	f.Fuzz(func(t *testing.T, content string) {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadFile(p, nil)
		if err != nil {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if c, ok := cfg.Identity.(interface{ Close() error }); ok {
			defer c.Close()
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("LoadFile accepted a config Validate refuses: %v", err)
		}
	})
}
