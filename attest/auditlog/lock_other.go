//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package auditlog

import "os"

// lockFile is a no-op where flock(2) is unavailable; there, keeping one
// writer per log is the caller's job.
func lockFile(*os.File) error { return nil }
