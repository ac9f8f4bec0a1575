package site

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// stateLockName is the file in state_dir a running agent holds locked.
const stateLockName = "site.lock"

// errStateLocked is what lockFile returns when another holder has the lock.
var errStateLocked = errors.New("site: state dir locked")

// lockStateDir takes the state dir for this agent alone. Two agents on one
// state dir knock each other off the coordinator (each connect drops the
// other's stream) and interleave their appends to egress.jsonl, so the
// second is refused. The lock is flock(2) on a file: the kernel drops it
// when the holder exits, even on SIGKILL, so no stale lock is ever left
// to clear by hand.
func lockStateDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, stateLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("site state_dir %s: lock %s: %w", dir, path, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errStateLocked) {
			return nil, fmt.Errorf("site state_dir %s: another site agent holds it (it has %s locked); stop that agent, or give this one its own state_dir", dir, stateLockName)
		}
		return nil, fmt.Errorf("site state_dir %s: lock %s: %w", dir, path, err)
	}
	return f, nil
}
