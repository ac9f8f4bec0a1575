package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// spireBin finds the SPIRE binaries `make spire` builds (v1.13.3, from the
// Go module proxy, cached in .cache/bin). Their absence fails the test with
// how to build them: this test is not silently skipped.
func spireBin(t *testing.T, name string) string {
	t.Helper()
	if dir := os.Getenv("FEDERA_SPIRE_BIN"); dir != "" {
		return filepath.Join(dir, name)
	}
	p, _ := filepath.Abs(filepath.Join("..", ".cache", "bin", name))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found at %s: run `make spire` (builds SPIRE v1.13.3 once, ~7 minutes)", name, p)
	}
	return p
}

func spireRun(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// copyBinary puts the federa binary at path, so SPIRE's unix workload
// attestor can tell the coordinator, the sites and the user apart by path.
func copyBinary(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(federaBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestJobOnSPIREIdentities runs a coordinator, two sites and the CLI on
// SVIDs from a real SPIRE server and agent (join-token node attestation,
// unix workload attestation by binary path, 30-second SVIDs), then a job
// held (by eu/paris's approval policy) until the coordinator's SVID has
// rotated, which must then complete every round on the rotated identities.
func TestJobOnSPIREIdentities(t *testing.T) {
	server, agent := spireBin(t, "spire-server"), spireBin(t, "spire-agent")
	dir := t.TempDir()
	port := strings.Split(freePort(t), ":")[1]
	serverSock, agentSock := filepath.Join(dir, "server.sock"), filepath.Join(dir, "agent.sock")
	write(t, filepath.Join(dir, "server.conf"), fmt.Sprintf(`server {
  bind_address = "127.0.0.1"
  bind_port = "%s"
  socket_path = "%s"
  trust_domain = "example.org"
  data_dir = "%s/server-data"
  log_level = "WARN"
  default_x509_svid_ttl = "30s"
}
plugins {
  DataStore "sql" { plugin_data { database_type = "sqlite3" connection_string = "%s/datastore.sqlite3" } }
  NodeAttestor "join_token" { plugin_data {} }
  KeyManager "memory" { plugin_data {} }
}
`, port, serverSock, dir, dir))
	startDaemon(t, dir, "spire-server", server, "run", "-config", filepath.Join(dir, "server.conf"))
	waitSpire(t, func() error {
		return exec.Command(server, "healthcheck", "-socketPath", serverSock).Run()
	})
	out := spireRun(t, server, "token", "generate", "-spiffeID", "spiffe://example.org/agent", "-socketPath", serverSock)
	token := regexp.MustCompile(`Token: (\S+)`).FindStringSubmatch(out)
	if token == nil {
		t.Fatalf("no token in %q", out)
	}
	write(t, filepath.Join(dir, "agent.conf"), fmt.Sprintf(`agent {
  data_dir = "%s/agent-data"
  log_level = "WARN"
  server_address = "127.0.0.1"
  server_port = "%s"
  socket_path = "%s"
  trust_domain = "example.org"
  insecure_bootstrap = true
}
plugins {
  NodeAttestor "join_token" { plugin_data {} }
  KeyManager "memory" { plugin_data {} }
  WorkloadAttestor "unix" { plugin_data { discover_workload_path = true } }
}
`, dir, port, agentSock))
	startDaemon(t, dir, "spire-agent", agent, "run", "-config", filepath.Join(dir, "agent.conf"), "-joinToken", token[1])
	waitSpire(t, func() error { return exec.Command(agent, "healthcheck", "-socketPath", agentSock).Run() })

	parent := "spiffe://example.org/spire/agent/join_token/" + token[1]
	bins := map[string]string{}
	for name, id := range map[string]string{
		"coordinator": "spiffe://example.org/coordinator",
		"eu-paris":    "spiffe://example.org/site/eu/paris",
		"us-boston":   "spiffe://example.org/site/us/boston",
		"alice":       "spiffe://example.org/user/alice",
	} {
		bins[name] = copyBinary(t, filepath.Join(dir, "bin", name, "federa"))
		spireRun(t, server, "entry", "create", "-socketPath", serverSock, "-parentID", parent, "-spiffeID", id,
			"-selector", "unix:path:"+bins[name], "-x509SVIDTTL", "30")
	}

	data, _ := filepath.Abs("../testdata/breast-cancer")
	addr := freePort(t)
	ws := "unix://" + agentSock
	write(t, filepath.Join(dir, "coordinator.yaml"), fmt.Sprintf(`listen: %s
state_dir: %s/state/coordinator
identity: {workload_api: %q}
heartbeat_interval: 1s
site_wait_timeout: 60s
users:
  - {id: spiffe://example.org/user/alice, roles: [data-scientist]}
sites: [spiffe://example.org/site/eu/paris, spiffe://example.org/site/us/boston]
`, addr, dir, ws))
	startDaemon(t, dir, "coordinator", bins["coordinator"], "coordinator", "--config", filepath.Join(dir, "coordinator.yaml"))
	// eu/paris holds every job for its operator's approval (the default
	// policy with require_approval_for: [all]); the first job is approved
	// at once, the second only after a rotation.
	held := filepath.Join(dir, "policy-paris")
	spireRun(t, federaBin, "policy", "init", held)
	pdata, err := os.ReadFile(filepath.Join(held, "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(pdata), `"require_approval_for": []`, `"require_approval_for": ["all"]`, 1)
	if edited == string(pdata) {
		t.Fatal("the default data.json has no empty require_approval_for to edit")
	}
	write(t, filepath.Join(held, "data.json"), edited)
	for _, s := range []string{"eu-paris", "us-boston"} {
		pol := ""
		if s == "eu-paris" {
			pol = fmt.Sprintf("policy: {dir: %s}\n", held)
		}
		write(t, filepath.Join(dir, s+".yaml"), fmt.Sprintf(`identity: {workload_api: %q}
coordinator: {address: %s, id: spiffe://example.org/coordinator, jurisdiction: eu}
datasets: [{name: breast-cancer, path: %s/%s.csv, default_classification: internal}]
state_dir: %s/state/%s
reconnect: {min: 100ms, max: 1s}
%s`, ws, addr, data, s, dir, s, pol))
		startDaemon(t, dir, s, bins[s], "site", "--config", filepath.Join(dir, s+".yaml"))
	}
	job := filepath.Join(dir, "job.yaml")
	write(t, job, "name: spire\ndataset: breast-cancer\nrounds: 3\nmin_sites: 2\nround_timeout: 60s\nsites: [eu/paris, us/boston]\n")
	cli := func(args ...string) ([]byte, error) {
		return exec.Command(bins["alice"], append(args, "--coordinator", addr, "--workload-api", ws)...).CombinedOutput()
	}
	// Bounds only a hang: no step below waits on a guessed duration.
	deadline := time.Now().Add(4 * time.Minute)
	// runHeld submits the job, waits until eu/paris holds it for approval,
	// runs whileHeld, approves it at eu/paris and waits for it to finish
	// all its rounds.
	runHeld := func(whileHeld func(id string)) {
		t.Helper()
		var id string
		for id == "" {
			out, err := cli("job", "submit", job, "-o", "json")
			if m := regexp.MustCompile(`"id":\s*"([^"]+)"`).FindSubmatch(out); err == nil && m != nil {
				id = string(m[1])
			} else if time.Now().After(deadline) {
				t.Fatalf("submit: %v\n%s", err, out)
			} else {
				time.Sleep(time.Second) // the sites may still be connecting
			}
		}
		jobStatus := func() (status, message string) {
			out, err := cli("job", "get", id, "-o", "json")
			if err != nil {
				return "error: " + string(out), ""
			}
			m := regexp.MustCompile(`"status":\s*"([A-Z_]+)"`).FindSubmatch(out)
			if m == nil {
				return "unknown: " + string(out), ""
			}
			if msg := regexp.MustCompile(`"message":\s*"([^"]*)"`).FindSubmatch(out); msg != nil {
				return string(m[1]), string(msg[1])
			}
			return string(m[1]), ""
		}
		waitFor := func(what string, done func(status, message string) bool) {
			t.Helper()
			for {
				st, msg := jobStatus()
				if done(st, msg) {
					return
				}
				if st != "RUNNING" && st != "PENDING" || time.Now().After(deadline) {
					t.Fatalf("job %s, waiting for %s: %s %q", id, what, st, msg)
				}
				time.Sleep(300 * time.Millisecond)
			}
		}
		waitFor("the hold at eu/paris", func(st, msg string) bool {
			return st == "RUNNING" && strings.Contains(msg, "waiting for approval at eu/paris")
		})
		if whileHeld != nil {
			whileHeld(id)
			if st, msg := jobStatus(); st != "RUNNING" || !strings.Contains(msg, "waiting for approval at eu/paris") {
				t.Fatalf("job %s was %s %q after the wait; nothing should have released it", id, st, msg)
			}
		}
		if out, err := exec.Command(bins["eu-paris"], "site", "approve", id, "--reason", "spire test", "--config", filepath.Join(dir, "eu-paris.yaml")).CombinedOutput(); err != nil {
			t.Fatalf("approve %s at eu/paris: %v\n%s", id, err, out)
		}
		waitFor("success", func(st, _ string) bool { return st == "SUCCEEDED" })
		if out, err := cli("job", "get", id, "-o", "json"); err != nil || !regexp.MustCompile(`"rounds_completed":\s*3\b`).Match(out) {
			t.Fatalf("job %s did not complete its 3 rounds: %v\n%s", id, err, out)
		}
	}
	runHeld(nil)

	// Rotation during a job, by construction rather than by a guessed job
	// length: the test approves the job only after it has seen the
	// coordinator present a new certificate. The held job keeps asking
	// eu/paris over the stream opened on the old SVIDs; every round then
	// runs on the rotated identity, over those open streams and new
	// handshakes (the CLI's polls, the sites' SVIDs rotating too).
	runHeld(func(id string) {
		before := presentedSerial(t, addr)
		for presentedSerial(t, addr) == before {
			if time.Now().After(deadline) {
				t.Fatal("the coordinator's SVID did not rotate (30-second SVIDs)")
			}
			time.Sleep(time.Second)
		}
		t.Logf("coordinator SVID rotated (serial %s -> %s) while job %s was held", before, presentedSerial(t, addr), id)
	})
	// A refused identity: an unregistered binary gets no SVID at all.
	stranger := copyBinary(t, filepath.Join(dir, "bin", "stranger", "federa"))
	out2, err := exec.Command(stranger, "job", "list", "--coordinator", addr, "--workload-api", ws).CombinedOutput()
	if err == nil {
		t.Fatalf("an unregistered workload listed jobs:\n%s", out2)
	}
}

func waitSpire(t *testing.T, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for ready() != nil {
		if time.Now().After(deadline) {
			t.Fatal("SPIRE did not become healthy in 60s")
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// startDaemon runs bin (a copy of federa) as a long-running process.
func startDaemon(t *testing.T, dir, name, bin string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				t.Logf("%s: %s", name, sc.Text())
			}
		}
	})
}

// presentedSerial is the serial number of the certificate the server at
// addr presents, read during a handshake that the server then refuses (this
// client has no SVID): enough to see the server's SVID rotate.
func presentedSerial(t *testing.T, addr string) string {
	t.Helper()
	var serial string
	cfg := &tls.Config{
		InsecureSkipVerify: true, // only reads the certificate; trusts nothing
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			serial = c.SerialNumber.Text(16)
			return nil
		},
	}
	conn, err := tls.Dial("tcp", addr, cfg)
	if err == nil {
		conn.Close()
	}
	if serial == "" {
		t.Fatalf("no certificate from %s: %v", addr, err)
	}
	return serial
}
