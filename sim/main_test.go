package sim_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: a
// stopped coordinator or site must leave nothing running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
