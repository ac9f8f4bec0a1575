package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSimRunsAJobAcrossSites: `federa sim --output json` runs the job
// across every site it started and ends with one JSON object saying so,
// with the figures the issue names.
func TestSimRunsAJobAcrossSites(t *testing.T) {
	out, errOut, code := execute(t, "sim", "--sites", "3", "--rounds", "2", "--state", t.TempDir(), "--output", "json", "--log-level", "error")
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res struct {
		Status          string  `json:"status"`
		Sites           int     `json:"sites"`
		RoundsCompleted int     `json:"rounds_completed"`
		ElapsedSeconds  float64 `json:"elapsed_seconds"`
		PeakHeap        uint64  `json:"coordinator_peak_heap_bytes"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	if res.Status != "succeeded" || res.Sites != 3 || res.RoundsCompleted != 2 || res.ElapsedSeconds <= 0 || res.PeakHeap == 0 {
		t.Fatalf("result %+v", res)
	}
}

func TestSimRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"--sites 0", "flag --sites: 0; want at least 1"},
		{"--rounds -1", "flag --rounds: -1; want at least 1"},
		{"--params 2", "flag --params: 2; want at least 4"},
		{"--output yaml", `flag --output: "yaml" is not valid`},
	} {
		_, errOut, code := execute(t, append([]string{"sim"}, strings.Fields(tc.args)...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("sim %s: exit %d, %q; want an error saying %q", tc.args, code, errOut, tc.want)
		}
	}
}
