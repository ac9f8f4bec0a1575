package federav1

import (
	"fmt"
	"math"
	"strings"
)

// Name is the status as people read it: "running", "succeeded", ….
func (s JobStatus) Name() string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATUS_"))
}

// FormatAccuracy prints an accuracy, or "n/a" for a round nobody could
// score (NaN).
func FormatAccuracy(a float64) string {
	if math.IsNaN(a) {
		return "n/a"
	}
	return fmt.Sprintf("%.4f", a)
}
