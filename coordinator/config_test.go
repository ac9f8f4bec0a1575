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

func testIdentity(t testing.TB) attest.Source {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca, err := attest.NewCA(td)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := ca.Issue(attest.CoordinatorID(td), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return attest.NewIdentity(svid, ca.Bundle())
}

func TestValidateRoles(t *testing.T) {
	paris := spiffeid.RequireFromString("spiffe://example.org/site/eu/paris")
	tests := []struct {
		role string
		want string // "" means valid
	}{
		{"data-scientist", ""},
		{"auditor", ""},
		{"operator", ""},
		{"site-admin:eu/paris", ""},
		{"site-admin", `role "site-admin" must name its site: site-admin:<jurisdiction>/<name>, e.g. site-admin:eu/paris`},
		{"site-admin:us/boston", `role "site-admin:us/boston": "us/boston" is not a site in field sites`},
		{"admin", `role "admin" is not valid; valid: data-scientist, auditor, operator, site-admin:<site>`},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			cfg := Config{StateDir: t.TempDir(), Identity: testIdentity(t), Sites: []spiffeid.ID{paris},
				Users: map[string][]string{"spiffe://example.org/user/alice": {tt.role}}}
			err := cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "field users: spiffe://example.org/user/alice: "+tt.want) {
				t.Fatalf("Validate: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNewRefusesABadAccessPolicy(t *testing.T) {
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "access.rego"), []byte("package federa.access\n\ndecision := {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"missing folder": filepath.Join(bad, "nope"), "syntax error": bad} {
		t.Run(name, func(t *testing.T) {
			state := t.TempDir()
			_, err := New(Config{StateDir: state, Identity: testIdentity(t), Listen: "127.0.0.1:0", AccessPolicy: dir,
				Sites: []spiffeid.ID{spiffeid.RequireFromString("spiffe://example.org/site/eu/paris")}})
			if err == nil || !strings.Contains(err.Error(), "field access_policy") || !strings.Contains(err.Error(), dir) {
				t.Fatalf("New: %v, want an error naming access_policy and %s", err, dir)
			}
			// Nothing half-done stays behind: no store, no audit log.
			if entries, _ := os.ReadDir(state); len(entries) != 0 {
				t.Errorf("state dir holds %d entries after a refused start", len(entries))
			}
		})
	}
}

func TestValidateSiteNamesUniqueAcrossTrustDomains(t *testing.T) {
	a := spiffeid.RequireFromString("spiffe://a.example/site/us/boston")
	b := spiffeid.RequireFromString("spiffe://b.example/site/us/boston")
	cfg := Config{StateDir: t.TempDir(), Identity: testIdentity(t), Sites: []spiffeid.ID{a, b, a}}
	err := cfg.Validate()
	for _, want := range []string{
		`field sites[1]: spiffe://a.example/site/us/boston and spiffe://b.example/site/us/boston are both site "us/boston"`,
		`field sites[2]: spiffe://a.example/site/us/boston listed twice`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want %q", err, want)
		}
	}
}

// TestLoadFileReportsEveryProblem: a misspelt key names the file, line and
// key path and lists the keys valid there, beside the file's other
// problems rather than hiding them.
func TestLoadFileReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "coordinator.yaml")
	body := `listne: 127.0.0.1:7443
state_dir: state
identity: {dir: id}
sites: [not-an-id]
heartbeat_interval: soon
limits: {max_conections: 3}
`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(path, nil)
	if err == nil {
		t.Fatal("LoadFile accepted a bad file")
	}
	for _, want := range []string{
		"config " + path + ": ",
		"line 1: field listne: unknown; valid keys: listen, state_dir, identity, sites, users, access_policy, heartbeat_interval, site_wait_timeout, limits, http, log_level (did you mean listen?)",
		`line 5: field heartbeat_interval: "soon" is not a duration`,
		"line 6: field limits.max_conections: unknown; valid keys in limits: handshake_timeout, max_connections, max_connections_per_identity, max_streams_per_connection, max_streams_per_identity, idle_timeout (did you mean max_connections?)",
		`field sites[0]: "not-an-id" is not a SPIFFE ID`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "coordinator.File") || strings.Contains(err.Error(), "in type") {
		t.Errorf("error names Go types:\n%v", err)
	}
}

func TestValidateListenNeedsAPort(t *testing.T) {
	paris := spiffeid.RequireFromString("spiffe://example.org/site/eu/paris")
	for listen, want := range map[string]string{
		"127.0.0.1:7443": "",
		"0.0.0.0:0":      "",
		"127.0.0.1":      `field listen: "127.0.0.1" has no port; want host:port, e.g. 127.0.0.1:7443`,
		"localhost:":     `field listen: "localhost:" has no port; want host:port, e.g. localhost:7443`,
	} {
		t.Run(listen, func(t *testing.T) {
			cfg := Config{Listen: listen, StateDir: t.TempDir(), Identity: testIdentity(t), Sites: []spiffeid.ID{paris}}
			err := cfg.Validate()
			if want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Validate: %v; want %q", err, want)
			}
		})
	}
}
