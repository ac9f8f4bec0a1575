package auditlog

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

func TestAppendReadReopen(t *testing.T) {
	dir := t.TempDir()
	signer, vkey := testKey(t, "federa.test/log")
	l := openTestLog(t, dir, signer)

	var want [][]byte
	ref := &memTree{}
	for _, batch := range []int{1, 2, 5, 1, 8} {
		var es []Entry
		for range batch {
			es = append(es, sampleEntry(t, len(want)+len(es), ""))
		}
		first, err := l.Append(es...)
		if err != nil {
			t.Fatal(err)
		}
		if first != int64(len(want)) {
			t.Fatalf("Append returned first index %d, want %d", first, len(want))
		}
		for i := range es {
			b, err := l.Entry(first + int64(i))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, b)
			if err := ref.add(tlog.RecordHash(b)); err != nil {
				t.Fatal(err)
			}
		}
		root, _ := ref.root(ref.n)
		if l.Size() != ref.n || l.Root() != root {
			t.Fatalf("size %d root %v, want %d %v", l.Size(), l.Root(), ref.n, root)
		}
	}
	mustCheckpoint(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Append(sampleEntry(t, 0, "")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}

	l2 := openTestLog(t, dir, signer)
	root, _ := ref.root(ref.n)
	if l2.Size() != int64(len(want)) || l2.Root() != root {
		t.Fatalf("reopened: size %d root %v, want %d %v", l2.Size(), l2.Root(), len(want), root)
	}
	for i, w := range want {
		got, err := l2.Entry(int64(i))
		if err != nil || !bytes.Equal(got, w) {
			t.Fatalf("entry %d after reopen: %q, %v; want %q", i, got, err, w)
		}
		if _, err := ParseEntry(got); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	if first := mustAppend(t, l2, sampleEntry(t, 99, "")); first != int64(len(want)) {
		t.Fatalf("append after reopen got index %d, want %d", first, len(want))
	}
	mustCheckpoint(t, l2)
	l2.Close()
	rep, err := Verify(dir, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Size != int64(len(want)+1) || rep.Checkpoints != 2 || rep.Unvouched != 0 || rep.Origin != "federa.test/log" {
		t.Fatalf("report %+v", rep)
	}
}

func TestAppendStampsTimeFromInjectedClock(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	l, err := Open(t.TempDir(), Options{Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e := sampleEntry(t, 2, "")
	explicit := e
	explicit.Time = at.Add(-time.Hour)
	mustAppend(t, l, e, explicit)
	for i, want := range []time.Time{at, at.Add(-time.Hour)} {
		b, _ := l.Entry(int64(i))
		got, err := ParseEntry(b)
		if err != nil || !got.Time.Equal(want) {
			t.Errorf("entry %d time %v (%v), want %v", i, got.Time, err, want)
		}
	}
}

func TestAppendIsAllOrNothing(t *testing.T) {
	l := openTestLog(t, t.TempDir(), nil)
	mustAppend(t, l, sampleEntry(t, 0, ""))
	bad := Entry{Type: "Not Valid"}
	if _, err := l.Append(sampleEntry(t, 1, ""), bad); err == nil || !strings.Contains(err.Error(), "entry 2 of 2") {
		t.Fatalf("got %v, want an error naming entry 2 of 2", err)
	}
	if l.Size() != 1 {
		t.Fatalf("size %d after a refused batch, want 1", l.Size())
	}
	if st, _ := os.Stat(filepath.Join(l.Dir(), entriesFile)); st.Size() != l.offsets[1] {
		t.Fatalf("entries.log has %d bytes, want %d", st.Size(), l.offsets[1])
	}
}

func TestOneWriterPerDirectory(t *testing.T) {
	dir := t.TempDir()
	openTestLog(t, dir, nil)
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestCheckpoints(t *testing.T) {
	dir := t.TempDir()
	signer, vkey := testKey(t, "federa.test/log")
	l := openTestLog(t, dir, signer)
	if _, err := l.LatestCheckpoint(); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("LatestCheckpoint on a new log: %v", err)
	}
	empty := mustCheckpoint(t, l)
	var sizes []int64
	for i := range 7 {
		mustAppend(t, l, sampleEntry(t, i, ""))
		if i%3 == 0 {
			mustCheckpoint(t, l)
			sizes = append(sizes, l.Size())
		}
	}
	again := mustCheckpoint(t, l)
	if again2 := mustCheckpoint(t, l); !bytes.Equal(again, again2) {
		t.Fatal("re-signing the same tree changed the checkpoint")
	}
	cps, err := l.Checkpoints()
	if err != nil {
		t.Fatal(err)
	}
	// Sizes 0, 1, 4 and 7; signing 7 again reuses its file.
	if len(cps) != len(sizes)+1 {
		t.Fatalf("%d checkpoints stored, want %d", len(cps), len(sizes)+1)
	}
	if !bytes.Equal(cps[0], empty) {
		t.Fatal("first checkpoint is not the empty tree's")
	}
	latest, err := l.LatestCheckpoint()
	if err != nil || !bytes.Equal(latest, again) {
		t.Fatalf("LatestCheckpoint %q, %v", latest, err)
	}
	cp, err := VerifyCheckpoint(latest, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != l.Size() || cp.Root != l.Root() || cp.Origin != "federa.test/log" {
		t.Fatalf("checkpoint %+v does not describe the log", cp)
	}
	wantText := "federa.test/log\n7\n"
	if !strings.HasPrefix(string(latest), wantText) {
		t.Fatalf("checkpoint note %q does not start with %q", latest, wantText)
	}

	nosign := openTestLog(t, t.TempDir(), nil)
	if _, err := nosign.Checkpoint(); !errors.Is(err, ErrNoSigner) {
		t.Fatalf("Checkpoint without signer: %v", err)
	}
}

func TestOriginRules(t *testing.T) {
	signer, _ := testKey(t, "federa.test/log")
	for _, origin := range []string{"two\nlines", "tab\there", "bad\xffutf8"} {
		if _, err := Open(t.TempDir(), Options{Origin: origin, Signer: signer}); err == nil {
			t.Errorf("Open accepted origin %q", origin)
		}
	}
	// A signed checkpoint is never replaced, even if the origin changes.
	dir := t.TempDir()
	l := openTestLog(t, dir, signer)
	mustAppend(t, l, sampleEntry(t, 0, ""))
	mustCheckpoint(t, l)
	l.Close()
	l2, err := Open(dir, Options{Origin: "federa.test/renamed", Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if _, err := l2.Checkpoint(); err == nil || !strings.Contains(err.Error(), "already holds a different checkpoint") {
		t.Fatalf("re-signing size 1 under a new origin: %v", err)
	}
}

// TestConcurrentUse appends from several goroutines while others read,
// prove and checkpoint; run with -race.
func TestConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	signer, vkey := testKey(t, "federa.test/log")
	l := openTestLog(t, dir, signer)
	mustAppend(t, l, sampleEntry(t, 0, ""))
	done := make(chan struct{})
	errs := make(chan error, 16)
	var writers, readers sync.WaitGroup
	for w := range 3 {
		writers.Go(func() {
			for i := range 10 {
				if _, err := l.Append(sampleEntry(t, w*100+i, "")); err != nil {
					errs <- err
					return
				}
				if i%4 == 0 {
					if _, err := l.Checkpoint(); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	// Readers keep reading for as long as the writers write, at whatever
	// speed either goes, and at least once.
	for range 2 {
		readers.Go(func() {
			for {
				size := l.Size()
				if _, err := l.Entry(size - 1); err != nil {
					errs <- err
					return
				}
				if _, err := l.InclusionProof(0, size); err != nil {
					errs <- err
					return
				}
				if _, err := l.ConsistencyProof(1, size); err != nil {
					errs <- err
					return
				}
				if err := l.Export(io.Discard); err != nil {
					errs <- err
					return
				}
				select {
				case <-done:
					return
				default:
				}
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if l.Size() != 31 {
		t.Fatalf("size %d, want 31", l.Size())
	}
	mustCheckpoint(t, l)
	l.Close()
	if _, err := Verify(dir, vkey); err != nil {
		t.Fatal(err)
	}
}
