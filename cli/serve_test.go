package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/internal/testutil"
	"github.com/federa-dev/federa/sim"
)

// lockedBuffer is an io.Writer a test can read while a command writes.
type lockedBuffer = testutil.Buffer

// serving is a `federa demo --serve` running in the background, as it
// would in a terminal until Ctrl-C.
type serving struct {
	out, errs *lockedBuffer
	cancel    context.CancelFunc
	code      chan int
}

// serve starts `federa demo --serve --state state` and waits until it has
// written the coordinator's address, which it writes last.
func serve(t *testing.T, state string) (*serving, string) {
	t.Helper()
	// A previous run's file would be read before this run removes it.
	addrFile := filepath.Join(state, "coordinator.addr")
	if err := os.Remove(addrFile); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{out: &lockedBuffer{}, errs: &lockedBuffer{}, cancel: cancel, code: make(chan int, 1)}
	go func() { s.code <- Execute(ctx, []string{"demo", "--serve", "--state", state}, s.out, s.errs) }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(addrFile)
		if err == nil {
			return s, strings.TrimSpace(string(b))
		}
		select {
		case code := <-s.code:
			s.code <- code
			t.Fatalf("demo --serve exited %d before serving:\n%s%s", code, s.out, s.errs)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no coordinator.addr after 60s:\n%s%s", s.out, s.errs)
		}
	}
}

// stop interrupts the server and returns its exit code.
func (s *serving) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.code:
		s.code <- code // stop is also the cleanup
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("demo --serve did not stop within 30s of the interrupt:\n%s", s.out)
		return -1
	}
}

func TestDemoServe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a federation and trains for real; skipped with -short")
	}
	state := t.TempDir()
	srv, addr := serve(t, state)
	ids := func(user string) string { return filepath.Join(state, "identities", user) }
	job := filepath.Join(state, "job.yaml")

	out := srv.out.String()
	for _, want := range []string{
		"export FEDERA_COORDINATOR=$(cat " + filepath.Join(state, "coordinator.addr") + ") FEDERA_IDENTITY=" + ids("alice"),
		"federa job submit " + job + " --watch",
		"federa audit verify --coordinator $FEDERA_COORDINATOR --identity " + ids("auditor"),
		"federa job submit " + job + " --identity " + ids("mallory"),
		"federa site pending --site eu/paris --identity " + ids("admin-eu-paris"),
		"admin-eu-paris", "site-admin:eu/paris",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the printed commands lack %q:\n%s", want, out)
		}
	}

	t.Run("every demo user has an identity", func(t *testing.T) {
		td := spiffeid.RequireTrustDomainFromString(sim.DefaultTrustDomain)
		for _, u := range []string{"alice", "auditor", "mallory", "admin-eu-paris", "admin-sg-singapore", "admin-us-boston"} {
			id, err := attest.LoadIdentity(ids(u))
			if err != nil {
				t.Fatalf("%s: %v", u, err)
			}
			if want, _ := attest.UserID(td, u); id.ID() != want {
				t.Errorf("%s's SVID is for %s, want %s", u, id.ID(), want)
			}
			if ttl := time.Until(id.Expiry()); ttl < 23*time.Hour {
				t.Errorf("%s's SVID expires in %s; users get long-lived ones", u, ttl)
			}
		}
	})

	// As the printed commands do: the address and alice from the environment.
	t.Setenv("FEDERA_COORDINATOR", addr)
	t.Setenv("FEDERA_IDENTITY", ids("alice"))
	// The printed command, --watch and all: its first line is the job ID
	// the next printed command (job watch JOB_ID) needs.
	stdout, errs, code := execute(t, "job", "submit", job, "--watch")
	if code != 0 || !strings.Contains(stdout, "round 10/10") {
		t.Fatalf("alice's submit --watch: exit %d: %s\n%s", code, errs, stdout)
	}
	fields := strings.Fields(stdout) // "submitted job-… (pending)"
	if len(fields) < 2 || fields[0] != "submitted" || !strings.HasPrefix(fields[1], "job-") {
		t.Fatalf("submit --watch does not print the job ID first:\n%s", stdout)
	}
	jobID := fields[1]
	if stdout, errs, code := execute(t, "job", "watch", jobID); code != 0 || !strings.Contains(stdout, "round 10/10") {
		t.Fatalf("watch %s: exit %d: %s\n%s", jobID, code, errs, stdout)
	}

	t.Run("mallory is refused", func(t *testing.T) {
		_, errs, code := execute(t, "job", "submit", job, "--identity", ids("mallory"))
		if code == 0 || !strings.Contains(errs, "PermissionDenied") || !strings.Contains(errs, "user/mallory") {
			t.Fatalf("mallory's submit: exit %d: %s", code, errs)
		}
	})

	t.Run("a site-admin reaches their own site through the coordinator", func(t *testing.T) {
		stdout, errs, code := execute(t, "site", "pending", "--site", "eu/paris", "--identity", ids("admin-eu-paris"))
		if code != 0 || !strings.Contains(stdout, "eu/paris") {
			t.Fatalf("site pending: exit %d: %s%s", code, stdout, errs)
		}
		// A decision on a job that is not held: past the access policy,
		// the coordinator relays it and the site answers that nothing waits.
		_, errs, code = execute(t, "site", "approve", jobID, "--reason", "r", "--site", "eu/paris", "--identity", ids("admin-eu-paris"))
		if code == 0 || !strings.Contains(errs, "federa: decide: ") || !strings.Contains(errs, "already ended") {
			t.Fatalf("approving an ended job: exit %d: %s", code, errs)
		}
	})

	t.Run("nobody else decides at a site", func(t *testing.T) {
		for _, who := range []string{"alice", "admin-us-boston"} {
			_, errs, code := execute(t, "site", "approve", jobID, "--reason", "r", "--site", "eu/paris", "--identity", ids(who))
			if code == 0 || !strings.Contains(errs, "user/"+who+" may not call ApprovalService.Decide: it needs the role site-admin:eu/paris") {
				t.Fatalf("%s approving at eu/paris: exit %d: %s", who, code, errs)
			}
		}
	})

	t.Run("the auditor verifies the running coordinator's log", func(t *testing.T) {
		stdout, errs, code := execute(t, "audit", "verify", "--coordinator", addr, "--identity", ids("auditor"))
		if code != 0 || !strings.HasPrefix(stdout, "ok: ") {
			t.Fatalf("audit verify: exit %d: %s%s", code, stdout, errs)
		}
	})

	if code := srv.stop(t); code != 0 {
		t.Fatalf("demo --serve exited %d after the interrupt:\n%s", code, srv.errs)
	}
	ca, err := os.ReadFile(filepath.Join(state, "ca", attest.CACertFile))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a second run resumes from the same state", func(t *testing.T) {
		_, addr := serve(t, state)
		again, err := os.ReadFile(filepath.Join(state, "ca", attest.CACertFile))
		if err != nil || !bytes.Equal(again, ca) {
			t.Fatalf("the CA changed between runs (%v)", err)
		}
		stdout, errs, code := execute(t, "job", "get", jobID, "--coordinator", addr)
		if code != 0 || !strings.Contains(stdout, "succeeded") {
			t.Fatalf("job get %s after the restart: exit %d: %s%s", jobID, code, stdout, errs)
		}
	})
}

func TestDemoServeFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--output", "json"}, "flag --output: --serve prints commands"},
		{[]string{"--svid-ttl", "1s"}, "flag --svid-ttl: 1s is too short"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, errs, code := execute(t, append([]string{"demo", "--serve", "--state", t.TempDir()}, tt.args...)...)
			if code == 0 || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q; want %q", code, errs, tt.want)
			}
		})
	}
}

// TestDemoTempState: without --state the demo works in a temporary
// directory and removes it when it ends well; a failed run keeps it and
// says where; --serve keeps it while serving and removes it on exit.
func TestDemoTempState(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a federation and trains for real; skipped with -short")
	}
	tmp, data := t.TempDir(), t.TempDir()
	t.Setenv("TMPDIR", tmp) // where os.MkdirTemp puts the state
	left := func(t *testing.T) []string {
		t.Helper()
		ents, err := os.ReadDir(tmp)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}

	t.Run("a run that succeeds leaves nothing behind", func(t *testing.T) {
		out, errs, code := execute(t, "demo", "--rounds", "1")
		if code != 0 {
			t.Fatalf("demo exit %d: %s\n%s", code, errs, out)
		}
		if l := left(t); len(l) != 0 {
			t.Fatalf("the demo left %v in TMPDIR:\n%s", l, out)
		}
		if !strings.Contains(out, "is removed (--state DIR keeps") {
			t.Errorf("the demo does not say its state is gone:\n%s", out)
		}
	})

	t.Run("a run that fails keeps its state and says where", func(t *testing.T) {
		// Site files but no test.csv.
		if err := os.WriteFile(filepath.Join(data, "eu-paris.csv"), []byte("a,label\n1,x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errs, code := execute(t, "demo", "--rounds", "1", "--data", data)
		l := left(t)
		if code == 0 || len(l) != 1 || !strings.Contains(errs, "state kept for a look in "+filepath.Join(tmp, l[0])) {
			t.Fatalf("exit %d, TMPDIR holds %v, stderr %q", code, l, errs)
		}
		if err := os.RemoveAll(filepath.Join(tmp, l[0])); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("--serve keeps it while serving, removes it on exit", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out, errs, code := &lockedBuffer{}, &lockedBuffer{}, make(chan int, 1)
		go func() { code <- Execute(ctx, []string{"demo", "--serve"}, out, errs) }()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if m, _ := filepath.Glob(filepath.Join(tmp, "federa-demo-*", "coordinator.addr")); len(m) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no coordinator.addr in TMPDIR after 60s:\n%s%s", out, errs)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !strings.Contains(out.String(), "is temporary: it is removed when this stops") {
			t.Errorf("--serve does not say its state is temporary:\n%s", out)
		}
		cancel()
		select {
		case c := <-code:
			if c != 0 {
				t.Fatalf("demo --serve exited %d: %s", c, errs)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("demo --serve did not stop within 30s of the interrupt")
		}
		if l := left(t); len(l) != 0 {
			t.Fatalf("demo --serve left %v in TMPDIR", l)
		}
	})
}
