package auditlog

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// crashFixture is a closed log of 8 entries with a checkpoint at 5 and the
// last three entries appended one per call, so the last Append wrote one
// record and (entry 7 completes a subtree of 8) four hashes.
type crashFixture struct {
	dir     string
	vkey    string
	offsets []int64
	roots   []tlog.Hash
	hashes  []byte
}

func newCrashFixture(t *testing.T) *crashFixture {
	t.Helper()
	f := &crashFixture{dir: t.TempDir()}
	signer, vkey := testKey(t, "federa.test/log")
	f.vkey = vkey
	l, err := Open(f.dir, Options{Signer: signer, Now: testClock()})
	if err != nil {
		t.Fatal(err)
	}
	var batch []Entry
	for i := range 5 {
		batch = append(batch, sampleEntry(t, i, ""))
	}
	mustAppend(t, l, batch...)
	mustCheckpoint(t, l)
	for i := 5; i < 8; i++ {
		mustAppend(t, l, sampleEntry(t, i, ""))
	}
	for size := int64(0); size <= 8; size++ {
		r, err := l.RootAt(size)
		if err != nil {
			t.Fatal(err)
		}
		f.roots = append(f.roots, r)
	}
	f.offsets = append([]int64(nil), l.offsets...)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f.hashes = readFile(t, filepath.Join(f.dir, hashesFile))
	return f
}

