package attest_test

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"go.uber.org/goleak"

	"github.com/federa-dev/federa/attest"
)

// dsIssue writes a fresh SVID for id into dir and returns its serial.
func dsIssue(t *testing.T, ca *attest.CA, id spiffeid.ID, dir string) *big.Int {
	t.Helper()
	svid, err := ca.Issue(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := attest.WriteIdentity(dir, svid, ca.Bundle()); err != nil {
		t.Fatal(err)
	}
	return svid.Certificates[0].SerialNumber
}

// dsOpen starts a DirSource on dir that logs into the returned buffer and
// is closed when the test ends.
func dsOpen(t *testing.T, dir string) (*attest.DirSource, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	src, err := attest.NewDirSource(dir, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("NewDirSource: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	return src, logs
}

// dsServer is a TLS server that, for every connection, completes an mTLS
// handshake presenting src's current SVID and reports the serial the client
// presented.
func dsServer(t *testing.T, src attest.Source) (addr string, clientSerials <-chan *big.Int) {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(src, src, tlsconfig.AuthorizeAny()))
	if err != nil {
		t.Fatal(err)
	}
	serials := make(chan *big.Int, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if err := tc.Handshake(); err == nil {
				serials <- tc.ConnectionState().PeerCertificates[0].SerialNumber
			}
			tc.Close()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		<-done
	})
	return lis.Addr().String(), serials
}

// dsHandshake makes one new mTLS connection as client and returns the
// serials the server and the client presented in it.
func dsHandshake(t *testing.T, addr string, client attest.Source, clientSerials <-chan *big.Int) (server, cli *big.Int) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, tlsconfig.MTLSClientConfig(client, client, tlsconfig.AuthorizeAny()))
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	server = c.ConnectionState().PeerCertificates[0].SerialNumber
	select {
	case cli = <-clientSerials:
	case <-time.After(time.Minute):
		t.Fatal("the server saw no client certificate")
	}
	return server, cli
}

// dsEventually polls cond for up to a minute: fsnotify plus the debounce
// takes ~100 ms, the poll fallback 1 s; the rest is room for a loaded
// machine, so only a change that is never seen fails the test.
func dsEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func currentSerial(t *testing.T, src attest.Source) *big.Int {
	t.Helper()
	s, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	return s.Certificates[0].SerialNumber
}

func TestDirSourceRotatesAtTheNextHandshake(t *testing.T) {
	t.Parallel()
	ca := newCA(t, td)
	coordDir, parisDir := filepath.Join(t.TempDir(), "coordinator"), filepath.Join(t.TempDir(), "paris")
	coordOld, parisOld := dsIssue(t, ca, attest.CoordinatorID(td), coordDir), dsIssue(t, ca, paris, parisDir)
	coord, coordLogs := dsOpen(t, coordDir)
	site, _ := dsOpen(t, parisDir)
	addr, clientSerials := dsServer(t, coord)

	gotServer, gotClient := dsHandshake(t, addr, site, clientSerials)
	if gotServer.Cmp(coordOld) != 0 || gotClient.Cmp(parisOld) != 0 {
		t.Fatalf("first handshake presented %x / %x, want %x / %x", gotServer, gotClient, coordOld, parisOld)
	}

	coordNew, parisNew := dsIssue(t, ca, attest.CoordinatorID(td), coordDir), dsIssue(t, ca, paris, parisDir)
	dsEventually(t, "both sources to rotate", func() bool {
		return currentSerial(t, coord).Cmp(coordNew) == 0 && currentSerial(t, site).Cmp(parisNew) == 0
	})
	gotServer, gotClient = dsHandshake(t, addr, site, clientSerials)
	if gotServer.Cmp(coordNew) != 0 || gotClient.Cmp(parisNew) != 0 {
		t.Fatalf("handshake after rotation presented %x / %x, want %x / %x", gotServer, gotClient, coordNew, parisNew)
	}
	coordLogs.WaitFor(t, "identity rotated", fmt.Sprintf("serial=%x", coordNew), fmt.Sprintf("previous_serial=%x", coordOld), "not_after=")
	if coord.ID() != attest.CoordinatorID(td) || site.ID() != paris {
		t.Errorf("IDs after rotation: %s, %s", coord.ID(), site.ID())
	}
}

