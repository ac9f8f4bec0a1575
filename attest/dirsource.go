package attest

import (
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/federa-dev/federa/internal/logkeys"
)

// Log field keys of DirSource, beside the shared ones in internal/logkeys.
const (
	logKeyIdentityDir = "identity_dir"
	logKeySerial      = "serial"
	logKeyNotAfter    = "not_after"
)

const (
	// dirDebounce is how long a DirSource waits after the last change in
	// its directory before it reloads: writing an identity replaces three
	// files one after the other, and the reload should see all three.
	dirDebounce = 100 * time.Millisecond
	// dirPoll is how often a DirSource also stats its files, for changes
	// fsnotify does not report (a directory removed and re-created, a
	// network file system, an exhausted inotify limit).
	dirPoll = time.Second
)

// DirSource is a Source backed by an identity directory (svid.pem, key.pem,
// bundle.pem) that it keeps watching. When the files change — `federa dev-ca
// issue` run again, sim's rotator, a spiffe-helper or cert-manager
// writing renewed certificates — it loads the new set, and every TLS
// handshake after that presents the new SVID and verifies peers against the
// new bundle. Connections already open keep the certificate they were made
// with: TLS does not look at it again.
//
// A new set that does not load — half-written, a key that does not match
// the certificate, a different SPIFFE ID than the one the process started
// with — leaves the previous SVID in force and is logged; the next change
// is tried again. Each rotation is logged with the new serial and expiry.
type DirSource struct {
	dir string
	id  spiffeid.ID // fixed at start: peers and state were set up for it
	log *slog.Logger

	current atomic.Pointer[Identity]
	fsw     *fsnotify.Watcher // nil when fsnotify is unavailable: polling only

	// Only the watch loop touches these.
	last        stamp    // the files as of the last load attempt
	expiredSeen *big.Int // serial whose expiry was already reported

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var _ Source = (*DirSource)(nil)

// NewDirSource loads the identity in dir, with exactly LoadIdentity's
// errors, and watches dir until Close. log may be nil.
func NewDirSource(dir string, log *slog.Logger) (*DirSource, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Stat before loading, so a change made during the load is seen.
	before := statFiles(dir)
	first, err := LoadIdentity(dir)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	d := &DirSource{
		dir:  abs,
		id:   first.ID(),
		log:  log.With(logkeys.Component, "identity", logKeyIdentityDir, abs, logkeys.SpiffeID, first.ID().String()),
		last: before,
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	d.current.Store(first)
	if d.fsw, err = fsnotify.NewWatcher(); err == nil {
		if err = d.fsw.Add(abs); err != nil {
			_ = d.fsw.Close()
			d.fsw = nil
		}
	}
	if err != nil {
		d.log.Warn("cannot watch the identity directory; checking it every "+dirPoll.String()+" instead", logkeys.Err, err)
	}
	go d.run()
	return d, nil
}

// GetX509SVID implements x509svid.Source: the SVID in force now.
func (d *DirSource) GetX509SVID() (*x509svid.SVID, error) { return d.current.Load().GetX509SVID() }

// GetX509BundleForTrustDomain implements x509bundle.Source, from the bundle
// in force now.
func (d *DirSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return d.current.Load().GetX509BundleForTrustDomain(td)
}

// ID is the SPIFFE ID the directory held at start; a rotation never
// changes it.
func (d *DirSource) ID() spiffeid.ID { return d.id }

// Expiry is when the SVID in force stops being valid.
func (d *DirSource) Expiry() time.Time { return d.current.Load().Expiry() }

// Close stops watching, in order: it ends the watch loop, waits for it to
// return, and closes the fsnotify watcher. The SVID in force stays readable
// (and is never replaced again). Close is idempotent.
func (d *DirSource) Close() error {
	d.closeOnce.Do(func() {
		close(d.stop)
		<-d.done
		if d.fsw != nil {
			d.closeErr = d.fsw.Close()
		}
	})
	return d.closeErr
}

func (d *DirSource) run() {
	defer close(d.done)
	var events <-chan fsnotify.Event
	var errs <-chan error
	if d.fsw != nil {
		events, errs = d.fsw.Events, d.fsw.Errors
	}
	poll := time.NewTicker(dirPoll)
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	for {
		select {
		case <-d.stop:
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if d.relevant(ev) {
				debounce.Reset(dirDebounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			d.log.Warn("watching the identity directory", logkeys.Err, err)
		case <-debounce.C:
			d.reload()
		case <-poll.C:
			if d.fsw != nil && !statFiles(d.dir).equal(d.last) {
				// A directory removed and re-created is a new inode the old
				// watch does not see; watching it again is harmless.
				_ = d.fsw.Add(d.dir)
			}
			d.reload()
			d.checkExpiry()
		}
	}
}

// relevant: the three identity files; not the temporary files atomic
// writes rename from.
func (d *DirSource) relevant(ev fsnotify.Event) bool {
	if filepath.Dir(filepath.Clean(ev.Name)) != d.dir {
		return false
	}
	switch filepath.Base(ev.Name) {
	case SVIDFile, KeyFile, BundleFile:
		return true
	}
	return false
}

// reload loads the directory if its files changed since the last attempt,
// and puts the new identity in force if it is whole and still this
// process's ID.
func (d *DirSource) reload() {
	before := statFiles(d.dir)
	if before.equal(d.last) {
		return
	}
	d.last = before
	next, err := LoadIdentity(d.dir)
	if err == nil && next.ID() != d.id {
		err = fmt.Errorf("%s now holds an SVID for %s; this process is %s (restart it to change identity)", filepath.Join(d.dir, SVIDFile), next.ID(), d.id)
	}
	cur := d.current.Load()
	if err != nil {
		if !statFiles(d.dir).equal(before) {
			// Still being written: the next event or poll tries again,
			// and a writer caught mid-way is not worth a warning.
			d.last = stamp{}
			return
		}
		d.log.Warn("identity reload failed; the previous SVID stays in force", logkeys.Err, err,
			logKeySerial, serialHex(cur.svid), logKeyNotAfter, cur.Expiry())
		return
	}
	if sameIdentity(cur, next) {
		return
	}
	d.current.Store(next)
	d.log.Info("identity rotated", logKeySerial, serialHex(next.svid), logKeyNotAfter, next.Expiry(),
		"previous_serial", serialHex(cur.svid))
}

// checkExpiry says, once per SVID, that it expired with no successor:
// new connections will be refused from now on.
func (d *DirSource) checkExpiry() {
	cur := d.current.Load()
	serial := cur.svid.Certificates[0].SerialNumber
	if time.Now().Before(cur.Expiry()) || (d.expiredSeen != nil && d.expiredSeen.Cmp(serial) == 0) {
		return
	}
	d.expiredSeen = serial
	d.log.Error("the SVID expired and no new one was written; new connections will be refused until one is",
		logKeySerial, serialHex(cur.svid), logKeyNotAfter, cur.Expiry())
}

func sameIdentity(a, b *Identity) bool {
	if a.svid.Certificates[0].SerialNumber.Cmp(b.svid.Certificates[0].SerialNumber) != 0 {
		return false
	}
	ab, errA := a.bundles.GetX509BundleForTrustDomain(a.ID().TrustDomain())
	bb, errB := b.bundles.GetX509BundleForTrustDomain(b.ID().TrustDomain())
	return errA == nil && errB == nil && ab.Equal(bb)
}

func serialHex(s *x509svid.SVID) string { return fmt.Sprintf("%x", s.Certificates[0].SerialNumber) }

// stamp is what the identity files looked like: enough to tell that one
// was replaced (an atomic write is a new inode) or rewritten in place. The
// zero stamp matches no real directory: every file is either there or an
// error.
type stamp [3]fileStamp

type fileStamp struct {
	info os.FileInfo // nil: missing
	err  string
}

func statFiles(dir string) stamp {
	var s stamp
	for i, name := range []string{SVIDFile, KeyFile, BundleFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			s[i].err = err.Error()
			continue
		}
		s[i].info = fi
	}
	return s
}

func (s stamp) equal(o stamp) bool {
	for i := range s {
		a, b := s[i], o[i]
		if (a.info == nil) != (b.info == nil) || a.err != b.err {
			return false
		}
		if a.info == nil {
			continue
		}
		if !os.SameFile(a.info, b.info) || !a.info.ModTime().Equal(b.info.ModTime()) || a.info.Size() != b.info.Size() {
			return false
		}
	}
	return true
}
