package sim_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/federa-dev/federa/coordinator"
	"github.com/federa-dev/federa/internal/httpserve"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/site"
	"github.com/federa-dev/federa/spec"
)

const testToken = "0123456789abcdef0123456789abcdef"

// metricsNet is a federation whose coordinator and sites serve /metrics
// on loopback behind testToken.
func metricsNet(t *testing.T, opts sim.Options) (*sim.Net, *syncBuffer) {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "http-token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpCfg := httpserve.Config{Listen: "127.0.0.1:0", TokenFile: tokenFile}
	opts.Coordinator = func(c *coordinator.Config) { c.HTTP = httpCfg }
	opts.Site = func(_ string, c *site.Config) { c.HTTP = httpCfg }
	return startNet(t, opts)
}

// scrape GETs addr/metrics with the token and parses the text format.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %s: %s", addr, resp.Status, b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics of %s: %v", addr, err)
	}
	return fams
}

// value is the value of the sample of family name whose labels include
// every pair of labels, and whether there is one. A histogram's value is
// its sample count.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && have[labels[i]] == labels[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func mustValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := value(fams, name, labels...)
	if !ok {
		t.Fatalf("/metrics has no %s%v", name, labels)
	}
	return v
}

// TestMetricsMatchTheJob: a real federation serves /metrics on its HTTP
// address; after a job, the coordinator's figures are the job's (rounds,
// round durations, bytes per site and kind, the sites' admission
// decisions, audit log size) and each site's agree with what it sent.
func TestMetricsMatchTheJob(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for real; skipped with -short")
	}
	n, _ := metricsNet(t, sim.Options{})
	c := n.Coordinator()
	if c.HTTPAddr() == "" {
		t.Fatal("coordinator HTTPAddr is empty with HTTP.Listen set")
	}
	j := demoSpec()
	j.Rounds = 4
	final := runJob(t, n, j)
	if final.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job: %s %s", final.GetStatus(), final.GetMessage())
	}
	fams := scrape(t, c.HTTPAddr())
	if got := mustValue(t, fams, "federa_coordinator_rounds_total"); got != float64(j.Rounds) {
		t.Errorf("federa_coordinator_rounds_total = %v, want the job's %d rounds", got, j.Rounds)
	}
	if got := mustValue(t, fams, "federa_coordinator_round_duration_seconds"); got != float64(j.Rounds) {
		t.Errorf("round duration histogram holds %v rounds, want %d", got, j.Rounds)
	}
	var sumSeconds float64
	for _, m := range fams["federa_coordinator_round_duration_seconds"].GetMetric() {
		sumSeconds = m.GetHistogram().GetSampleSum()
	}
	var wantSeconds float64
	for _, r := range final.GetRounds() {
		wantSeconds += float64(r.GetDurationMs()) / 1000
	}
	if d := sumSeconds - wantSeconds; d > 1e-6 || d < -1e-6 {
		t.Errorf("round durations sum to %vs in /metrics, %vs in the job record", sumSeconds, wantSeconds)
	}
	if got := mustValue(t, fams, "federa_coordinator_jobs", "status", "succeeded"); got != 1 {
		t.Errorf("federa_coordinator_jobs{status=succeeded} = %v, want 1", got)
	}
	for _, s := range final.GetSites() {
		name := s.GetSite()
		var in, out float64
		for _, kind := range []string{"admit", "stats", "train", "eval"} {
			i := mustValue(t, fams, "federa_coordinator_received_bytes_total", "site", name, "kind", kind)
			o := mustValue(t, fams, "federa_coordinator_sent_bytes_total", "site", name, "kind", kind)
			if i <= 0 || o <= 0 {
				t.Errorf("site %s kind %s: received %v, sent %v bytes; want both > 0", name, kind, i, o)
			}
			in, out = in+i, out+o
		}
		if got := mustValue(t, fams, "federa_coordinator_received_bytes_total", "site", name, "kind", "admit-dry-run"); got <= 0 {
			t.Errorf("site %s: the admission dry run at submit received %v bytes, want > 0", name, got)
		}
		// The job record counts the same fan-outs (not the dry run),
		// byte for byte.
		if in != float64(s.GetBytesSent()) || out != float64(s.GetBytesReceived()) {
			t.Errorf("site %s: /metrics has %v bytes received from it and %v sent to it; the job record says %d and %d",
				name, in, out, s.GetBytesSent(), s.GetBytesReceived())
		}
		if got := mustValue(t, fams, "federa_coordinator_site_policy_decisions_total", "site", name, "kind", "admission", "outcome", "allow"); got < 1 {
			t.Errorf("site %s: %v allowed admissions in /metrics, want at least 1", name, got)
		}
		// At least once: a loaded machine may drop a site for missed
		// heartbeats and let it back.
		if got := mustValue(t, fams, "federa_coordinator_site_connects_total", "site", name); got < 1 {
			t.Errorf("site %s connected %v times, want at least 1", name, got)
		}

		// The site's own figures: what left it, as its egress record says.
		a := n.Site(name)
		sf := scrape(t, a.HTTPAddr())
		sentTrain := mustValue(t, sf, "federa_site_sent_bytes_total", "kind", "train")
		if sentTrain <= 0 {
			t.Errorf("site %s: federa_site_sent_bytes_total{kind=train} = %v, want > 0", name, sentTrain)
		}
		if got := mustValue(t, sf, "federa_site_policy_decisions_total", "kind", "egress", "outcome", "allow"); got < float64(j.Rounds) {
			t.Errorf("site %s: %v allowed egress decisions, want at least one per round (%d)", name, got, j.Rounds)
		}
		if got := mustValue(t, sf, "federa_site_connected"); got != 1 {
			t.Errorf("site %s: federa_site_connected = %v, want 1", name, got)
		}
		if exp := mustValue(t, sf, "federa_svid_expiry_seconds"); exp <= 0 || exp > 24*3600 {
			t.Errorf("site %s: federa_svid_expiry_seconds = %v, want within the SVID's lifetime", name, exp)
		}
	}
	if got := mustValue(t, fams, "federa_coordinator_audit_log_entries"); got <= 0 {
		t.Errorf("federa_coordinator_audit_log_entries = %v, want > 0", got)
	}
	if got := mustValue(t, fams, "federa_coordinator_audit_log_bytes"); got <= 0 {
		t.Errorf("federa_coordinator_audit_log_bytes = %v, want > 0", got)
	}
	if got := mustValue(t, fams, "federa_coordinator_access_decisions_total", "outcome", "allow"); got < 1 {
		t.Errorf("federa_coordinator_access_decisions_total{outcome=allow} = %v, want >= 1 (alice submitted and polled)", got)
	}
	if exp := mustValue(t, fams, "federa_svid_expiry_seconds"); exp <= 0 || exp > 24*3600 {
		t.Errorf("coordinator federa_svid_expiry_seconds = %v, want within the SVID's lifetime", exp)
	}

	// The site reconnects when the coordinator restarts, and says so.
	restartCoordinator(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	if err := n.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	sf := scrape(t, n.Site("eu/paris").HTTPAddr())
	if got := mustValue(t, sf, "federa_site_stream_reconnects_total"); got < 1 {
		t.Errorf("federa_site_stream_reconnects_total = %v after a coordinator restart, want >= 1", got)
	}
}