// TestTornTailRecovery puts the files in every state a crash during the
// last Append can leave, reopens, and checks that nothing acknowledged is
// lost, nothing unacknowledged is half-kept, and no index is reused.
func TestTornTailRecovery(t *testing.T) {
	f := newCrashFixture(t)
	const n = 8
	last, end := f.offsets[n-1], f.offsets[n]
	hashesBefore := tlog.StoredHashCount(n-1) * tlog.HashSize
	hashesAfterCP := tlog.StoredHashCount(5) * tlog.HashSize

	type state struct {
		name     string
		mutate   func(dir string)
		wantSize int64
	}
	var states []state
	truncate := func(name string, size int64) func(dir string) {
		return func(dir string) {
			if err := os.Truncate(filepath.Join(dir, name), size); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Records are fsynced before hashes are written: while the last record
	// is torn its hashes cannot be on disk.
	for off := last; off < end; off++ {
		states = append(states, state{fmt.Sprintf("record cut at byte %d", off-last), func(dir string) {
			truncate(entriesFile, off)(dir)
			truncate(hashesFile, hashesBefore)(dir)
		}, n - 1})
		if off-last >= recordHeaderSize && (off-last)%8 != 0 {
			continue
		}
		// Space allocated but the data never reached the disk.
		states = append(states, state{fmt.Sprintf("record zero-filled from byte %d", off-last), func(dir string) {
			p := filepath.Join(dir, entriesFile)
			b := readFile(t, p)
			clear(b[off:])
			writeFile(t, p, b)
			truncate(hashesFile, hashesBefore)(dir)
		}, n - 1})
	}
	// The record is durable; its hashes were being written.
	for off := hashesBefore; off < int64(len(f.hashes)); off++ {
		states = append(states, state{fmt.Sprintf("hashes cut at byte %d", off-hashesBefore), truncate(hashesFile, off), n})
	}
	states = append(states,
		state{"hashes since the checkpoint zero-filled", func(dir string) {
			p := filepath.Join(dir, hashesFile)
			b := readFile(t, p)
			clear(b[hashesAfterCP:])
			writeFile(t, p, b)
		}, n},
		state{"hashes since the checkpoint garbled", func(dir string) {
			p := filepath.Join(dir, hashesFile)
			b := readFile(t, p)
			for i := hashesAfterCP; i < int64(len(b)); i++ {
				b[i] ^= byte(i)
			}
			writeFile(t, p, b)
		}, n},
		state{"hashes.bin deleted to force a rebuild", func(dir string) {
			os.Remove(filepath.Join(dir, hashesFile))
		}, n},
	)

	// One directory, reset from the pristine files before each state, is
	// much faster than a copy per state; Open never touches checkpoints.
	dir := t.TempDir()
	copyDir(t, f.dir, dir)
	pristine := map[string][]byte{
		entriesFile: readFile(t, filepath.Join(f.dir, entriesFile)),
		hashesFile:  f.hashes,
	}
	for i, st := range states {
		t.Run(st.name, func(t *testing.T) {
			for name, b := range pristine {
				writeFile(t, filepath.Join(dir, name), b)
			}
			st.mutate(dir)
			l, err := Open(dir, Options{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer l.Close()
			if l.Size() != st.wantSize || l.Root() != f.roots[st.wantSize] {
				t.Fatalf("recovered size %d root %v, want %d %v", l.Size(), l.Root(), st.wantSize, f.roots[st.wantSize])
			}
			want := f.hashes[:tlog.StoredHashCount(st.wantSize)*tlog.HashSize]
			if got := readFile(t, filepath.Join(dir, hashesFile)); !bytes.Equal(got, want) {
				t.Fatalf("hashes.bin not restored: %d bytes, want %d", len(got), len(want))
			}
			if st := mustStat(t, filepath.Join(dir, entriesFile)); st.Size() != f.offsets[l.Size()] {
				t.Fatalf("entries.log %d bytes, want %d", st.Size(), f.offsets[l.Size()])
			}
			// Appending and verifying every state is slow; a sample shows
			// the recovered log is fully usable.
			if i%23 != 0 {
				return
			}
			if first := mustAppend(t, l, sampleEntry(t, 100, "after-crash")); first != st.wantSize {
				t.Fatalf("next index %d, want %d", first, st.wantSize)
			}
			l.Close()
			if _, err := Verify(dir, f.vkey); err != nil {
				t.Fatalf("Verify after recovery: %v", err)
			}
		})
	}
}

func mustStat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestOpenRefusesDamage: states no crash can produce must stop Open rather
// than be "repaired" by dropping acknowledged entries.
func TestOpenRefusesDamage(t *testing.T) {
	f := newCrashFixture(t)
	const n = 8
	tests := []struct {
		name   string
		mutate func(dir string)
	}{
		{"last record cut though its hashes were written", func(dir string) {
			os.Truncate(filepath.Join(dir, entriesFile), f.offsets[n]-3)
		}},
		{"last entry removed cleanly", func(dir string) {
			os.Truncate(filepath.Join(dir, entriesFile), f.offsets[n-1])
		}},
		{"byte flipped in an early record", func(dir string) {
			p := filepath.Join(dir, entriesFile)
			b := readFile(t, p)
			b[f.offsets[2]+20] ^= 0x20
			writeFile(t, p, b)
		}},
		// Open checks the subtree hashes that make up the checkpoint's
		// root, not every stored hash (Verify does).
		{"stored subtree hash under the checkpoint changed", func(dir string) {
			p := filepath.Join(dir, hashesFile)
			b := readFile(t, p)
			b[tlog.StoredHashIndex(2, 0)*tlog.HashSize] ^= 1
			writeFile(t, p, b)
		}},
		{"entries and hashes cut below the checkpoint", func(dir string) {
			os.Truncate(filepath.Join(dir, entriesFile), f.offsets[3])
			os.Truncate(filepath.Join(dir, hashesFile), tlog.StoredHashCount(3)*tlog.HashSize)
		}},
		{"entry rewritten and hashes.bin deleted", func(dir string) {
			rewriteRecord(t, dir, f.offsets, 1, func(b []byte) []byte { return bytes.Replace(b, []byte("rev-7"), []byte("rev-8"), 1) })
			os.Remove(filepath.Join(dir, hashesFile))
		}},
		{"checkpoint file garbled", func(dir string) {
			writeFile(t, checkpointPath(dir, 5), []byte("not a note"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, f.dir, dir)
			tt.mutate(dir)
			l, err := Open(dir, Options{})
			if err == nil {
				l.Close()
				t.Fatal("Open accepted a damaged log")
			}
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("Open: %v, want ErrDamaged", err)
			}
		})
	}
}

// rewriteRecord replaces record i with edit(record) and a valid checksum,
// as someone covering their tracks would.
func rewriteRecord(t *testing.T, dir string, offsets []int64, i int, edit func([]byte) []byte) {
	t.Helper()
	p := filepath.Join(dir, entriesFile)
	b := readFile(t, p)
	rec := b[offsets[i]+recordHeaderSize : offsets[i+1]]
	newRec := edit(append([]byte(nil), rec...))
	var out []byte
	out = append(out, b[:offsets[i]]...)
	out = appendRecord(out, newRec)
	out = append(out, b[offsets[i+1]:]...)
	writeFile(t, p, out)
}

const crashChildEnv = "AUDITLOG_CRASH_CHILD_DIR"

// TestCrashKill runs a writer in a child process (this test binary, re-run
// with an environment variable), SIGKILLs it mid-stream a few times, and
// checks that every entry the child saw acknowledged is in the log with
// the same bytes, that no index was handed out twice, and that the log
// verifies.
func TestCrashKill(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("-short: this test spawns and SIGKILLs child processes; make test runs it")
	}
	dir := t.TempDir()
	logDir, keyDir := filepath.Join(dir, "log"), filepath.Join(dir, "keys")
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("kill delays seeded with %d", seed)

	acked := map[int64][]byte{}
	maxAcked := int64(-1)
	for run := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKill$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			sc.Buffer(nil, 4*MaxEntrySize)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// Only bounds a hang: the kill below comes much sooner, once the
		// child is appending.
		hang := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
		ready, ok := <-lines
		startSize, err := strconv.ParseInt(strings.TrimPrefix(ready, "ready "), 10, 64)
		if !ok || err != nil {
			cmd.Process.Kill()
			t.Fatalf("run %d: child said %q instead of being ready", run, ready)
		}
		if startSize <= maxAcked {
			t.Fatalf("run %d: log reopened at size %d, but entry %d had been acknowledged", run, startSize, maxAcked)
		}
		// Start the clock at the child's first acknowledgement, so the kill
		// lands among appends however slowly the child started.
		delay := time.Duration(rng.IntN(81)) * time.Millisecond
		var timer *time.Timer
		n := 0
		for line := range lines {
			// A line cut by the kill has no newline and is not an ack; the
			// scanner still returns it, so insist on the full form.
			idx, leaf, ok := parseAck(line)
			if !ok {
				continue
			}
			if _, dup := acked[idx]; dup {
				t.Fatalf("index %d acknowledged twice", idx)
			}
			acked[idx], maxAcked, n = leaf, max(maxAcked, idx), n+1
			if timer == nil {
				timer = time.AfterFunc(delay, func() { cmd.Process.Kill() })
			}
		}
		hang.Stop()
		if timer != nil {
			timer.Stop()
		}
		cmd.Wait()
		if n == 0 {
			t.Fatalf("run %d: the child exited without acknowledging an entry", run)
		}
		t.Logf("run %d: reopened at %d, killed %v after its first acknowledgement, %d entries acknowledged", run, startSize, delay, n)
	}
	if len(acked) == 0 {
		t.Fatal("the child never acknowledged an entry")
	}

	_, vkey, err := LoadOrCreateKey(keyDir, "federa.test/crash")
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(logDir, Options{})
	if err != nil {
		t.Fatalf("Open after kills: %v", err)
	}
	for idx, want := range acked {
		got, err := l.Entry(idx)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("acknowledged entry %d: got %q (%v), want %q", idx, got, err, want)
		}
	}
	size := l.Size()
	l.Close()
	rep, err := Verify(logDir, vkey)
	if err != nil {
		t.Fatalf("Verify after kills: %v", err)
	}
	t.Logf("%d entries, %d acknowledged, %d checkpoints", size, len(acked), rep.Checkpoints)
}

func parseAck(line string) (int64, []byte, bool) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "ack" {
		return 0, nil, false
	}
	idx, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, nil, false
	}
	leaf, err := base64.StdEncoding.Strict().DecodeString(f[2])
	if err != nil {
		return 0, nil, false
	}
	if _, err := ParseEntry(leaf); err != nil {
		return 0, nil, false
	}
	return idx, leaf, true
}

// crashChild appends until killed, printing "ack <index> <leaf>" for each
// entry only after Append returned. os.Stdout is unbuffered, so every
// line is in the pipe before the next Append starts.
func crashChild(t *testing.T, dir string) {
	signer, _, err := LoadOrCreateKey(filepath.Join(dir, "keys"), "federa.test/crash")
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(filepath.Join(dir, "log"), Options{Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "ready %d\n", l.Size())
	nonce := time.Now().UnixNano()
	for call := 0; ; call++ {
		batch := make([]Entry, 1+call%3)
		leaves := make([][]byte, len(batch))
		for i := range batch {
			e := sampleEntry(t, int(l.Size())+i, fmt.Sprint(nonce))
			e.Time = time.Now()
			batch[i] = e
			if leaves[i], err = e.Canonical(); err != nil {
				t.Fatal(err)
			}
		}
		first, err := l.Append(batch...)
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		for i, leaf := range leaves {
			out = fmt.Appendf(out, "ack %d %s\n", first+int64(i), base64.StdEncoding.EncodeToString(leaf))
		}
		if _, err := os.Stdout.Write(out); err != nil {
			t.Fatal(err)
		}
		if call%10 == 9 {
			if _, err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
	}
}
