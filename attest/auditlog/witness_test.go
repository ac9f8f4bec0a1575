package auditlog

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestWitnessDetectsFork builds two logs with the same key that share five
// entries and then differ (a coordinator showing two sites two histories),
// and checks that a witness that followed one rejects the other.
func TestWitnessDetectsFork(t *testing.T) {
	signer, vkey := testKey(t, "federa.test/log")
	a := openTestLog(t, t.TempDir(), signer)
	b := openTestLog(t, t.TempDir(), signer)
	for i := range 5 {
		mustAppend(t, a, sampleEntry(t, i, ""))
		mustAppend(t, b, sampleEntry(t, i, ""))
	}
	shared := mustCheckpoint(t, a)
	if bShared := mustCheckpoint(t, b); string(bShared) != string(shared) {
		t.Fatal("logs with the same entries signed different checkpoints")
	}
	for i := 5; i < 10; i++ {
		mustAppend(t, a, sampleEntry(t, i, "A"))
		mustAppend(t, b, sampleEntry(t, i, "B"))
	}
	a10, b10 := mustCheckpoint(t, a), mustCheckpoint(t, b)
	mustAppend(t, b, sampleEntry(t, 10, "B"), sampleEntry(t, 11, "B"))
	b12 := mustCheckpoint(t, b)
	mustAppend(t, a, sampleEntry(t, 10, "A"))
	a11 := mustCheckpoint(t, a)

	proof := func(l *Log, from, to int64) tlog.TreeProof {
		p, err := l.ConsistencyProof(from, to)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	wdir := t.TempDir()
	w, err := OpenWitness(wdir, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Observe(shared, nil); err != nil {
		t.Fatalf("first checkpoint: %v", err)
	}
	if err := w.Observe(a10, proof(a, 5, 10)); err != nil {
		t.Fatalf("honest extension: %v", err)
	}

	tests := []struct {
		name  string
		cp    []byte
		proof tlog.TreeProof
	}{
		{"other branch, same size", b10, nil},
		{"other branch, larger, its own proof", b12, proof(b, 10, 12)},
		{"other branch, proof from the shared prefix", b12, proof(b, 5, 12)},
		{"smaller tree", shared, nil},
		{"honest checkpoint, wrong proof", a11, proof(b, 10, 11)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := w.Observe(tt.cp, tt.proof)
			if !errors.Is(err, ErrForked) || !strings.HasPrefix(err.Error(), "coordinator log forked or rewritten: ") {
				t.Fatalf("got %v, want a fork error", err)
			}
			if cp, _, _ := w.Latest(); cp.Size != 10 {
				t.Fatalf("a rejected checkpoint replaced the stored one (size %d)", cp.Size)
			}
		})
	}

	t.Run("forged signature is not a fork", func(t *testing.T) {
		impostor, _ := testKey(t, "federa.test/log-impostor")
		c := openTestLog(t, t.TempDir(), renamedSigner{impostor, "federa.test/log"})
		mustAppend(t, c, sampleEntry(t, 0, ""))
		err := w.Observe(mustCheckpoint(t, c), nil)
		if err == nil || errors.Is(err, ErrForked) {
			t.Fatalf("got %v, want a signature error", err)
		}
	})

	// The witness remembers across restarts.
	w2, err := OpenWitness(wdir, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if cp, _, ok := w2.Latest(); !ok || cp.Size != 10 || cp.Root != a.mustRootAt(t, 10) {
		t.Fatalf("reopened witness holds %+v", cp)
	}
	if err := w2.Observe(b12, proof(b, 10, 12)); !errors.Is(err, ErrForked) {
		t.Fatalf("after restart: %v, want a fork error", err)
	}
	if err := w2.Observe(a11, proof(a, 10, 11)); err != nil {
		t.Fatalf("honest extension after restart: %v", err)
	}
	if err := w2.Observe(a11, nil); err != nil {
		t.Fatalf("same checkpoint again: %v", err)
	}
}

func (l *Log) mustRootAt(t *testing.T, size int64) tlog.Hash {
	t.Helper()
	r, err := l.RootAt(size)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
