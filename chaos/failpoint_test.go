package chaos

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Failpoints: the kills aimed at an exact instant. The production code
// carries gofail failpoints as comments (`// gofail: var name type`,
// inert in every ordinary build); TestMain builds the binary with them
// compiled in (testutil.BuildFederaFailpoints), and every daemon serves
// gofail's HTTP control on its own namespace's failpointPort. A test arms
// a failpoint in one process (PUT /name), waits until the process sits in
// it — gofail's count for a sleep, or the state on disk for a failpoint
// that blocks only on a matching file — and SIGKILLs it there.

const failpointPort = "2381"

// failpointEnv is what every daemon of the harness gets in its
// environment (cluster_test.go: proc.start).
var failpointEnv = []string{"GOFAIL_HTTP=:" + failpointPort}

// hold is a sleep long enough that the kill always comes first.
const hold = "sleep(600000)"

var fpClient = &http.Client{Timeout: 5 * time.Second}

func (p *proc) failpointURL(name string) string {
	return "http://" + p.nd.ip + ":" + failpointPort + "/" + name
}

// arm sets failpoint name of p's running process to terms (gofail's
// syntax: "sleep(600000)", "1*sleep(2000)", `return("privacy.json")`).
func (p *proc) arm(name, terms string) {
	p.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		req, _ := http.NewRequest(http.MethodPut, p.failpointURL(name), strings.NewReader(terms))
		resp, err := fpClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return
			}
			p.t.Fatalf("%s: arm failpoint %s=%s: %s: %s", p.name, name, terms, resp.Status, body)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: arm failpoint %s=%s: %v (is the binary built with failpoints?)", p.name, name, terms, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fired is how often failpoint name has fired in p's running process
// (a sleep counts as it starts), or -1 when it cannot tell.
func (p *proc) fired(name string) int {
	resp, err := fpClient.Get(p.failpointURL(name) + "/count")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if resp.StatusCode != http.StatusOK || err != nil {
		return -1
	}
	return n
}

// holdAt arms failpoint name with a long sleep and waits until p sits in
// it; the caller kills p there.
func (p *proc) holdAt(name string, within time.Duration) {
	p.t.Helper()
	p.arm(name, hold)
	p.waitFor(within, "failpoint "+name+" fired", func() bool { return p.fired(name) >= 1 })
}

// waitFor polls cond until it holds, failing the test after within.
func (p *proc) waitFor(within time.Duration, what string, cond func() bool) {
	p.t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s: not within %s", p.name, what, within)
		}
		if !p.running() {
			p.t.Fatalf("%s exited while waiting for: %s", p.name, what)
		}
	}
}

// tempOf lists the temporary files fsutil writes beside a file whose name
// matches pattern, in dir (".name.tmp-*").
func tempOf(dir, pattern string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "."+pattern+".tmp-*"))
	return m
}

// stillThere says whether files exist now and 200 ms later: the process
// sits between writing them and renaming them, not passing through.
func stillThere(files func() []string) bool {
	first := files()
	if len(first) == 0 {
		return false
	}
	time.Sleep(200 * time.Millisecond)
	later := files()
	for _, f := range first {
		for _, g := range later {
			if f == g {
				return true
			}
		}
	}
	return false
}

// tornTail says whether the file ends in the middle of a line.
func tornTail(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && len(b) > 0 && b[len(b)-1] != '\n'
}
