// Package e2e drives the real federa binary as separate processes, the way
// an operator deploys it: a dev CA on disk, a coordinator and three site
// agents from YAML configs, the CLI as the data scientist. It kill -9s the
// coordinator in the middle of a job and checks the job resumes.
package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/federa-dev/federa/internal/testutil"
)

var federaBin string

func TestMain(m *testing.M) {
	bin, cleanup := testutil.BuildFederaOnce("../cmd/federa", "federa-e2e-bin-")
	federaBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// run runs the CLI and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return testutil.Run(t, federaBin, args...)
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	return testutil.MustRun(t, federaBin, args...)
}

// daemon starts a long-running federa process with its log in dir.
func daemon(t *testing.T, dir, name string, args ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(federaBin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	return cmd
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

type jobJSON struct {
	ID              string `json:"id"`
	Status          string `json:"status"`
	Message         string `json:"message"`
	RoundsCompleted int    `json:"rounds_completed"`
	Rounds          []struct {
		Round        int      `json:"round"`
		Participants []string `json:"participants"`
		DurationMs   int64    `json:"duration_ms"`
	} `json:"rounds"`
}

func getJob(t *testing.T, addr, ids, id string) (jobJSON, bool) {
	out, _, code := run(t, "job", "get", id, "--coordinator", addr, "--identity", ids, "-o", "json")
	var j jobJSON
	if code != 0 {
		return j, false
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("job get output is not JSON: %v\n%s", err, out)
	}
	return j, true
}

// federation is a coordinator and three site processes of the real
// binary, with dev-CA identities, on loopback.
type federation struct {
	dir, addr, data, alice, coordCfg string
	coord                            *exec.Cmd
	sites                            map[string]*exec.Cmd
	siteNames                        []string
}

// startFederation writes the identities and configs and starts the
// daemons. heartbeat is the coordinator's heartbeat interval.
func startFederation(t *testing.T, heartbeat string) *federation {
	t.Helper()
	dir := t.TempDir()
	data, _ := filepath.Abs("../testdata/breast-cancer")
	ca := filepath.Join(dir, "ca")
	mustRun(t, "dev-ca", "init", "--dir", ca, "--trust-domain", "example.org")
	ids := func(n string) string { return filepath.Join(dir, "ids", n) }
	mustRun(t, "dev-ca", "issue", "--dir", ca, "--id", "spiffe://example.org/coordinator", "--out", ids("coordinator"))
	mustRun(t, "dev-ca", "issue", "--dir", ca, "--id", "spiffe://example.org/user/alice", "--out", ids("alice"))
	f := &federation{dir: dir, addr: freePort(t), data: data, alice: ids("alice"), sites: map[string]*exec.Cmd{},
		siteNames: []string{"eu/paris", "sg/singapore", "us/boston"}}
	var siteIDs []string
	for _, s := range f.siteNames {
		flat := strings.ReplaceAll(s, "/", "-")
		mustRun(t, "dev-ca", "issue", "--dir", ca, "--id", "spiffe://example.org/site/"+s, "--out", ids(flat))
		siteIDs = append(siteIDs, "    - spiffe://example.org/site/"+s)
		write(t, filepath.Join(dir, flat+".yaml"), fmt.Sprintf(`identity: {dir: %s}
coordinator:
  address: %s
  id: spiffe://example.org/coordinator
  jurisdiction: eu
datasets:
  - name: breast-cancer
    path: %s
    format: csv
    label: label
    default_classification: internal
state_dir: %s
reconnect: {min: 100ms, max: 1s}
`, ids(flat), f.addr, filepath.Join(data, flat+".csv"), filepath.Join(dir, "state", "sites", flat)))
	}
	f.coordCfg = filepath.Join(dir, "coordinator.yaml")
	write(t, f.coordCfg, fmt.Sprintf(`listen: %s
state_dir: %s
identity: {dir: %s}
heartbeat_interval: %s
site_wait_timeout: 2m
users:
  - id: spiffe://example.org/user/alice
    roles: [data-scientist]
sites:
%s
`, f.addr, filepath.Join(dir, "state", "coordinator"), ids("coordinator"), heartbeat, strings.Join(siteIDs, "\n")))
	f.coord = daemon(t, dir, "coordinator-1", "coordinator", "--config", f.coordCfg)
	for _, s := range f.siteNames {
		flat := strings.ReplaceAll(s, "/", "-")
		f.sites[s] = daemon(t, dir, "site-"+flat, "site", "--config", filepath.Join(dir, flat+".yaml"))
	}
	return f
}

// submit submits a job spec (YAML) as alice once the coordinator answers,
// and returns its id.
func (f *federation) submit(t *testing.T, spec string) string {
	t.Helper()
	jobFile := filepath.Join(f.dir, "job.yaml")
	write(t, jobFile, spec)
	for deadline := time.Now().Add(time.Minute); ; {
		out, errs, code := run(t, "job", "submit", jobFile, "--coordinator", f.addr, "--identity", f.alice, "-o", "json")
		if code == 0 {
			var j jobJSON
			if err := json.Unmarshal([]byte(out), &j); err != nil {
				t.Fatal(err)
			}
			return j.ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("submit never succeeded: %s", errs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// accuracy downloads job id's model and scores it on test.csv.
func (f *federation) accuracy(t *testing.T, id string) float64 {
	t.Helper()
	model := filepath.Join(f.dir, "model-"+id[:8]+".safetensors")
	mustRun(t, "model", "get", id, "-o", model, "--coordinator", f.addr, "--identity", f.alice)
	evalOut := mustRun(t, "model", "eval", "--model", model, "--data", filepath.Join(f.data, "test.csv"), "-o", "json")
	var ev struct {
		Accuracy float64 `json:"accuracy"`
		Rows     int     `json:"rows"`
	}
	if err := json.Unmarshal([]byte(evalOut), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Rows != 113 {
		t.Fatalf("model eval scored %d rows, want 113", ev.Rows)
	}
	return ev.Accuracy
}

func TestSeparateProcessesSurviveKillDashNine(t *testing.T) {
	// The test stops the site processes (SIGSTOP) while it reads the job's
	// progress: heartbeats, the wait for sites and the round deadline are
	// set well beyond such a pause, so none of them is what decides.
	f := startFederation(t, "10s")
	addr, alice, coord, coordCfg, dir := f.addr, f.alice, f.coord, f.coordCfg, f.dir
	var siteProcs []*exec.Cmd
	for _, s := range f.siteNames {
		siteProcs = append(siteProcs, f.sites[s])
	}
	id := f.submit(t, `name: long-enough-to-kill
dataset: breast-cancer
label: label
model: {type: logreg}
rounds: 120
local_epochs: 1
batch_size: 16
learning_rate: 0.05
l2: 0.0001
min_sites: 3
round_timeout: 2m
seed: 7
`)
	// signalSites stops (SIGSTOP) or continues (SIGCONT) every site process.
	signalSites := func(sig syscall.Signal) {
		t.Helper()
		for _, p := range siteProcs {
			if err := p.Process.Signal(sig); err != nil {
				t.Fatalf("%s a site: %v", sig, err)
			}
		}
	}
	// Runs before the daemons' own cleanups: a stopped site cannot shut
	// down cleanly.
	t.Cleanup(func() {
		for _, p := range siteProcs {
			_ = p.Process.Signal(syscall.SIGCONT)
		}
	})
	// Let some rounds complete, then kill -9 the coordinator mid-job. The
	// sites are stopped while the test reads the job and, if it is far
	// enough, kills the coordinator: with no site able to answer, the job
	// gets at most through the round in flight, so the kill lands where the
	// test read the job, give or take that round, however fast the machine.
	// Between reads the sites run briefly; a round takes far longer than
	// such a slice, let alone the 117 it would take to finish the job.
	var before jobJSON
	for deadline := time.Now().Add(2 * time.Minute); ; {
		signalSites(syscall.SIGSTOP)
		j, ok := getJob(t, addr, alice, id)
		if ok && j.Status != "RUNNING" && j.Status != "PENDING" {
			t.Fatalf("job ended before the kill: %+v", j)
		}
		if ok && j.RoundsCompleted >= 3 {
			if j.RoundsCompleted+1 >= 120 {
				t.Fatalf("job at round %d of 120 when read; the kill could come after its end", j.RoundsCompleted)
			}
			if err := coord.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = coord.Wait()
			before = j
			signalSites(syscall.SIGCONT)
			break
		}
		signalSites(syscall.SIGCONT)
		if time.Now().After(deadline) {
			t.Fatalf("job never reached round 3: %+v", j)
		}
		time.Sleep(20 * time.Millisecond)
	}
	daemon(t, dir, "coordinator-2", "coordinator", "--config", coordCfg)
	var out string
	for deadline := time.Now().Add(time.Minute); ; {
		o, errs, code := run(t, "job", "watch", id, "--coordinator", addr, "--identity", alice)
		if code == 0 {
			out = o
			break
		}
		if code == 2 || time.Now().After(deadline) {
			t.Fatalf("watch after restart: exit %d: %s %s", code, o, errs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(out, "succeeded") {
		t.Fatalf("watch output lacks the end: %s", out)
	}
	final, ok := getJob(t, addr, alice, id)
	if !ok || final.Status != "SUCCEEDED" || final.RoundsCompleted != 120 || len(final.Rounds) != 120 {
		t.Fatalf("after restart: %+v", final)
	}
	// The rounds completed before the kill were kept, not redone.
	for i := 0; i < before.RoundsCompleted && i < len(before.Rounds); i++ {
		if final.Rounds[i].Round != i+1 || final.Rounds[i].DurationMs != before.Rounds[i].DurationMs {
			t.Fatalf("round %d changed across the restart: before %+v after %+v", i+1, before.Rounds[i], final.Rounds[i])
		}
	}
	t.Logf("killed at %d completed rounds, resumed and finished at %d", before.RoundsCompleted, final.RoundsCompleted)

	if acc := f.accuracy(t, id); acc < 0.94 {
		t.Fatalf("model accuracy %.4f", acc)
	}
	list := mustRun(t, "job", "list", "--coordinator", addr, "--identity", alice)
	if !strings.Contains(list, id) || !strings.Contains(list, "succeeded") {
		t.Fatalf("job list after restart:\n%s", list)
	}
}

// TestSecureAggregationSurvivesASiteKill9: separate processes, a job with
// secure aggregation, and one site SIGKILLed while the job runs — in
// whatever phase of a round it is. The round completes with the two
// survivors' sum (threshold 2 of 3), the job finishes, and the model is as
// good as the demo's. The spec lists the three sites, so the job waits for
// all of them to connect before it starts (without the list it started
// with the first two, and a kill of one of them left it waiting for its
// quorum).
func TestSecureAggregationSurvivesASiteKill9(t *testing.T) {
	f := startFederation(t, "1s")
	id := f.submit(t, `name: secure
dataset: breast-cancer
label: label
model: {type: logreg}
rounds: 12
local_epochs: 2
batch_size: 16
learning_rate: 0.1
l2: 0.0001
min_sites: 2
round_timeout: 30s
seed: 42
sites: [eu/paris, sg/singapore, us/boston]
privacy: {secure_aggregation: true}
`)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		j, ok := getJob(t, f.addr, f.alice, id)
		if ok && j.Status != "RUNNING" && j.Status != "PENDING" {
			t.Fatalf("job ended before the kill: %+v", j)
		}
		if ok && j.RoundsCompleted >= 2 {
			if j.RoundsCompleted >= 11 {
				t.Fatalf("job at round %d of 12 when read; the kill could come after its end", j.RoundsCompleted)
			}
			if err := f.sites["us/boston"].Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = f.sites["us/boston"].Wait()
			t.Logf("killed us/boston after %d completed rounds", j.RoundsCompleted)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job never reached round 2: %+v", j)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var final jobJSON
	for deadline := time.Now().Add(3 * time.Minute); ; {
		j, ok := getJob(t, f.addr, f.alice, id)
		if ok && j.Status != "RUNNING" && j.Status != "PENDING" {
			final = j
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job did not end: %+v", j)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if final.Status != "SUCCEEDED" || final.RoundsCompleted != 12 {
		t.Fatalf("job after the kill: %+v", final)
	}
	if last := final.Rounds[len(final.Rounds)-1]; strings.Join(last.Participants, ",") != "eu/paris,sg/singapore" {
		t.Fatalf("last round's participants %v, want the two survivors", last.Participants)
	}
	if acc := f.accuracy(t, id); acc < 0.93 {
		t.Fatalf("model accuracy %.4f after the kill", acc)
	}
}
