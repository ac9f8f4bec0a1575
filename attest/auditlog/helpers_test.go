package auditlog

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// testKey returns a note key pair derived from name, so test keys (and
// everything they sign) are the same on every run.
func testKey(t testing.TB, name string) (note.Signer, string) {
	t.Helper()
	seed := sha256.Sum256([]byte(name))
	skey, vkey, err := note.GenerateKey(rand.NewChaCha8(seed), name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

// testClock is an injected clock that ticks one second per reading.
func testClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second + 1234*time.Nanosecond)
		return t
	}
}

// sampleEntry returns a plausible entry; variant changes the content so
// two logs built with different variants diverge.
func sampleEntry(t testing.TB, i int, variant string) Entry {
	t.Helper()
	job := fmt.Sprintf("job-%d", i/8)
	site := fmt.Sprintf("spiffe://example.org/site/s%d", i%3)
	digest := func(s string) string {
		return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(fmt.Sprint(s, i, variant))))
	}
	var p Payload
	actor := "coordinator"
	switch i % 8 {
	case 0:
		p, actor = JobSubmitted{SpecDigest: digest("spec"), Requester: "alice" + variant}, "alice"
	case 1:
		p, actor = Admission{InputDigest: digest("in"), Decision: "admit", Reasons: []string{"dataset allowed", "dp <= 1.0"}, PolicyRevision: "rev-7" + variant}, site
	case 2:
		p, actor = Approval{Decision: "approved", Reason: "ticket CHG-1" + variant}, "bob"
	case 3:
		p = Round{Round: int64(i), Participants: []string{"s0", "s1", "s2"}, UpdateDigests: map[string]string{"s0": digest("u0"), "s2": digest("u2"), "s1": digest("u1")}, AggregateDigest: digest("agg")}
	case 4:
		p, actor = Egress{Kind: "model_update" + variant, Bytes: int64(1<<20 + i), Decision: "allow"}, site
	case 5:
		p, actor = DPSpent{Epsilon: 0.1 * float64(i%5+1), Delta: 1e-6, Round: int64(i)}, site
	case 6:
		p = JobEnd{Status: "succeeded" + variant}
	default:
		p = ModelRelease{ArtifactSHA256: digest("model")[7:], Name: "model-" + variant}
	}
	e, err := NewEntry(job, site, actor, p)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func openTestLog(t testing.TB, dir string, signer note.Signer) *Log {
	t.Helper()
	l, err := Open(dir, Options{Signer: signer, Now: testClock()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustAppend(t testing.TB, l *Log, es ...Entry) int64 {
	t.Helper()
	first, err := l.Append(es...)
	if err != nil {
		t.Fatal(err)
	}
	return first
}

func mustCheckpoint(t testing.TB, l *Log) []byte {
	t.Helper()
	cp, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// copyDir copies a log directory (flat files and one level of
// subdirectories), so each tampering case starts from the same log.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o750)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}
