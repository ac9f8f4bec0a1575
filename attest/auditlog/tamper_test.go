package auditlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// tamperFixture is a closed log of 12 entries, appended one per call, with
// a checkpoint after every third.
type tamperFixture struct {
	dir     string
	signer  note.Signer
	vkey    string
	offsets []int64
}

func newTamperFixture(t *testing.T) *tamperFixture {
	t.Helper()
	f := &tamperFixture{dir: t.TempDir()}
	f.signer, f.vkey = testKey(t, "federa.test/log")
	l, err := Open(f.dir, Options{Signer: f.signer, Now: testClock()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		mustAppend(t, l, sampleEntry(t, i, ""))
		if i%3 == 2 {
			mustCheckpoint(t, l)
		}
	}
	f.offsets = append([]int64(nil), l.offsets...)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(f.dir, f.vkey); err != nil {
		t.Fatalf("the untouched fixture fails Verify: %v", err)
	}
	return f
}

// wantVerifyError checks err is a *VerifyError naming index (and the
// checkpoint, unless wantCP is nil).
func wantVerifyError(t *testing.T, err error, index int64, wantCP *int64) {
	t.Helper()
	var ve *VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want a *VerifyError naming entry %d", err, index)
	}
	if ve.Index != index || wantCP != nil && ve.Checkpoint != *wantCP {
		t.Fatalf("got %q (index %d, checkpoint %d), want index %d checkpoint %v", ve, ve.Index, ve.Checkpoint, index, deref(wantCP))
	}
}

func deref(p *int64) any {
	if p == nil {
		return "any"
	}
	return *p
}

func cpAt(n int64) *int64 { return &n }

// rewriteHashes recomputes hashes.bin from entries.log, as a careful
// tamperer would, so the file cannot be used to point at the change.
func rewriteHashes(t *testing.T, dir string) {
	t.Helper()
	b := readFile(t, filepath.Join(dir, entriesFile))
	rr := newRecordReader(bytes.NewReader(b))
	tree := &memTree{}
	for {
		data, err := rr.next()
		if err != nil {
			break
		}
		tree.add(tlog.RecordHash(data))
	}
	var out []byte
	for _, h := range tree.hashes {
		out = append(out, h[:]...)
	}
	writeFile(t, filepath.Join(dir, hashesFile), out)
}

// regrow cuts the log back to k entries and appends different ones through
// the library, then puts the original checkpoints back: history rewritten
// from entry k, with the signed checkpoints still claiming the old one.
// It returns an export of the rewritten log (which Open now refuses).
func (f *tamperFixture) regrow(t *testing.T, dir string, k int) []byte {
	t.Helper()
	os.Truncate(filepath.Join(dir, entriesFile), f.offsets[k])
	os.Truncate(filepath.Join(dir, hashesFile), tlog.StoredHashCount(int64(k))*tlog.HashSize)
	saved := filepath.Join(t.TempDir(), "checkpoints")
	if err := os.Rename(filepath.Join(dir, checkpointsDir), saved); err != nil {
		t.Fatal(err)
	}
	l, err := Open(dir, Options{Now: testClock()})
	if err != nil {
		t.Fatal(err)
	}
	for i := k; i < 12; i++ {
		mustAppend(t, l, sampleEntry(t, i, "rewritten"))
	}
	var export bytes.Buffer
	if err := l.Export(&export); err != nil {
		t.Fatal(err)
	}
	l.Close()
	os.RemoveAll(filepath.Join(dir, checkpointsDir))
	if err := os.Rename(saved, filepath.Join(dir, checkpointsDir)); err != nil {
		t.Fatal(err)
	}
	return export.Bytes()
}

