package policy

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/federa-dev/federa/internal/testutil"
)

// syncBuffer collects a logger's output from the watcher's goroutine.
type syncBuffer = testutil.Buffer

func newTestLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// hangBound bounds a wait for a reload that is bound to come: generous, so
// a slow or loaded machine only makes a test slower; it exists so a broken
// watcher fails the test instead of hanging it.
const hangBound = time.Minute

// waitFor polls cond until it holds, for up to hangBound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func admits(t *testing.T, e *Engine, in Input) bool {
	t.Helper()
	d, err := e.Admission(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return d.Allow
}

func TestWatcher(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	dir := t.TempDir()
	copyDefault(t, dir)
	log, logs := newTestLogger()
	w, err := NewWatcher(ctx, dir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	reloads := make(chan *Engine, 16)
	w.OnReload(func(e *Engine) {
		select {
		case reloads <- e:
		default: // nobody waiting: never block the watcher
		}
	})
	awaitReload := func(what string) *Engine {
		t.Helper()
		select {
		case e := <-reloads:
			return e
		case <-time.After(hangBound):
			t.Fatalf("timed out waiting for the reload after %s; logs:\n%s", what, logs)
			return nil
		}
	}

	first := w.Current()
	if first.Revision() != loadDefault(t).Revision() || !admits(t, first, SampleInput()) {
		t.Fatalf("initial engine %s does not run the default policy", first.Revision())
	}

	t.Run("edit reloads", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(dir, "data.json"))
		if err != nil {
			t.Fatal(err)
		}
		edited := strings.Replace(string(data), `"allowed_roles": [
      "data-scientist"
    ]`, `"allowed_roles": ["statistician"]`, 1)
		if edited == string(data) {
			t.Fatal("could not edit allowed_roles in data.json")
		}
		writeFiles(t, dir, map[string]string{"data.json": edited})
		e := awaitReload("editing data.json")
		if e != w.Current() || e.Revision() == first.Revision() {
			t.Fatalf("Current() = %s, want the new engine %s", w.Current().Revision(), e.Revision())
		}
		if admits(t, w.Current(), SampleInput()) {
			t.Error("a data-scientist is still admitted after the site allowed only statisticians")
		}
	})

	t.Run("broken edit keeps the previous policy", func(t *testing.T) {
		before := w.Current()
		writeFiles(t, dir, map[string]string{"requester.rego": "package federa\n\ndeny contains msg if {\n"})
		waitFor(t, "the reload error in the log", func() bool { return strings.Contains(logs.String(), "reload failed") })
		if w.Current() != before {
			t.Fatalf("engine replaced by a broken policy")
		}
		if !strings.Contains(logs.String(), filepath.Join(dir, "requester.rego")+":") {
			t.Errorf("log does not name the broken file and line:\n%s", logs)
		}
		if !strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("reload failure not logged as an error:\n%s", logs)
		}
	})

	t.Run("no policy files means deny all", func(t *testing.T) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".rego") {
				if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
		waitFor(t, "deny all", func() bool { return w.Current().Revision() == "deny-all" })
		d, err := w.Current().Admission(ctx, SampleInput())
		if err != nil || d.Allow || !strings.Contains(d.Reasons[0], "holds no policy") {
			t.Errorf("Admission = %+v, %v", d, err)
		}
	})

	t.Run("restored policy loads again", func(t *testing.T) {
		copyDefault(t, dir)
		waitFor(t, "the default policy", func() bool { return w.Current().Revision() == first.Revision() })
		if !admits(t, w.Current(), SampleInput()) {
			t.Error("sample input denied after restoring the default policy")
		}
	})

	t.Run("removed folder means deny all", func(t *testing.T) {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "deny all", func() bool { return w.Current().Revision() == "deny-all" })
		d, _ := w.Current().Admission(ctx, SampleInput())
		if d.Allow || !strings.Contains(d.Reasons[0], "was removed") {
			t.Errorf("Admission = %+v", d)
		}
	})

	t.Run("recreated folder loads again", func(t *testing.T) {
		copyDefault(t, dir)
		waitFor(t, "the default policy", func() bool { return w.Current().Revision() == first.Revision() })
	})

	if err := w.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if w.Current() == nil {
		t.Error("Current() is nil after Close")
	}
}

func TestWatcherMissingFolder(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := filepath.Join(t.TempDir(), "policy")
	log, logs := newTestLogger()
	w, err := NewWatcher(context.Background(), dir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	d, err := w.Current().Admission(context.Background(), SampleInput())
	if err != nil || d.Allow || !strings.Contains(d.Reasons[0], "no policy loaded: policy folder") {
		t.Errorf("Admission = %+v, %v; want deny all", d, err)
	}
	if !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("no warning logged:\n%s", logs)
	}
	// The folder appears, filled in place (as a deployment would).
	tmp := filepath.Join(filepath.Dir(dir), "staging")
	copyDefault(t, tmp)
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the policy to load", func() bool { return w.Current().Revision() != "deny-all" })
	if !admits(t, w.Current(), SampleInput()) {
		t.Error("sample input denied")
	}
}

func TestWatcherInitialErrorFailsLoudly(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"p.rego": "package federa\n\nadmission := {\n"})
	if _, err := NewWatcher(context.Background(), dir, nil); err == nil || !strings.Contains(err.Error(), "p.rego:4") {
		t.Fatalf("NewWatcher = %v, want the load error", err)
	}
}

func TestWatcherStopsWithContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	copyDefault(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := NewWatcher(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-w.done:
	case <-time.After(hangBound):
		t.Fatal("watch loop still running after its context ended")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
