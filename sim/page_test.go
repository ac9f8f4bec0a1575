package sim_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/federa-dev/federa/coordinator"
	"github.com/federa-dev/federa/internal/httpserve"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

// TestJobsPageReadsThroughTheAccessPolicy: outside dev mode the jobs page
// shows what the access policy lets http.reader read, as that caller's
// GetJob would: alice (the job's owner) sees her job, bob (another data
// scientist) and mallory (no role) do not, and only an auditor-capable
// reader sees the audit figures. Without a reader the page is refused and
// /metrics still answers the token.
func TestJobsPageReadsThroughTheAccessPolicy(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "http-token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reader := "" // read at every coordinator start
	n, _ := accessNet(t, sim.Options{Coordinator: func(c *coordinator.Config) {
		c.HTTP = httpserve.Config{Listen: "127.0.0.1:0", TokenFile: tokenFile, Reader: reader}
	}})
	j := demoSpec()
	j.Rounds = 1
	job := runJob(t, n, j)
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job %s: %s", job.GetStatus(), job.GetMessage())
	}
	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+n.Coordinator().HTTPAddr()+path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/"); code != http.StatusForbidden || !strings.Contains(body, "set http.reader") {
		t.Fatalf("no reader: GET / %d %q; want 403 naming http.reader", code, body)
	}
	if code, _ := get("/metrics"); code != http.StatusOK {
		t.Fatalf("no reader: /metrics %d; want 200 with the token", code)
	}
	for _, tc := range []struct {
		reader    string
		seesJob   bool
		seesAudit bool
	}{
		{"spiffe://federa.demo/user/alice", true, false},
		{bobID, false, false},
		{"spiffe://federa.demo/user/mallory", false, false},
		{opsID, true, false},
		{"spiffe://federa.demo/user/auditor", false, true},
	} {
		reader = tc.reader
		restartCoordinator(t, n)
		code, index := get("/")
		if code != http.StatusOK {
			t.Fatalf("%s: GET / %d", tc.reader, code)
		}
		if strings.Contains(index, job.GetId()) != tc.seesJob {
			t.Errorf("%s: the index lists the job: %v, want %v", tc.reader, !tc.seesJob, tc.seesJob)
		}
		want := http.StatusNotFound
		if tc.seesJob {
			want = http.StatusOK
		}
		if code, _ := get("/jobs/" + job.GetId()); code != want {
			t.Errorf("%s: GET /jobs/ID %d, want %d", tc.reader, code, want)
		}
		if hidden := strings.Contains(index, "does not let"); hidden == tc.seesAudit {
			t.Errorf("%s: audit figures hidden: %v, want %v", tc.reader, hidden, !tc.seesAudit)
		}
	}
}
