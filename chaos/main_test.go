package chaos

import (
	"os"
	"testing"

	"github.com/federa-dev/federa/internal/testutil"
)

var (
	federaBin string
	// netnsErr says why network namespaces cannot be used here, or is nil.
	netnsErr error
)

func TestMain(m *testing.M) {
	raiseParallel() // parallel_test.go
	// One binary for every scenario, its failpoints compiled in (inert
	// unless a test arms one: failpoint_test.go).
	bin, cleanup := testutil.BuildFederaFailpoints("federa-chaos-bin-")
	federaBin = bin
	netnsErr = probeNetns()
	code := m.Run()
	cleanup()
	os.Exit(code)
}
