package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var (
	federaBin string
	// netnsErr says why network namespaces cannot be used here, or is nil.
	netnsErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "federa-chaos-bin-")
	if err != nil {
		panic(err)
	}
	federaBin = filepath.Join(dir, "federa")
	build := exec.Command("go", "build", "-o", federaBin, "../cmd/federa")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build federa:", err)
		os.Exit(1)
	}
	netnsErr = probeNetns()
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
