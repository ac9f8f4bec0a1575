package site

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
