package sim_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/federa-dev/federa/internal/logkeys"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

// TestJobLogLinesCarryJobRoundSite: with a JSON log, every line that
// mentions a job carries it as the job attribute; the coordinator logs
// each round once with job and round; and every line about a site's task
// names the job, the round and the site, so one grep (or one query in a
// log store) follows a job across the coordinator and every site.
func TestJobLogLinesCarryJobRoundSite(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for real; skipped with -short")
	}
	logs := &syncBuffer{}
	n, err := sim.Start(sim.Options{Dir: t.TempDir(), Sites: shippedSites,
		Log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	if err := n.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	j := demoSpec()
	j.Rounds = 3
	final := runJob(t, n, j)
	if final.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job: %s %s", final.GetStatus(), final.GetMessage())
	}
	id := final.GetId()
	waitLogLine(t, logs, `"msg":"job succeeded; model released"`)
	rounds := map[float64]int{}
	siteTasks := map[string]int{}
	for i, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %d is not JSON: %v\n%s", i+1, err, line)
		}
		if strings.Contains(line, id) && rec[logkeys.Job] != id {
			t.Errorf("log line %d mentions job %s without job=%s:\n%s", i+1, id, id, line)
		}
		if rec["msg"] == "round done" {
			r, ok := rec[logkeys.Round].(float64)
			if rec[logkeys.Job] != id || !ok {
				t.Errorf("round line %d without job and round:\n%s", i+1, line)
			}
			rounds[r]++
		}
		if rec[logkeys.Component] == "site" && rec[logkeys.Task] != nil {
			site, _ := rec[logkeys.Site].(string)
			if rec[logkeys.Job] != id || rec[logkeys.Round] == nil || site == "" {
				t.Errorf("site task line %d without job, round and site:\n%s", i+1, line)
			}
			siteTasks[site]++
		}
	}
	for r := 1; r <= j.Rounds; r++ {
		if rounds[float64(r)] != 1 {
			t.Errorf("round %d logged %d times, want once; logged rounds: %v", r, rounds[float64(r)], rounds)
		}
	}
	for _, s := range j.Sites {
		if siteTasks[s] == 0 {
			t.Errorf("no task line of site %s (want job, round and site on each); got %v", s, siteTasks)
		}
	}
}
