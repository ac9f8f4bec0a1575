package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BuildFederaOnce builds cmd/federa (pkg, relative to the test's package,
// e.g. "../cmd/federa") into a new temporary folder for a test binary's
// TestMain, and returns its path and the cleanup. A build failure exits the
// test binary: none of its tests could run.
func BuildFederaOnce(pkg, prefix string) (bin string, cleanup func()) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "federa")
	build := exec.Command("go", "build", "-o", bin, pkg)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build federa:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	return bin, func() { os.RemoveAll(dir) }
}

// Run runs bin with args and returns stdout, stderr and the exit code; a
// failure to start it fails the test.
func Run(t testing.TB, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s %v: %v", filepath.Base(bin), args, err)
	}
	return out.String(), errb.String(), code
}

// MustRun is Run that fails the test on a non-zero exit, with both outputs.
func MustRun(t testing.TB, bin string, args ...string) string {
	t.Helper()
	out, errs, code := Run(t, bin, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\nstdout: %s\nstderr: %s", filepath.Base(bin), strings.Join(args, " "), code, out, errs)
	}
	return out
}