func TestVerifyDetectsFlippedBytes(t *testing.T) {
	f := newTamperFixture(t)
	dir := t.TempDir()
	copyDir(t, f.dir, dir)
	p := filepath.Join(dir, entriesFile)
	orig := readFile(t, p)
	var positions []int64
	for pos := int64(0); pos < int64(len(orig)); pos += 11 {
		positions = append(positions, pos)
	}
	for i := range 12 {
		positions = append(positions, f.offsets[i], f.offsets[i]+recordHeaderSize, f.offsets[i+1]-1)
	}
	for _, pos := range positions {
		entry := int64(0)
		for f.offsets[entry+1] <= pos {
			entry++
		}
		t.Run(fmt.Sprintf("byte %d (entry %d)", pos, entry), func(t *testing.T) {
			b := bytes.Clone(orig)
			b[pos] ^= 0x01
			writeFile(t, p, b)
			defer writeFile(t, p, orig)
			_, err := Verify(dir, f.vkey)
			wantVerifyError(t, err, entry, nil)
		})
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	f := newTamperFixture(t)
	impostor := func() note.Signer {
		// Same name as the log key, different key: a forger's best try.
		s, _ := testKey(t, "federa.test/log-impostor")
		return renamedSigner{s, "federa.test/log"}
	}()
	editCheckpoint := func(dir string, size int64, edit func(string) string) {
		p := checkpointPath(dir, size)
		writeFile(t, p, []byte(edit(string(readFile(t, p)))))
	}
	signHead := func(dir string, size int64, root tlog.Hash, s note.Signer) {
		msg, err := note.Sign(&note.Note{Text: string(marshalCheckpoint("federa.test/log", size, root))}, s)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, checkpointPath(dir, size), msg)
	}
	removeRecord := func(dir string, k int) {
		p := filepath.Join(dir, entriesFile)
		b := readFile(t, p)
		writeFile(t, p, append(b[:f.offsets[k]:f.offsets[k]], b[f.offsets[k+1]:]...))
	}
	swapRecords := func(dir string, j, k int) {
		p := filepath.Join(dir, entriesFile)
		b := readFile(t, p)
		var out []byte
		for i := range 12 {
			src := i
			if i == j {
				src = k
			} else if i == k {
				src = j
			}
			out = append(out, b[f.offsets[src]:f.offsets[src+1]]...)
		}
		writeFile(t, p, out)
	}

	tests := []struct {
		name      string
		mutate    func(dir string)
		wantIndex int64
		wantCP    *int64
		reason    string
	}{
		{"first entry deleted", func(dir string) { removeRecord(dir, 0) }, 0, nil, ""},
		{"middle entry deleted", func(dir string) { removeRecord(dir, 4) }, 4, nil, ""},
		{"last entry deleted", func(dir string) { removeRecord(dir, 11) }, 11, nil, ""},
		{"two entries swapped", func(dir string) { swapRecords(dir, 2, 7) }, 2, nil, "signed"},
		{"last two entries swapped", func(dir string) { swapRecords(dir, 10, 11) }, 10, nil, ""},
		{"entry rewritten with a valid checksum", func(dir string) {
			rewriteRecord(t, dir, f.offsets, 5, func(b []byte) []byte { return bytes.Replace(b, []byte(`"time":"2026`), []byte(`"time":"2025`), 1) })
		}, 5, cpAt(6), "differs from the entry the log signed"},
		{"entry rewritten and hashes.bin recomputed", func(dir string) {
			rewriteRecord(t, dir, f.offsets, 5, func(b []byte) []byte { return bytes.Replace(b, []byte(`"time":"2026`), []byte(`"time":"2025`), 1) })
			rewriteHashes(t, dir)
		}, 3, cpAt(6), "first entry that may have changed"},
		{"entry made non-canonical", func(dir string) {
			rewriteRecord(t, dir, f.offsets, 8, func(b []byte) []byte { return bytes.Replace(b, []byte(`,"job"`), []byte(`, "job"`), 1) })
		}, 8, nil, "canonical"},
		{"truncated at a checkpoint and regrown", func(dir string) { f.regrow(t, dir, 6) }, 6, cpAt(9), ""},
		// Nothing signed tells 6 from 7 here: the answer is a bound.
		{"truncated between checkpoints and regrown", func(dir string) { f.regrow(t, dir, 7) }, 6, cpAt(9), "may have changed"},
		{"last entries cut from both files", func(dir string) {
			os.Truncate(filepath.Join(dir, entriesFile), f.offsets[10])
			os.Truncate(filepath.Join(dir, hashesFile), tlog.StoredHashCount(10)*tlog.HashSize)
		}, 9, cpAt(12), ""},
		{"last entries cut, hashes.bin intact", func(dir string) {
			os.Truncate(filepath.Join(dir, entriesFile), f.offsets[10])
		}, 10, cpAt(12), "missing"},
		{"stored leaf hash changed", func(dir string) {
			p := filepath.Join(dir, hashesFile)
			b := readFile(t, p)
			b[tlog.StoredHashIndex(0, 7)*tlog.HashSize+3] ^= 0x80
			writeFile(t, p, b)
		}, 7, nil, hashesFile},
		{"checkpoint size edited", func(dir string) {
			editCheckpoint(dir, 6, func(s string) string { return strings.Replace(s, "\n6\n", "\n5\n", 1) })
		}, -1, cpAt(6), "invalid signature"},
		{"checkpoint root edited", func(dir string) {
			editCheckpoint(dir, 9, func(s string) string {
				lines := strings.SplitN(s, "\n", 4)
				lines[2] = strings.ToUpper(lines[2][:4]) + lines[2][4:]
				return strings.Join(lines, "\n")
			})
		}, -1, cpAt(9), ""},
		{"checkpoint signature edited", func(dir string) {
			editCheckpoint(dir, 9, func(s string) string {
				i := strings.LastIndex(s, " ") + 10
				return s[:i] + string(s[i]^0x01) + s[i+1:]
			})
		}, -1, cpAt(9), ""},
		{"checkpoint re-signed by another key", func(dir string) {
			signHead(dir, 9, tlog.Hash{1}, impostor)
		}, -1, cpAt(9), "not signed by the log key"},
		{"checkpoint of another tree signed by the log key", func(dir string) {
			signHead(dir, 9, tlog.Hash{1}, f.signer)
		}, 6, cpAt(9), "signed a different history"},
		{"checkpoint for entries that do not exist", func(dir string) {
			signHead(dir, 15, tlog.Hash{2}, f.signer)
		}, 12, cpAt(15), "removed"},
		{"checkpoint file renamed", func(dir string) {
			writeFile(t, checkpointPath(dir, 7), readFile(t, checkpointPath(dir, 6)))
		}, -1, cpAt(7), "holds a checkpoint of size 6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, f.dir, dir)
			tt.mutate(dir)
			_, err := Verify(dir, f.vkey)
			wantVerifyError(t, err, tt.wantIndex, tt.wantCP)
			if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error %q does not say %q", err, tt.reason)
			}
		})
	}
}

