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
	bin, cleanup := testutil.BuildFederaOnce("../cmd/federa", "federa-chaos-bin-")
	federaBin = bin
	netnsErr = probeNetns()
	code := m.Run()
	cleanup()
	os.Exit(code)
}
