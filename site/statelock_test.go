package site

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
)

// TestStateDirIsHeldByOneAgent: a second agent on a state dir another
// holds is refused, naming the directory, instead of knocking the first
// off the coordinator and interleaving its egress journal; once the first
// is closed, the directory can be used again.
func TestStateDirIsHeldByOneAgent(t *testing.T) {
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
	state := filepath.Join(dir, "state")
	cfg := Config{Identity: id, CoordinatorAddr: "127.0.0.1:1", CoordinatorID: spiffeid.RequireFromString("spiffe://example.org/coordinator"),
		Datasets: []Dataset{{Name: "d", Path: data}}, StateDir: state}

	first, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	second, err := New(cfg)
	if err == nil {
		second.Close()
		first.Close()
		t.Fatal("a second agent was given a state dir the first holds")
	}
	for _, want := range []string{state, "another site agent holds it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// The refusal leaves the first agent's hold alone.
	if again, err := New(cfg); err == nil {
		again.Close()
		t.Error("a refused New released the first agent's lock")
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	next, err := New(cfg)
	if err != nil {
		t.Fatalf("New after the first agent closed: %v", err)
	}
	next.Close()

	// A New that fails after taking the lock (here: a policy bundle that
	// is not there) does not keep holding it.
	bad := cfg
	bad.PolicyBundle = filepath.Join(dir, "no-such-bundle.tar.gz")
	if a, err := New(bad); err == nil {
		a.Close()
		t.Fatal("New accepted a missing policy bundle")
	}
	if a, err := New(cfg); err != nil {
		t.Fatalf("New after a failed New: %v", err)
	} else {
		a.Close()
	}
}
