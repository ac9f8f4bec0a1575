package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/federa-dev/federa/internal/logkeys"
)

// Log field keys of the watcher, beside the shared ones in internal/logkeys.
const (
	logKeyDir      = "policy_dir"
	logKeyRevision = "policy_revision"
	logKeyChanged  = "changed"
	logKeyPath     = "path"
)

// DefaultDebounce is how long a Watcher waits after the last change in the
// folder before it reloads, so an editor's save (write, rename, chmod) or a
// ConfigMap swap makes one reload, not three.
const DefaultDebounce = 100 * time.Millisecond

// maxReloadDelay bounds the debounce: a folder that never falls quiet (a
// process writing a file there every 50 ms) still reloads this often.
const maxReloadDelay = time.Second

// Watcher keeps the Engine of a policy folder current, the way OPA plugins
// reconfigure: a change that compiles replaces the engine; a change that
// does not leaves the previous engine in force and logs the error; a folder
// that disappears or holds no policy any more yields DenyAll. Current never
// returns nil.
type Watcher struct {
	dir      string // the policy folder, or the bundle file
	load     func(ctx context.Context) (*Engine, error)
	log      *slog.Logger
	debounce time.Duration
	fsw      *fsnotify.Watcher // nil when not even the parent folder exists

	current  atomic.Pointer[Engine]
	mu       sync.Mutex
	onReload func(*Engine)

	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// NewWatcher loads dir and watches it (and its subfolders, and its parent
// for the folder's own removal and return) until Close or until ctx ends.
// An initial load error is returned — start-up must fail loudly — except a
// missing folder, which yields DenyAll and a logged warning, and loads as
// soon as the folder appears. log may be nil.
func NewWatcher(ctx context.Context, dir string, log *slog.Logger) (*Watcher, error) {
	return newWatcher(ctx, dir, func(ctx context.Context, abs string) (*Engine, error) { return Load(ctx, abs) }, log)
}

// NewBundleWatcher is NewWatcher for a signed OPA bundle file: every load
// verifies the bundle's signature with key, and a bundle that is unsigned,
// signed by another key or tampered with never loads (the previous policy
// stays in force).
func NewBundleWatcher(ctx context.Context, path string, key BundleKey, log *slog.Logger) (*Watcher, error) {
	return newWatcher(ctx, path, func(ctx context.Context, abs string) (*Engine, error) { return LoadBundle(ctx, abs, key) }, log)
}

func newWatcher(ctx context.Context, dir string, load func(context.Context, string) (*Engine, error), log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("watch site policy %q: %w", dir, err)
	}
	w := &Watcher{
		dir:      abs,
		load:     func(ctx context.Context) (*Engine, error) { return load(ctx, abs) },
		log:      log.With(logkeys.Component, "policy", logKeyDir, abs),
		debounce: DefaultDebounce,
		done:     make(chan struct{}),
	}
	// Watch before loading, so a change made during the load is not missed.
	if w.fsw, err = fsnotify.NewWatcher(); err != nil {
		return nil, fmt.Errorf("watch site policy %q: %w", dir, err)
	}
	if err := w.fsw.Add(filepath.Dir(abs)); err != nil {
		// Without the parent we still see changes inside the folder, but
		// not its removal and return.
		w.log.Warn("cannot watch the policy folder's parent", logkeys.Err, err)
	}
	w.watchTree()

	e, err := w.load(ctx)
	switch {
	case err == nil:
		w.log.Info("site policy loaded", logKeyRevision, e.Revision())
	case errors.Is(err, fs.ErrNotExist) && !exists(abs):
		e = DenyAll(fmt.Sprintf("policy folder %q does not exist", abs))
		w.log.Warn("policy folder does not exist; denying every task until it appears")
	default:
		_ = w.fsw.Close()
		return nil, err
	}
	w.current.Store(e)
	w.ctx, w.cancel = context.WithCancel(ctx)
	go w.run()
	return w, nil
}

// Current returns the engine in force. It is never nil.
func (w *Watcher) Current() *Engine { return w.current.Load() }

// OnReload registers fn to be called, on the watcher's goroutine, after
// every reload that replaced the engine (with a new policy or with DenyAll).
// A failed reload does not call it. fn must not block: reloads wait for
// it. Tests use it to wait for a reload.
func (w *Watcher) OnReload(fn func(*Engine)) {
	w.mu.Lock()
	w.onReload = fn
	w.mu.Unlock()
}

// Close stops watching, in order: it cancels the watch loop, closes the
// fsnotify watcher, and waits for the loop to return. The engine in force
// stays readable through Current. Close is idempotent.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		w.cancel()
		w.closeErr = w.fsw.Close()
		<-w.done
	})
	return w.closeErr
}

func (w *Watcher) run() {
	defer close(w.done)
	var timer *time.Timer
	var fire <-chan time.Time
	var pendingSince time.Time // first change not yet reloaded; zero when none
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-w.ctx.Done():
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			if !w.relevant(ev) {
				continue
			}
			switch {
			case timer == nil:
				timer = time.NewTimer(w.debounce)
				fire = timer.C
				pendingSince = time.Now()
			case pendingSince.IsZero():
				timer.Reset(w.debounce)
				pendingSince = time.Now()
			case time.Since(pendingSince) < maxReloadDelay:
				timer.Reset(w.debounce)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.log.Warn("watching the policy folder", logkeys.Err, err)
		case <-fire:
			pendingSince = time.Time{}
			w.reload()
		}
	}
}

// relevant: anything in the folder or below, and the folder itself; the
// parent's watch also reports its other children, which do not matter.
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	if name == w.dir {
		return true
	}
	if !strings.HasPrefix(name, w.dir+string(filepath.Separator)) {
		return false
	}
	// Hidden entries are ignored by Load, except the "..data" link
	// Kubernetes swaps to update a ConfigMap volume at once.
	base := filepath.Base(name)
	return !hidden(base) || base == "..data"
}

func (w *Watcher) reload() {
	w.watchTree() // the folder may be new, or have new subfolders
	e, err := w.load(w.ctx)
	switch {
	case err == nil:
		changed := e.Revision() != w.Current().Revision()
		w.log.Info("site policy reloaded", logKeyRevision, e.Revision(), logKeyChanged, changed)
	case !exists(w.dir):
		e = DenyAll(fmt.Sprintf("policy folder %q was removed", w.dir))
		w.log.Warn("policy folder was removed; denying every task until it returns")
	case errors.Is(err, ErrNoPolicy):
		e = DenyAll(fmt.Sprintf("policy folder %q holds no policy", w.dir))
		w.log.Warn("policy folder holds no .rego file; denying every task")
	case w.ctx.Err() != nil:
		return // closing
	default:
		w.log.Error("site policy reload failed; the previous policy stays in force",
			logkeys.Err, err, logKeyRevision, w.Current().Revision())
		return
	}
	w.current.Store(e)
	w.mu.Lock()
	fn := w.onReload
	w.mu.Unlock()
	if fn != nil {
		fn(e)
	}
}

// watchTree adds the folder and every non-hidden subfolder to the fsnotify
// watcher; adding a watched path again is harmless.
func (w *Watcher) watchTree() {
	_ = filepath.WalkDir(w.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // gone or unreadable: the next reload reports it
		}
		if !d.IsDir() {
			return nil
		}
		if p != w.dir && hidden(d.Name()) {
			return fs.SkipDir
		}
		if err := w.fsw.Add(p); err != nil {
			w.log.Warn("cannot watch policy subfolder", logkeys.Err, err, logKeyPath, p)
		}
		return nil
	})
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
