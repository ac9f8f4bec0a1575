//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package site

import "os"

// lockFile is a no-op where flock(2) is unavailable; there, running one
// agent per state dir is the operator's job.
func lockFile(*os.File) error { return nil }
