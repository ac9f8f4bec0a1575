package coordinator

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
)

// The limits themselves are hit over real mTLS in
// sim/limits_test.go; these are about how they are configured.

// TestLoadFileLimits: coordinator.yaml's limits block reaches Config;
// a key left out takes its default; 0 and negative values are errors that
// name the key and say what is valid.
func TestLoadFileLimits(t *testing.T) {
	dir := t.TempDir()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca, err := attest.NewCA(td)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueToDir(attest.CoordinatorID(td), time.Hour, filepath.Join(dir, "id")); err != nil {
		t.Fatal(err)
	}
	head := "state_dir: " + filepath.Join(dir, "state") + "\nsites: [spiffe://example.org/site/eu/paris]\n" +
		"identity: {dir: " + filepath.Join(dir, "id") + "}\n"
	load := func(t *testing.T, limits string) (Config, string, error) {
		p := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "-")+".yaml")
		if err := os.WriteFile(p, []byte(head+limits), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadFile(p, nil)
		if c, ok := cfg.Identity.(interface{ Close() error }); ok {
			t.Cleanup(func() { c.Close() })
		}
		return cfg, p, err
	}

	t.Run("set", func(t *testing.T) {
		cfg, _, err := load(t, `limits:
  handshake_timeout: 3s
  max_connections: 100
  max_connections_per_identity: 8
  max_streams_per_connection: 16
  max_streams_per_identity: 32
  idle_timeout: 90s
`)
		if err != nil {
			t.Fatal(err)
		}
		want := Limits{HandshakeTimeout: 3 * time.Second, MaxConnections: 100, MaxConnectionsPerIdentity: 8,
			MaxStreamsPerConnection: 16, MaxStreamsPerIdentity: 32, IdleTimeout: 90 * time.Second}
		if cfg.Limits != want {
			t.Fatalf("Limits = %+v, want %+v", cfg.Limits, want)
		}
	})

	t.Run("left out", func(t *testing.T) {
		cfg, _, err := load(t, "limits: {max_connections: 100}\n")
		if err != nil {
			t.Fatal(err)
		}
		cfg.setDefaults()
		want := Limits{HandshakeTimeout: DefaultHandshakeTimeout, MaxConnections: 100,
			MaxConnectionsPerIdentity: DefaultMaxConnectionsPerIdentity, MaxStreamsPerConnection: DefaultMaxStreamsPerConnection,
			MaxStreamsPerIdentity: DefaultMaxStreamsPerIdentity, IdleTimeout: DefaultIdleTimeout}
		if cfg.Limits != want {
			t.Fatalf("Limits = %+v, want %+v", cfg.Limits, want)
		}
	})

	for _, tt := range []struct {
		name, limits string
		want         []string
	}{
		{"zero", `limits:
  handshake_timeout: 0s
  max_connections: 0
  max_connections_per_identity: 0
  max_streams_per_connection: 0
  max_streams_per_identity: 0
  idle_timeout: 0s
`, []string{
			"field limits.handshake_timeout: 0s is not valid; want a positive duration such as 10s",
			"field limits.max_connections: 0 is not valid; want a positive number such as 4096",
			"field limits.max_connections_per_identity: 0 is not valid; want a positive number such as 64",
			"field limits.max_streams_per_connection: 0 is not valid; want a positive number such as 100",
			"field limits.max_streams_per_identity: 0 is not valid; want a positive number such as 256",
			"field limits.idle_timeout: 0s is not valid; want a positive duration such as 5m0s",
		}},
		{"negative", `limits:
  handshake_timeout: -1s
  max_connections: -1
  max_connections_per_identity: -2
  max_streams_per_connection: -3
  max_streams_per_identity: -4
  idle_timeout: -5m
`, []string{
			"field limits.handshake_timeout: -1s is negative; want a positive duration (default 10s)",
			"field limits.max_connections: -1 is negative; want a positive number (default 4096)",
			"field limits.max_connections_per_identity: -2 is negative",
			"field limits.max_streams_per_connection: -3 is negative",
			"field limits.max_streams_per_identity: -4 is negative",
			"field limits.idle_timeout: -5m0s is negative",
		}},
		{"unknown key", "limits: {max_conns: 10}\n", []string{"max_conns"}},
		{"not a number", "limits: {max_connections: lots}\n", []string{"lots"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, p, err := load(t, tt.limits)
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

// TestValidateLimits: Config is checked as well as the file, for embedders.
func TestValidateLimits(t *testing.T) {
	paris := spiffeid.RequireFromString("spiffe://example.org/site/eu/paris")
	cfg := Config{StateDir: t.TempDir(), Identity: testIdentity(t), Sites: []spiffeid.ID{paris},
		Limits: Limits{MaxConnections: -1, IdleTimeout: -time.Second}}
	wants := []string{
		"field limits.max_connections: -1 is negative",
		"field limits.idle_timeout: -1s is negative",
	}
	// Only a 64-bit int can hold more streams than HTTP/2 allows; on a
	// 32-bit build that check cannot be reached, and the rest still runs.
	if strconv.IntSize == 64 {
		tooMany := int64(math.MaxUint32) + 1
		cfg.Limits.MaxStreamsPerConnection = int(tooMany)
		wants = append(wants, "field limits.max_streams_per_connection: 4294967296 is more than HTTP/2 allows (4294967295)")
	}
	err := cfg.Validate()
	for _, want := range wants {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want %q", err, want)
		}
	}
	cfg.Limits = Limits{}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate with zero limits (the defaults): %v", err)
	}
}
