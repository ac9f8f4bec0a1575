package site

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/federa-dev/federa/internal/testutil"
)

// FuzzLoadFile feeds LoadFile arbitrary site.yaml bytes, beside a real
// identity folder and a data set. It must never panic; a refusal names the
// file; an accepted config passes Validate.
func FuzzLoadFile(f *testing.F) {
	dir := f.TempDir()
	devIdentity(f, filepath.Join(dir, "id"))
	if err := os.WriteFile(filepath.Join(dir, "data.csv"), []byte("a,b,label\n1,2,x\n3,4,y\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	f.Add(`identity: {dir: id}
coordinator: {address: "127.0.0.1:7443", id: "spiffe://example.org/coordinator", jurisdiction: eu}
datasets:
  - {name: bc, path: data.csv, label: label}
state_dir: state
reconnect: {min: 1s, max: 30s}
approvals: {remote_approvers: [spiffe://example.org/user/alice]}
log_level: info
`)
	f.Add("identity: {dir: id}\ncoordinator: {id: nope}\ndatasets: [{name: bc, path: data.csv}, {name: bc, format: postgres}]\n")
	f.Add("policy: {bundle: b.tar.gz}\nreconnect: {min: 5s, max: 1s}\n")
	f.Add("datasets: {\n")
	f.Add("")
	p := filepath.Join(dir, "site.yaml")
	testutil.FuzzConfigFile(f, p, func(p string) (Config, error) { return LoadFile(p, nil) },
		func(c Config) error { return c.Validate() }, func(c Config) { testutil.CloseIdentity(c.Identity) })
}