func TestDirSourceKeepsTheOldSVIDOnABrokenRewrite(t *testing.T) {
	t.Parallel()
	ca := newCA(t, td)
	write := func(dir, name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Each spoils a working directory without ever holding a whole new
	// set, as a writer that crashed half-way would.
	tests := []struct {
		name  string
		spoil func(t *testing.T, dir string)
		want  string // in the logged reason
	}{
		{"half-written certificate", func(t *testing.T, dir string) {
			cert, key, err := mustIssue(t, ca, paris, time.Hour).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			write(dir, attest.KeyFile, key)
			write(dir, attest.SVIDFile, cert[:len(cert)/2])
		}, "svid.pem"},
		{"key of another SVID", func(t *testing.T, dir string) {
			_, key, err := mustIssue(t, ca, paris, time.Hour).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			write(dir, attest.KeyFile, key)
		}, "does not match private key"},
		{"key removed", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, attest.KeyFile)); err != nil {
				t.Fatal(err)
			}
		}, "key.pem"},
		{"empty bundle", func(t *testing.T, dir string) {
			write(dir, attest.BundleFile, nil)
		}, "no PEM CERTIFICATE blocks"},
		{"another SPIFFE ID", func(t *testing.T, dir string) {
			dsIssue(t, ca, boston, dir)
		}, "restart it to change identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "paris")
			old := dsIssue(t, ca, paris, dir)
			src, logs := dsOpen(t, dir)
			server, err := attest.LoadIdentity(dir) // a peer that trusts the same CA
			if err != nil {
				t.Fatal(err)
			}
			addr, clientSerials := dsServer(t, server)

			tt.spoil(t, dir)
			logs.WaitFor(t, "identity reload failed; the previous SVID stays in force", tt.want, fmt.Sprintf("serial=%x", old))
			if got := currentSerial(t, src); got.Cmp(old) != 0 {
				t.Fatalf("serial in force %x, want the old %x", got, old)
			}
			if _, cli := dsHandshake(t, addr, src, clientSerials); cli.Cmp(old) != 0 {
				t.Fatalf("handshake presented %x, want the old %x", cli, old)
			}

			// A whole set written afterwards is taken.
			fixed := dsIssue(t, ca, paris, dir)
			dsEventually(t, "the repaired identity", func() bool { return currentSerial(t, src).Cmp(fixed) == 0 })
		})
	}
}

func TestDirSourceNoticesAReplacedDirectory(t *testing.T) {
	t.Parallel()
	ca := newCA(t, td)
	dir := filepath.Join(t.TempDir(), "paris")
	dsIssue(t, ca, paris, dir)
	src, _ := dsOpen(t, dir)
	// rm -rf and re-issue: the inotify watch dies with the old directory;
	// the periodic check finds the new one.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	next := dsIssue(t, ca, paris, dir)
	dsEventually(t, "the identity in the new directory", func() bool { return currentSerial(t, src).Cmp(next) == 0 })
	// Later rotations are still seen.
	again := dsIssue(t, ca, paris, dir)
	dsEventually(t, "the next rotation", func() bool { return currentSerial(t, src).Cmp(again) == 0 })
}

func TestDirSourceCloseStopsWatching(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ca := newCA(t, td)
	dir := filepath.Join(t.TempDir(), "paris")
	old := dsIssue(t, ca, paris, dir)
	src, err := attest.NewDirSource(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// A live source on the same directory sees the next rotation; the
	// closed one, had it kept watching, would have seen the same files
	// change at the same moment. (The deferred leak check shows nothing of
	// it is left running to take the rotation later.)
	live, err := attest.NewDirSource(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	next := dsIssue(t, ca, paris, dir)
	dsEventually(t, "a live source to see the rotation", func() bool { return currentSerial(t, live).Cmp(next) == 0 })
	if got := currentSerial(t, src); got.Cmp(old) != 0 {
		t.Fatalf("a closed source rotated to %x", got)
	}
}

func TestDirSourceSaysWhenItsSVIDExpired(t *testing.T) {
	t.Parallel()
	ca := newCA(t, td)
	ca.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	dir := filepath.Join(t.TempDir(), "paris")
	dsIssue(t, ca, paris, dir) // valid for an hour, two hours ago
	_, logs := dsOpen(t, dir)
	logs.WaitFor(t, "the SVID expired and no new one was written")
	// Nothing the source does afterwards is visible until it says it again,
	// so this sleep is only an opportunity: a bit more than one more poll
	// (every second) to repeat itself. It cannot fail the test wrongly; on
	// a loaded machine it may just miss a repetition.
	time.Sleep(1200 * time.Millisecond)
	if n := strings.Count(logs.String(), "SVID expired"); n != 1 {
		t.Fatalf("expiry reported %d times, want once:\n%s", n, logs)
	}
}

func TestNewDirSourceErrorsAreLoadIdentitys(t *testing.T) {
	t.Parallel()
	ca := newCA(t, td)
	mismatched := filepath.Join(t.TempDir(), "mismatched")
	other := filepath.Join(t.TempDir(), "other")
	dsIssue(t, ca, paris, mismatched)
	dsIssue(t, ca, paris, other)
	key, err := os.ReadFile(filepath.Join(other, attest.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mismatched, attest.KeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"", filepath.Join(t.TempDir(), "missing"), t.TempDir(), mismatched} {
		_, want := attest.LoadIdentity(dir)
		src, got := attest.NewDirSource(dir, nil)
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Errorf("NewDirSource(%q) = %v; LoadIdentity says %v", dir, got, want)
		}
		if src != nil {
			src.Close()
		}
	}
}
