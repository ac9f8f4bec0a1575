package cli

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/html"

	"github.com/federa-dev/federa/attest"
)

// chromium finds Debian's chromium (.ci/run installs it). Outside CI a
// machine without it skips, saying so; in CI its absence is a broken
// setup and fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on this machine (apt-get install chromium): the jobs page cannot be checked in a browser"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skipf("%s (CI installs it and fails instead)", msg)
	return ""
}

// headless runs chromium headless on url with extra flags and returns its
// standard output (the DOM, with --dump-dom).
func headless(t *testing.T, bin, url string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + t.TempDir()}, extra...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v %s: %v\n%s", extra, url, err, stderr.String())
	}
	return string(out)
}

// dom is a parsed page with lookups by id and by attribute.
type dom struct{ root *html.Node }

func parseDOM(t *testing.T, s string) dom {
	t.Helper()
	n, err := html.Parse(strings.NewReader(s))
	if err != nil {
		t.Fatalf("parse the DOM chromium dumped: %v", err)
	}
	return dom{n}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// all returns the element nodes for which match holds, in document order.
func (d dom) all(match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(d.root)
	return out
}

// text is the text of the element with id, spaces collapsed, or "" and
// false if there is none.
func (d dom) text(id string) (string, bool) {
	ns := d.all(func(n *html.Node) bool { return attr(n, "id") == id })
	if len(ns) == 0 {
		return "", false
	}
	return textOf(ns[0]), true
}

func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// TestServePageInChromium: `federa demo --serve --http 127.0.0.1:0`
// writes the page's address to DIR/http.addr; after alice runs the demo
// job, headless Chromium loads the coordinator's page for it from
// loopback, with no certificate or token, and the page shows the job ID,
// SUCCEEDED, its rounds, every site's participation in every round, the
// learning curves, the audit log, and a footer saying this is dev mode.
func TestServePageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a federation and a browser; skipped with -short")
	}
	bin := chromium(t)
	state := t.TempDir()
	out := &lockedBuffer{}
	errs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() {
		code <- Execute(ctx, []string{"demo", "--serve", "--state", state, "--http", "127.0.0.1:0", "--rounds", "3"}, out, errs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-code:
		case <-time.After(30 * time.Second):
			t.Errorf("demo --serve did not stop within 30s")
		}
	})
	addrFile := filepath.Join(state, "coordinator.addr")
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(addrFile); err == nil {
			break
		}
		select {
		case c := <-code:
			t.Fatalf("demo --serve exited %d:\n%s%s", c, out, errs)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after a minute:\n%s%s", addrFile, out, errs)
		}
	}
	b, err := os.ReadFile(filepath.Join(state, "http.addr"))
	if err != nil {
		t.Fatalf("demo --serve --http wrote no http.addr: %v\n%s", err, out)
	}
	httpAddr := strings.TrimSpace(string(b))
	if !strings.HasPrefix(httpAddr, "127.0.0.1:") || strings.HasSuffix(httpAddr, ":0") {
		t.Fatalf("http.addr holds %q, want the bound loopback host:port", httpAddr)
	}
	if !strings.Contains(out.String(), "http://"+httpAddr+"/") {
		t.Errorf("demo --serve does not print the page's URL http://%s/:\n%s", httpAddr, out)
	}

	coord, _ := os.ReadFile(addrFile)
	stdout, stderr, c := execute(t, "job", "submit", filepath.Join(state, "job.yaml"), "--watch",
		"--coordinator", strings.TrimSpace(string(coord)), "--identity", filepath.Join(state, "identities", "alice"))
	fields := strings.Fields(stdout)
	if c != 0 || len(fields) < 2 || !strings.HasPrefix(fields[1], "job-") {
		t.Fatalf("submit --watch: exit %d: %s\n%s", c, stderr, stdout)
	}
	jobID := fields[1]
	sites := []string{"eu/paris", "sg/singapore", "us/boston"}

	// /metrics, as a dev-mode reader on loopback gets it: no token.
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(metrics), "federa_coordinator_rounds_total 3\n") {
		t.Fatalf("GET /metrics without a token in dev mode: %s; want 200 with federa_coordinator_rounds_total 3:\n%.2000s", resp.Status, metrics)
	}

	page := parseDOM(t, headless(t, bin, "http://"+httpAddr+"/jobs/"+jobID, "--dump-dom"))
	check := func(id, want string) {
		t.Helper()
		got, ok := page.text(id)
		if !ok {
			t.Errorf("the job page has no #%s", id)
		} else if !strings.Contains(got, want) {
			t.Errorf("#%s reads %q, want %q in it", id, got, want)
		}
	}
	check("job-id", jobID)
	check("job-status", "SUCCEEDED")
	check("job-rounds", "3 of 3")
	check("access-mode", "Dev mode")
	check("access-mode", "loopback without a client certificate")
	for _, s := range sites {
		if len(page.all(func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-site") == s })) != 1 {
			t.Errorf("the sites table has no row for %s", s)
		}
	}
	rows := page.all(func(n *html.Node) bool { return n.Data == "tr" && attr(n, "class") == "round" })
	if len(rows) != 3 {
		t.Fatalf("the participation table has %d rounds, want 3", len(rows))
	}
	for _, r := range rows {
		for _, s := range sites {
			cells := dom{r}.all(func(n *html.Node) bool { return n.Data == "td" && attr(n, "data-site") == s })
			if len(cells) != 1 || textOf(cells[0]) != "took part" {
				t.Errorf("round %s, site %s: want one cell reading \"took part\"", attr(r, "data-round"), s)
			}
		}
	}
	if lines := page.all(func(n *html.Node) bool { return n.Data == "polyline" }); len(lines) < 3 {
		t.Errorf("the curves hold %d lines, want train loss, eval loss and eval accuracy", len(lines))
	}

	index := parseDOM(t, headless(t, bin, "http://"+httpAddr+"/", "--dump-dom"))
	jobRows := index.all(func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-job") == jobID })
	if len(jobRows) != 1 || !strings.Contains(textOf(jobRows[0]), "SUCCEEDED") || !strings.Contains(textOf(jobRows[0]), "3 / 3") {
		t.Errorf("the jobs list has no SUCCEEDED row for %s with 3 / 3 rounds", jobID)
	}
	if n, ok := index.text("audit-entries"); !ok || n == "0" {
		t.Errorf("the audit log size reads %q, want its entries", n)
	}
	if cp, ok := index.text("audit-checkpoint"); !ok || !strings.Contains(cp, "signature verified") {
		t.Errorf("the last verified checkpoint reads %q", cp)
	}

	// What a reader sees: a screenshot, kept beside the test's output.
	shot := filepath.Join(t.TempDir(), "job.png")
	headless(t, bin, "http://"+httpAddr+"/jobs/"+jobID, "--screenshot="+shot, "--window-size=1280,1600", "--hide-scrollbars")
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Errorf("chromium's screenshot of the job page: %v (%v bytes); want a rendered page", err, st)
	}
	if dir := os.Getenv("FEDERA_SCREENSHOT_DIR"); dir != "" {
		b, _ := os.ReadFile(shot)
		_ = os.WriteFile(filepath.Join(dir, "job-page.png"), b, 0o644)
	}
}

func TestDemoHTTPFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--http", "127.0.0.1:0"}, "flag --http: only with --serve"},
		{[]string{"demo", "--serve", "--http", "127.0.0.1"}, `flag --http: "127.0.0.1" has no port`},
	} {
		t.Run(tt.want, func(t *testing.T) {
			_, errs, code := execute(t, append(tt.args, "--state", t.TempDir())...)
			if code == 0 || !strings.Contains(errs, tt.want) {
				t.Fatalf("%v: exit %d, %q; want an error with %q", tt.args, code, errs, tt.want)
			}
		})
	}
}

// TestDaemonsHTTPFlag: `federa coordinator --http ADDR` and `federa site
// --http ADDR` serve /metrics at ADDR (overriding the file) behind the
// token in http.token_file, and /healthz to anyone.
func TestDaemonsHTTPFlag(t *testing.T) {
	dir := t.TempDir()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca, err := attest.NewCA(td)
	if err != nil {
		t.Fatal(err)
	}
	paris := spiffeid.RequireFromString("spiffe://example.org/site/eu/paris")
	for id, out := range map[spiffeid.ID]string{attest.CoordinatorID(td): "coord", paris: "paris"} {
		if err := ca.IssueToDir(id, time.Hour, filepath.Join(dir, out)); err != nil {
			t.Fatal(err)
		}
	}
	const token = "fedcba9876543210fedcba9876543210"
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("tok", token+"\n")
	coordAddr := freeAddr(t)
	coordYAML := write("coordinator.yaml", "listen: "+coordAddr+"\nstate_dir: state\nidentity: {dir: coord}\nsites: [spiffe://example.org/site/eu/paris]\nhttp: {listen: '127.0.0.1:1', token_file: tok}\n")
	data, err := filepath.Abs("../testdata/breast-cancer/eu-paris.csv")
	if err != nil {
		t.Fatal(err)
	}
	siteYAML := write("site.yaml", "identity: {dir: paris}\ncoordinator: {address: '"+coordAddr+"', id: 'spiffe://example.org/coordinator', jurisdiction: eu}\n"+
		"datasets: [{name: bc, path: '"+data+"', default_classification: internal}]\nstate_dir: site-state\nhttp: {token_file: tok}\n")
	for _, tc := range []struct{ name, config string }{{"coordinator", coordYAML}, {"site", siteYAML}} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan int, 1)
			var out, errs lockedBuffer
			go func() { done <- Execute(ctx, []string{tc.name, "--config", tc.config, "--http", addr}, &out, &errs) }()
			defer func() { cancel(); <-done }()
			status := func(path, tok string) int {
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
				if tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return 0
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			deadline := time.Now().Add(30 * time.Second)
			for status("/healthz", "") != http.StatusOK {
				select {
				case c := <-done:
					done <- c
					t.Fatalf("federa %s exited %d: %s", tc.name, c, errs.String())
				case <-time.After(50 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("nothing serves /healthz at %s (--http) after 30s", addr)
				}
			}
			if got := status("/metrics", ""); got != http.StatusUnauthorized {
				t.Errorf("/metrics without the token: %d, want 401", got)
			}
			if got := status("/metrics", token); got != http.StatusOK {
				t.Errorf("/metrics with the token: %d, want 200", got)
			}
		})
	}
}
