package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/coordinator"
)

// runDoctor runs `federa doctor --config cfg -o json`.
func runDoctor(t *testing.T, cfg string) (doctorReport, int, string) {
	t.Helper()
	out, errs, code := execute(t, "doctor", "--config", cfg, "-o", "json")
	var rep doctorReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("doctor -o json: %v\nstdout: %s\nstderr: %s", err, out, errs)
	}
	return rep, code, errs
}

func failedChecks(rep doctorReport) []string {
	var out []string
	for _, c := range rep.Checks {
		if c.Status == checkFail {
			out = append(out, c.Name)
		}
	}
	return out
}

func findCheck(rep doctorReport, name string) doctorCheck {
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	return doctorCheck{}
}

// TestDoctor: on a working coordinator and site every check passes; each
// thing broken on purpose fails exactly its own check, exit 1, with advice
// that names what to do.
func TestDoctor(t *testing.T) {
	dir := t.TempDir()
	ca := devIdentities(t, map[string]string{
		"spiffe://example.org/coordinator":   filepath.Join(dir, "coordinator", "identity"),
		"spiffe://example.org/site/eu/paris": filepath.Join(dir, "paris", "identity"),
	})
	data, _ := filepath.Abs("../testdata/breast-cancer/eu-paris.csv")
	addr := freeAddr(t)
	coordYAML := filepath.Join(dir, "coordinator", "coordinator.yaml")
	siteYAML := filepath.Join(dir, "paris", "site.yaml")
	if _, errs, code := execute(t, "coordinator", "init", coordYAML, "--listen", addr, "--site", "eu/paris", "--user", "alice=data-scientist"); code != 0 {
		t.Fatal(errs)
	}
	if _, errs, code := execute(t, "site", "init", siteYAML, "--coordinator", addr, "--jurisdiction", "eu", "--dataset", "breast-cancer="+data); code != 0 {
		t.Fatal(errs)
	}
	good, _ := os.ReadFile(siteYAML)

	t.Run("a coordinator that is not running yet", func(t *testing.T) {
		rep, code, _ := runDoctor(t, coordYAML)
		if code != 0 || !rep.OK || rep.Kind != "coordinator" {
			t.Fatalf("exit %d: %+v", code, rep)
		}
		if c := findCheck(rep, "listen"); !strings.Contains(c.Detail, "is free") {
			t.Errorf("listen: %+v", c)
		}
	})

	ccfg, err := coordinator.LoadFile(coordYAML, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := coordinator.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		c.Close()
	})

	t.Run("a good site passes every check", func(t *testing.T) {
		var rep doctorReport
		var code int
		for deadline := time.Now().Add(30 * time.Second); ; {
			rep, code, _ = runDoctor(t, siteYAML)
			if code == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if code != 0 || !rep.OK || rep.Kind != "site" {
			t.Fatalf("exit %d: %+v", code, rep)
		}
		want := []string{"config", "identity", "trust bundles", "dataset breast-cancer", "policy breast-cancer", "coordinator"}
		var got []string
		for _, c := range rep.Checks {
			got = append(got, c.Name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("checks %v, want %v", got, want)
		}
		out, _, _ := execute(t, "doctor", "--config", siteYAML)
		if !strings.HasPrefix(out, "PASS  config") || strings.Contains(out, "FAIL") {
			t.Errorf("text output:\n%s", out)
		}
	})

	t.Run("a running coordinator passes every check", func(t *testing.T) {
		rep, code, _ := runDoctor(t, coordYAML)
		if code != 0 || !rep.OK {
			t.Fatalf("exit %d: %+v", code, rep)
		}
		if c := findCheck(rep, "listen"); !strings.Contains(c.Detail, "is serving there") {
			t.Errorf("listen: %+v", c)
		}
	})

	// broken writes a variant of the good site.yaml in its own folder
	// (so the relative identity and state paths still resolve) after
	// setup has done its damage there.
	variant := func(t *testing.T, edit func(string) string, setup func(dir string)) string {
		t.Helper()
		vdir := filepath.Join(t.TempDir(), "site")
		if err := os.CopyFS(vdir, os.DirFS(filepath.Join(dir, "paris"))); err != nil {
			t.Fatal(err)
		}
		if setup != nil {
			setup(vdir)
		}
		p := filepath.Join(vdir, "site.yaml")
		if err := os.WriteFile(p, []byte(edit(string(good))), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	same := func(s string) string { return s }

	for _, tc := range []struct {
		name  string
		edit  func(string) string
		setup func(dir string)
		// fails are the checks that must fail, and no other; check is the
		// one whose detail and fix are looked at.
		fails             []string
		check             string
		detail, fix       string
		notInOtherFailing string
	}{
		{
			name: "an expired certificate",
			edit: same,
			setup: func(vdir string) {
				old := ca.Now
				ca.Now = func() time.Time { return time.Now().Add(-3 * time.Hour) }
				defer func() { ca.Now = old }()
				if err := ca.IssueToDir(spiffeid.RequireFromString("spiffe://example.org/site/eu/paris"), time.Hour, filepath.Join(vdir, "identity")); err != nil {
					t.Fatal(err)
				}
			},
			// The coordinator refuses the expired certificate too.
			fails: []string{"identity", "coordinator"}, check: "identity",
			detail: "expired at", fix: "federa dev-ca issue --dir CA --id spiffe://example.org/site/eu/paris --out",
		},
		{
			name: "a bundle from another CA",
			edit: same,
			setup: func(vdir string) {
				other, err := attest.NewCA(spiffeid.RequireTrustDomainFromString("example.org"))
				if err != nil {
					t.Fatal(err)
				}
				if err := other.Save(filepath.Join(vdir, "other")); err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(filepath.Join(vdir, "other", attest.BundleFile))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(vdir, "identity", attest.BundleFile), b, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			// Nor can it verify the coordinator.
			fails: []string{"trust bundles", "coordinator"}, check: "trust bundles",
			detail: "does not chain to the bundle", fix: "bundle.pem must hold the CA that issued svid.pem",
		},
		{
			name: "a missing dataset",
			edit: func(s string) string { return strings.Replace(s, "eu-paris.csv", "eu-pariss.csv", 1) },
			// The agent's own loader refuses it too.
			fails: []string{"config", "dataset breast-cancer"}, check: "dataset breast-cancer",
			detail: "eu-pariss.csv: file not found", fix: "fix datasets[0].path",
		},
		{
			name: "a broken policy",
			edit: func(s string) string {
				return strings.Replace(s, "# policy:\n#   dir: policy\n", "policy:\n  dir: policy\n", 1)
			},
			setup: func(vdir string) {
				if _, errs, code := execute(t, "policy", "init", filepath.Join(vdir, "policy")); code != 0 {
					t.Fatal(errs)
				}
				if err := os.WriteFile(filepath.Join(vdir, "policy", "broken.rego"), []byte("package federa\n\nallow if {\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			fails: []string{"policy"}, check: "policy",
			detail: "broken.rego", fix: "federa policy check",
		},
		{
			name: "a policy that refuses every plain job",
			edit: func(s string) string {
				return strings.Replace(strings.Replace(s, "default_classification: internal", "default_classification: special_category", 1), "jurisdiction: eu", "jurisdiction: us", 1)
			},
			fails: []string{"policy breast-cancer"}, check: "policy breast-cancer",
			detail: "refuses a plain training job", fix: "set default_classification for breast-cancer",
		},
		{
			name: "a site the coordinator does not list",
			edit: same,
			setup: func(vdir string) {
				if err := ca.IssueToDir(spiffeid.RequireFromString("spiffe://example.org/site/us/boston"), time.Hour, filepath.Join(vdir, "identity")); err != nil {
					t.Fatal(err)
				}
			},
			fails: []string{"coordinator"}, check: "coordinator",
			detail: "refused this site's certificate", fix: "sites: must list spiffe://example.org/site/us/boston",
		},
		{
			name:  "an unreachable coordinator",
			edit:  func(s string) string { return strings.Replace(s, addr, freeAddr(t), 1) },
			fails: []string{"coordinator"}, check: "coordinator",
			detail: "connection refused", fix: "is the coordinator running",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := variant(t, tc.edit, tc.setup)
			rep, code, errs := runDoctor(t, cfg)
			if code != 1 || rep.OK {
				t.Fatalf("exit %d (want 1), ok %v: %s", code, rep.OK, errs)
			}
			if got := failedChecks(rep); !slices.Equal(got, tc.fails) {
				t.Errorf("failed checks %v, want %v: %+v", got, tc.fails, rep.Checks)
			}
			c := findCheck(rep, tc.check)
			if !strings.Contains(c.Detail, tc.detail) || !strings.Contains(c.Fix, tc.fix) {
				t.Errorf("check %s: detail %q (want %q), fix %q (want %q)", tc.check, c.Detail, tc.detail, c.Fix, tc.fix)
			}
			if !strings.Contains(errs, "checks failed") {
				t.Errorf("stderr does not sum up: %q", errs)
			}
		})
	}

	t.Run("a coordinator nobody may submit to", func(t *testing.T) {
		body, _ := os.ReadFile(coordYAML)
		p := filepath.Join(dir, "coordinator", "nobody.yaml")
		if err := os.WriteFile(p, []byte(strings.Replace(string(body), "roles: [data-scientist]", "roles: [auditor]", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		rep, code, _ := runDoctor(t, p)
		if code != 1 || !slices.Equal(failedChecks(rep), []string{"users"}) {
			t.Fatalf("exit %d: %+v", code, rep.Checks)
		}
	})

	t.Run("a file that is neither", func(t *testing.T) {
		p := filepath.Join(dir, "neither.yaml")
		if err := os.WriteFile(p, []byte("listen_addr: x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errs, code := execute(t, "doctor", "--config", p)
		if code == 0 || !strings.Contains(errs, "--kind site") {
			t.Fatalf("exit %d: %s", code, errs)
		}
	})
}
