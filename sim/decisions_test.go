package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/federa-dev/federa/cli"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

// TestDecisionsPageLikeTheAuditLog: over real gRPC and mTLS, paging a
// finished job's decisions with ListDecisions returns every admission and
// egress decision the audit log holds for the job (but the dry run at
// submit), each exactly once, and
// GetJob carries none of them.
func TestDecisionsPageLikeTheAuditLog(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	j := demoSpec()
	j.Rounds = 3
	job := runJob(t, n, j)
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job %s: %s", job.GetStatus(), job.GetMessage())
	}
	if len(job.GetDecisions()) != 0 {
		t.Fatalf("GetJob carries %d decisions; want them only through ListDecisions", len(job.GetDecisions()))
	}
	var paged []string
	for _, d := range jobDecisions(t, n, job.GetId()) {
		paged = append(paged, fmt.Sprintf("%s#%d", d.GetSite(), d.GetRecord().GetSeq()))
	}
	var logged []string
	for _, e := range auditEntries(t, n) {
		// The submit-time dry run is decided before the job exists; the
		// log alone keeps it.
		if (e["type"] == "admission" || e["type"] == "egress") && e["job"] == job.GetId() && e["data"].(map[string]any)["kind"] != "admission-dry-run" {
			logged = append(logged, fmt.Sprintf("%s#%v", e["site"], e["data"].(map[string]any)["seq"]))
		}
	}
	slices.Sort(paged)
	slices.Sort(logged)
	if len(paged) < 3*3*2 || !slices.Equal(paged, logged) {
		t.Fatalf("paged decisions %v\nthe audit log's %v", paged, logged)
	}

	// federa job get counts them and names the command that lists them.
	var got, gotErr bytes.Buffer
	if code := cli.Execute(context.Background(), []string{"job", "get", job.GetId(), "--coordinator", n.Addr(), "--identity", n.IdentityDir("alice")}, &got, &gotErr); code != 0 ||
		!strings.Contains(got.String(), fmt.Sprintf("Policy decisions: %d by the sites (federa job decisions %s)", len(paged), job.GetId())) {
		t.Fatalf("job get: %s%s", got.String(), gotErr.String())
	}

	// federa job decisions lists the same, a JSON line each.
	var out, errb bytes.Buffer
	args := []string{"job", "decisions", job.GetId(), "-o", "json", "--coordinator", n.Addr(), "--identity", n.IdentityDir("alice")}
	if code := cli.Execute(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("job decisions: %s", errb.String())
	}
	var listed []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var d struct {
			Site   string
			Record struct{ Seq uint64 } // a number in -o json
		}
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		listed = append(listed, fmt.Sprintf("%s#%d", d.Site, d.Record.Seq))
	}
	slices.Sort(listed)
	if !slices.Equal(listed, paged) {
		t.Fatalf("federa job decisions lists %v\nwant %v", listed, paged)
	}
}
