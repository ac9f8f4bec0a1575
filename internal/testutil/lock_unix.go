//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package testutil

import (
	"fmt"
	"os"
	"syscall"
)

// lockPath waits for an exclusive advisory lock on path (created if
// needed) and returns its release.
func lockPath(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
