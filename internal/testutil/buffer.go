// Package testutil holds helpers the tests of several packages share.
package testutil

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer is an io.Writer a test reads while other goroutines write to it,
// typically a logger's sink.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor polls until the buffer holds every string in want, failing the
// test with the first one missing after a minute: long enough that only a
// line that is never written fails it, even on a slow, loaded machine.
func (b *Buffer) WaitFor(t testing.TB, want ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s := b.String()
		missing := ""
		for _, w := range want {
			if !strings.Contains(s, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log does not contain %q:\n%s", missing, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
