package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/federa-dev/federa/internal/testutil"
)

const coordPort = "7443"

// proc is one daemon of the real binary in its namespace; it can be
// started again after a kill.
type proc struct {
	t    *testing.T
	name string
	nd   *node
	args []string
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	runs int
}

func (p *proc) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.runs++
	logf, err := os.Create(filepath.Join(p.dir, fmt.Sprintf("%s-%d.log", p.name, p.runs)))
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := p.nd.command(federaBin, p.args...)
	cmd.Env = append(os.Environ(), failpointEnv...) // failpoint_test.go
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	p.cmd, p.done = cmd, done
}

// kill9 SIGKILLs the process and waits for it to be gone.
func (p *proc) kill9() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop asks the process to shut down (SIGTERM), then kills it.
func (p *proc) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// running reports whether the last start is still alive.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// log is the text of every run's log so far.
func (p *proc) log() string {
	var b strings.Builder
	for i := 1; i <= p.runs; i++ {
		data, _ := os.ReadFile(filepath.Join(p.dir, fmt.Sprintf("%s-%d.log", p.name, i)))
		fmt.Fprintf(&b, "--- %s run %d ---\n%s", p.name, i, data)
	}
	return b.String()
}

// options shape a federation.
type options struct {
	sites     []string                                   // default eu/paris, sg/singapore, us/boston
	heartbeat string                                     // coordinator heartbeat_interval, default 1s
	siteWait  string                                     // site_wait_timeout, default 2m
	coordDir  string                                     // the coordinator's state_dir (e.g. on a tmpfs); default under the test dir
	siteDirs  map[string]string                          // a site's state_dir (e.g. on a tmpfs); default under the test dir
	siteAddr  func(site string, coordAddr string) string // what a site dials; default the coordinator
	dataDir   string                                     // default testdata/breast-cancer
}

// federation: a dev CA, a coordinator node and site nodes on a lab.
type federation struct {
	t                          *testing.T
	lab                        *lab
	dir, data, alice, coordDir string
	addr                       string // the coordinator, from the test process
	coord                      *proc
	sites                      map[string]*proc
	siteNames                  []string
	siteState                  map[string]string
}

