package site

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/internal/httpserve"
	"github.com/federa-dev/federa/internal/testutil"
)

func devIdentity(t testing.TB, dir string) {
	t.Helper()
	ca, err := attest.NewCA(spiffeid.RequireTrustDomainFromString("example.org"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueToDir(spiffeid.RequireFromString("spiffe://example.org/site/eu/paris"), time.Hour, dir); err != nil {
		t.Fatal(err)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	devIdentity(t, filepath.Join(dir, "id"))
	if err := os.WriteFile(filepath.Join(dir, "data.csv"), []byte("a,label\n1,x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("site.yaml", `identity: {dir: id}
coordinator: {address: "127.0.0.1:7443", id: "spiffe://example.org/coordinator"}
datasets: [{name: bc, path: data.csv, label: label}]
state_dir: state
reconnect: {min: 100ms, max: 2s}
`)
	cfg, err := LoadFile(good, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Datasets[0].Path != filepath.Join(dir, "data.csv") || cfg.StateDir != filepath.Join(dir, "state") {
		t.Fatalf("relative paths not resolved against the config's directory: %+v", cfg)
	}
	if cfg.ReconnectMin != 100*time.Millisecond || cfg.Identity.ID().String() != "spiffe://example.org/site/eu/paris" {
		t.Fatalf("config %+v", cfg)
	}

	bad := []struct {
		name, body string
		want       []string
	}{
		{"unknown field", "identity: {dir: id}\ncoordinatr: {}\n", []string{"line 2", "coordinatr"}},
		{"every problem at once", `identity: {dir: nope}
coordinator: {address: "", id: "http://x"}
datasets: [{name: bc, path: missing.csv, format: parquet}, {name: bc, path: data.csv}]
reconnect: {min: 5s, max: 1s}
`, []string{"field coordinator.id", "not a SPIFFE ID", "field identity.dir"}},
		{"bad duration", "reconnect: {min: soon}\n", []string{`"soon" is not a duration`}},
		// Without a port, gRPC would dial :443 and retry there forever.
		{"address without a port", `identity: {dir: id}
coordinator: {address: 127.0.0.1, id: "spiffe://example.org/coordinator"}
datasets: [{name: bc, path: data.csv}]
`, []string{`field coordinator.address: "127.0.0.1" has no port; want host:port, e.g. 127.0.0.1:7443`}},
		// A misspelt key is reported with the keys valid there and beside
		// the file's other problems, not instead of them.
		{"unknown keys with the rest", `identity: {dir: id}
coordinator: {adress: "127.0.0.1:7443", id: "http://x"}
datasets: [{name: bc, path: data.csv, lable: label}]
reconnect: {min: soon}
`, []string{
			"site.yaml: line 2: field coordinator.adress: unknown; valid keys in coordinator: address, id, jurisdiction (did you mean address?)",
			"line 3: field datasets[0].lable: unknown; valid keys in datasets[0]: name, path, format, table, dsn_env, dsn_file, labels, classes, label, columns, default_classification (did you mean label?)",
			`line 4: field reconnect.min: "soon" is not a duration`,
			`field coordinator.id: "http://x" is not a SPIFFE ID`,
		}},
		{"empty", "", []string{"file is empty"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadFile(write(strings.ReplaceAll(tt.name, " ", "-")+"-site.yaml", tt.body), nil)
			if err == nil {
				t.Fatal("accepted a bad config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "in type") {
				t.Errorf("error %q names Go types", err)
			}
		})
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{
		Datasets:     []Dataset{{Name: "a", Path: filepath.Join(dir, "missing.csv"), Format: "xlsx"}, {Name: "a", Path: dir}},
		ReconnectMin: 5 * time.Second, ReconnectMax: time.Second,
		HTTP: httpserve.Config{Reader: "spiffe://example.org/user/ops"},
	}
	err := cfg.Validate()
	for _, w := range []string{"field identity", "field coordinator.address", "field coordinator.id",
		"datasets[0].path", "datasets[0].format", `datasets[1].name: "a" listed twice`, "is a directory", "field reconnect",
		"field http.reader: only the coordinator serves a jobs page"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
}

// TestRunReturnsOnCancelWhileCoordinatorIsDown: the agent keeps retrying
// an unreachable coordinator and stops cleanly when told to.
func TestRunReturnsOnCancelWhileCoordinatorIsDown(t *testing.T) {
	dir := t.TempDir()
	devIdentity(t, filepath.Join(dir, "id"))
	id, err := attest.LoadIdentity(filepath.Join(dir, "id"))
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "d.csv")
	if err := os.WriteFile(data, []byte("a,label\n1,x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &testutil.Buffer{}
	a, err := New(Config{Identity: id, CoordinatorAddr: "127.0.0.1:1", CoordinatorID: spiffeid.RequireFromString("spiffe://example.org/coordinator"),
		Datasets: []Dataset{{Name: "d", Path: data}}, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	// Cancel once the agent has failed, and is retrying, more than once.
	const retrying = "coordinator stream ended; reconnecting"
	for deadline := time.Now().Add(time.Minute); strings.Count(logs.String(), retrying) < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not retry twice in a minute:\n%s", logs)
		}
	}
	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run returned %v on cancel, want nil", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of the cancel")
	}
	if a.Connected() {
		t.Fatal("reports connected to nothing")
	}
}

func TestTrainSeed(t *testing.T) {
	a := TrainSeed(42, "spiffe://x/site/eu/paris", 1)
	if a != TrainSeed(42, "spiffe://x/site/eu/paris", 1) {
		t.Fatal("not reproducible")
	}
	for _, other := range []int64{TrainSeed(42, "spiffe://x/site/us/boston", 1), TrainSeed(42, "spiffe://x/site/eu/paris", 2), TrainSeed(43, "spiffe://x/site/eu/paris", 1)} {
		if other == a {
			t.Fatal("sites, rounds or jobs share a shuffling seed")
		}
	}
}

// agentFromYAML starts a site from site.yaml text written in dir (beside
// its id folder and data), closed when the test ends.
func agentFromYAML(t testing.TB, dir, yaml string) *Agent {
	t.Helper()
	cfgPath := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadFile(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}