// renamedSigner signs with one key under another key's name, so its
// signature lines look like the log's.
type renamedSigner struct {
	note.Signer
	name string
}

func (s renamedSigner) Name() string { return s.name }

func TestVerifyExport(t *testing.T) {
	f := newTamperFixture(t)
	l, err := Open(f.dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := l.Export(&buf); err != nil {
		t.Fatal(err)
	}
	cps, err := l.Checkpoints()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	export, latest, at9 := buf.Bytes(), cps[len(cps)-1], cps[len(cps)-2]
	lines := bytes.SplitAfter(export, []byte("\n"))
	lines = lines[:len(lines)-1]
	if len(lines) != 12 {
		t.Fatalf("export has %d lines, want 12", len(lines))
	}
	if !bytes.HasPrefix(lines[0], []byte(`{"index":0,"leaf":"`)) {
		t.Fatalf("first line %s", lines[0])
	}

	t.Run("untouched", func(t *testing.T) {
		rep, err := VerifyExport(bytes.NewReader(export), latest, f.vkey)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Size != 12 || rep.LatestCheckpoint != 12 || rep.Unvouched != 0 {
			t.Fatalf("report %+v", rep)
		}
		rep, err = VerifyExport(bytes.NewReader(export), at9, f.vkey)
		if err != nil || rep.Unvouched != 3 {
			t.Fatalf("against an older checkpoint: %+v, %v", rep, err)
		}
	})

	t.Run("flipped bytes", func(t *testing.T) {
		line := int64(0)
		lineEnd := len(lines[0])
		for pos := 0; pos < len(export); pos++ {
			for pos >= lineEnd {
				line++
				lineEnd += len(lines[line])
			}
			if pos%7 != 0 && pos != lineEnd-1 {
				continue
			}
			b := bytes.Clone(export)
			b[pos] ^= 0x01
			_, err := VerifyExport(bytes.NewReader(b), latest, f.vkey)
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Index != line {
				t.Fatalf("byte %d (line %d) flipped: got %v", pos, line, err)
			}
		}
	})

	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	other := t.TempDir()
	copyDir(t, f.dir, other)
	regrown := f.regrow(t, other, 6)
	if _, err := Open(other, Options{}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open of the regrown log: %v, want ErrDamaged", err)
	}
	impostor, _ := testKey(t, "federa.test/log-impostor")
	forged, _ := note.Sign(&note.Note{Text: string(marshalCheckpoint("federa.test/log", 12, tlog.Hash{}))}, renamedSigner{impostor, "federa.test/log"})

	tests := []struct {
		name       string
		export     []byte
		checkpoint []byte
		wantIndex  int64
	}{
		{"line deleted", join(append(lines[:4:4], lines[5:]...)...), latest, 4},
		{"lines swapped", join(append(append(append(lines[:2:2], lines[9]), lines[3:9]...), append([][]byte{lines[2]}, lines[10:]...)...)...), latest, 2},
		{"last line cut short", export[:len(export)-1], latest, 11},
		{"last line missing", join(lines[:11]...), latest, 11},
		{"truncated and regrown", regrown, latest, 0},
		{"forged checkpoint", export, forged, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyExport(bytes.NewReader(tt.export), tt.checkpoint, f.vkey)
			wantVerifyError(t, err, tt.wantIndex, nil)
		})
	}
}