func startFederation(t *testing.T, o options) *federation {
	t.Helper()
	if o.sites == nil {
		o.sites = []string{"eu/paris", "sg/singapore", "us/boston"}
	}
	if o.heartbeat == "" {
		o.heartbeat = "1s"
	}
	if o.siteWait == "" {
		o.siteWait = "2m"
	}
	if o.dataDir == "" {
		o.dataDir = "../testdata/breast-cancer"
	}
	l := newLab(t)
	dir := t.TempDir()
	data, _ := filepath.Abs(o.dataDir)
	f := &federation{t: t, lab: l, dir: dir, data: data, sites: map[string]*proc{}, siteNames: o.sites, siteState: map[string]string{}}
	ca := filepath.Join(dir, "ca")
	mustRun(t, "dev-ca", "init", "--dir", ca, "--trust-domain", "example.org")
	ids := func(n string) string { return filepath.Join(dir, "ids", n) }
	mustRun(t, "dev-ca", "issue", "--dir", ca, "--id", "spiffe://example.org/coordinator", "--out", ids("coordinator"))
	mustRun(t, "dev-ca", "issue", "--dir", ca, "--id", "spiffe://example.org/user/alice", "--out", ids("alice"))
	f.alice = ids("alice")
	cn := l.add("coordinator")
	f.addr = cn.ip + ":" + coordPort
	f.coordDir = o.coordDir
	if f.coordDir == "" {
		f.coordDir = filepath.Join(dir, "state", "coordinator")
	}
	var siteIDs []string
	for _, s := range o.sites {
		flat := strings.ReplaceAll(s, "/", "-")
		mustRun(t, "dev-ca", "issue", "--dir", ca, "--id", "spiffe://example.org/site/"+s, "--out", ids(flat))
		siteIDs = append(siteIDs, "    - spiffe://example.org/site/"+s)
		dial := f.addr
		if o.siteAddr != nil {
			dial = o.siteAddr(s, f.addr)
		}
		f.siteState[s] = filepath.Join(dir, "state", "sites", flat)
		if d := o.siteDirs[s]; d != "" {
			f.siteState[s] = d
		}
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
reconnect: {min: 100ms, max: 500ms}
`, ids(flat), dial, filepath.Join(data, flat+".csv"), f.siteState[s]))
	}
	coordCfg := filepath.Join(dir, "coordinator.yaml")
	write(t, coordCfg, fmt.Sprintf(`listen: 0.0.0.0:%s
state_dir: %s
identity: {dir: %s}
heartbeat_interval: %s
site_wait_timeout: %s
users:
  - id: spiffe://example.org/user/alice
    roles: [data-scientist, auditor]
sites:
%s
`, coordPort, f.coordDir, ids("coordinator"), o.heartbeat, o.siteWait, strings.Join(siteIDs, "\n")))
	f.coord = &proc{t: t, name: "coordinator", nd: cn, dir: dir, args: []string{"coordinator", "--config", coordCfg}}
	f.coord.start()
	t.Cleanup(f.coord.stop)
	for _, s := range o.sites {
		flat := strings.ReplaceAll(s, "/", "-")
		p := &proc{t: t, name: "site-" + flat, nd: l.add(s), dir: dir, args: []string{"site", "--config", filepath.Join(dir, flat+".yaml")}}
		f.sites[s] = p
		p.start()
		t.Cleanup(p.stop)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(f.coord.log())
			for _, s := range f.siteNames {
				t.Log(f.sites[s].log())
			}
		}
	})
	return f
}

// run runs the CLI (in the test's namespace, on the bridge) and returns
// stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return testutil.Run(t, federaBin, args...)
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	return testutil.MustRun(t, federaBin, args...)
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// cli runs a CLI command against the coordinator as alice.
func (f *federation) cli(args ...string) (string, string, int) {
	return run(f.t, append(args, "--coordinator", f.addr, "--identity", f.alice)...)
}

type roundJSON struct {
	Round        int         `json:"round"`
	Participants []string    `json:"participants"`
	Missing      []string    `json:"missing"`
	DurationMs   json.Number `json:"duration_ms"`
	TrainPhaseMs float64     `json:"train_phase_ms"`
}

type jobJSON struct {
	ID              string      `json:"id"`
	Status          string      `json:"status"`
	Message         string      `json:"message"`
	RoundsCompleted int         `json:"rounds_completed"`
	Rounds          []roundJSON `json:"rounds"`
}

func (j jobJSON) ended() bool {
	return j.Status != "" && j.Status != "RUNNING" && j.Status != "PENDING" && j.Status != "WAITING"
}

// getJob reads job id; ok is false when the coordinator did not answer.
func (f *federation) getJob(id string) (jobJSON, bool) {
	return f.readJob(id) // client_test.go
}

// getJobCLI reads job id through `federa job get -o json`.
func (f *federation) getJobCLI(id string) (jobJSON, bool) {
	out, _, code := f.cli("job", "get", id, "-o", "json")
	var j jobJSON
	if code != 0 {
		return j, false
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		f.t.Fatalf("job get output is not JSON: %v\n%.2000s", err, out)
	}
	return j, true
}

// submit submits a job spec (YAML) once the coordinator answers.
func (f *federation) submit(spec string) string {
	f.t.Helper()
	jobFile := filepath.Join(f.dir, fmt.Sprintf("job-%d.yaml", time.Now().UnixNano()))
	write(f.t, jobFile, spec)
	for deadline := time.Now().Add(time.Minute); ; {
		out, errs, code := f.cli("job", "submit", jobFile, "-o", "json")
		if code == 0 {
			var j jobJSON
			if err := json.Unmarshal([]byte(out), &j); err != nil {
				f.t.Fatal(err)
			}
			return j.ID
		}
		if strings.Contains(errs, "job spec") || time.Now().After(deadline) {
			f.t.Fatalf("submit never succeeded: %s", errs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitEnd polls job id until it ends, feeding every read to h.
func (f *federation) waitEnd(h *history, id string, within time.Duration) jobJSON {
	f.t.Helper()
	for deadline := time.Now().Add(within); ; {
		j, ok := h.read(f, id)
		if ok && j.ended() {
			return j
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("job %s did not end within %s: %+v", id, within, j)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// lastLog is the text of the current (or last) run's log.
func (p *proc) lastLog() string {
	p.mu.Lock()
	n := p.runs
	p.mu.Unlock()
	data, _ := os.ReadFile(filepath.Join(p.dir, fmt.Sprintf("%s-%d.log", p.name, n)))
	return string(data)
}

// waitSites waits until every site has connected to the coordinator's
// current run, so that a job submitted next starts with all of them.
func (f *federation) waitSites() {
	f.t.Helper()
	for deadline := time.Now().Add(time.Minute); ; {
		log := f.coord.lastLog()
		all := true
		for _, s := range f.siteNames {
			if countLines(log, `msg="site connected"`, "site="+s+" ") == 0 {
				all = false
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("not every site connected to the coordinator:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLog waits until p's logs (every run) hold n lines containing all
// of subs.
func (p *proc) waitLog(n int, within time.Duration, subs ...string) {
	p.t.Helper()
	for deadline := time.Now().Add(within); ; {
		if countLines(p.log(), subs...) >= n {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s never logged %d lines with %q", p.name, n, subs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countLines(text string, subs ...string) int {
	n := 0
	for _, line := range strings.Split(text, "\n") {
		all := true
		for _, s := range subs {
			if !strings.Contains(line, s) {
				all = false
				break
			}
		}
		if all {
			n++
		}
	}
	return n
}
