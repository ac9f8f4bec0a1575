package coordinator

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/internal/testutil"
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
	testutil.FuzzConfigFile(f, p, func(p string) (Config, error) { return LoadFile(p, nil) },
		func(c Config) error { return c.Validate() }, func(c Config) { testutil.CloseIdentity(c.Identity) })
}
