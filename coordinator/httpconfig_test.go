package coordinator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadFileHTTP: http.listen and http.token_file load, the token file
// relative to coordinator.yaml; a listener without a token, or a
// misspelt key under http, is an error naming the field and what is
// valid.
func TestLoadFileHTTP(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.yaml", `state_dir: state
identity: {dir: id}
sites: [spiffe://example.org/site/eu/paris]
http: {listen: "127.0.0.1:9090", tokn_file: tok}
`)
	_, err := LoadFile(bad, nil)
	for _, want := range []string{
		"line 4: field http.tokn_file: unknown; valid keys in http: listen, token_file, reader (did you mean token_file?)",
		"field http.token_file: required with http.listen",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	f := File{}
	f.HTTP.Listen, f.HTTP.TokenFile = "127.0.0.1:0", "secrets/tok"
	cfg := f.HTTP.Config(dir)
	if cfg.TokenFile != filepath.Join(dir, "secrets/tok") || cfg.Listen != "127.0.0.1:0" || cfg.Dev {
		t.Errorf("http section loads as %+v; want the token file relative to the config's directory and no dev mode", cfg)
	}
}