// TestMetricsEpsilonPerDataset: after a DP job, each site's
// federa_site_epsilon_spent for the dataset is the lifetime ε the job
// record says the site's dataset has spent.
func TestMetricsEpsilonPerDataset(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for real; skipped with -short")
	}
	n, _ := metricsNet(t, sim.Options{})
	j := demoSpec()
	j.Rounds = 2
	noEval := 0.0
	j.EvalFraction = &noEval
	j.Privacy.DP = &spec.DP{Epsilon: 3, Delta: 1e-5, ClipNorm: 1}
	final := runJob(t, n, j)
	if final.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("DP job: %s %s", final.GetStatus(), final.GetMessage())
	}
	for _, s := range final.GetSites() {
		want := s.GetDatasetEpsilonSpent()
		if want <= 0 {
			t.Fatalf("site %s: the job record has no dataset epsilon", s.GetSite())
		}
		got := mustValue(t, scrape(t, n.Site(s.GetSite()).HTTPAddr()), "federa_site_epsilon_spent", "dataset", j.Dataset)
		if d := got - want; d > 1e-9 || d < -1e-9 {
			t.Errorf("site %s: federa_site_epsilon_spent = %v, the job record says %v", s.GetSite(), got, want)
		}
	}
}

// TestMetricsAccess: the HTTP address answers /metrics only with the
// token, answers no write method, and keeps /healthz open for probes.
func TestMetricsAccess(t *testing.T) {
	n, _ := metricsNet(t, sim.Options{Sites: shippedSites[:1]})
	base := "http://" + n.Coordinator().HTTPAddr()
	get := func(method, path, token string) int {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/metrics", "", http.StatusUnauthorized},
		{"GET", "/metrics", "wrong-token-wrong-token", http.StatusUnauthorized},
		{"GET", "/", "", http.StatusUnauthorized},
		{"GET", "/metrics", testToken, http.StatusOK},
		// The token alone does not read the page: it needs http.reader
		// (TestJobsPageReadsThroughTheAccessPolicy).
		{"GET", "/", testToken, http.StatusForbidden},
		{"POST", "/metrics", testToken, http.StatusMethodNotAllowed},
		{"DELETE", "/jobs/x", testToken, http.StatusMethodNotAllowed},
		{"GET", "/healthz", "", http.StatusOK},
	} {
		t.Run(fmt.Sprintf("%s %s token=%v", tc.method, tc.path, tc.token != ""), func(t *testing.T) {
			if got := get(tc.method, tc.path, tc.token); got != tc.want {
				t.Errorf("%s %s: %d, want %d", tc.method, tc.path, got, tc.want)
			}
		})
	}
}
