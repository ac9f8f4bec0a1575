package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
)

// TestDocumentedSiteYAMLWorks: the site.yaml in `federa site --help` and
// the one in the README load, explain default_classification, and admit a
// plain job under the built-in policy. A reader who copies either gets a
// site that runs jobs, not one that refuses every job.
func TestDocumentedSiteYAMLWorks(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	fromReadme, ok := readmeSiteYAML(string(readme))
	if !ok {
		t.Fatal("README.md has no site.yaml example after its <!-- tested: cli TestDocumentedSiteYAMLWorks --> marker")
	}
	cmd := newSiteCmd(&globals{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	_, after, ok := strings.Cut(cmd.Example, "  # site.yaml\n")
	if !ok {
		t.Fatal("federa site --help has no '# site.yaml' example")
	}
	var help []string
	for _, l := range strings.Split(after, "\n") {
		help = append(help, strings.TrimPrefix(l, "  "))
	}
	for _, ex := range []struct{ name, yaml string }{{"README.md", fromReadme}, {"federa site --help", strings.Join(help, "\n") + "\n"}} {
		t.Run(ex.name, func(t *testing.T) {
			if !strings.Contains(ex.yaml, "default_classification:") || !strings.Contains(ex.yaml, "# The class of every column") {
				t.Fatalf("the example does not set and explain default_classification:\n%s", ex.yaml)
			}
			dir := t.TempDir()
			ca, err := attest.NewCA(spiffeid.RequireTrustDomainFromString("example.org"))
			if err != nil {
				t.Fatal(err)
			}
			if err := ca.IssueToDir(spiffeid.RequireFromString("spiffe://example.org/site/eu/paris"), time.Hour, filepath.Join(dir, "id")); err != nil {
				t.Fatal(err)
			}
			data, err := filepath.Abs("../testdata/breast-cancer/eu-paris.csv")
			if err != nil {
				t.Fatal(err)
			}
			body := ex.yaml
			// The example's absolute paths, pointed at this test's files.
			for from, to := range map[string]string{
				"/etc/federa/identity":    filepath.Join(dir, "id"),
				"/data/breast-cancer.csv": data,
				"/var/lib/federa/site":    filepath.Join(dir, "state"),
			} {
				if !strings.Contains(body, from) {
					t.Fatalf("the example no longer holds %s; update this test with it:\n%s", from, body)
				}
				body = strings.ReplaceAll(body, from, to)
			}
			siteYAML := filepath.Join(dir, "site.yaml")
			job := filepath.Join(dir, "job.yaml")
			if err := os.WriteFile(siteYAML, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(job, []byte("name: j\ndataset: breast-cancer\nlabel: label\nmodel: {type: logreg}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			out, errs, code := execute(t, "policy", "eval", "--site", siteYAML, "--job", job)
			if code != 0 || !strings.HasPrefix(out, "ALLOW at eu/paris") {
				t.Fatalf("the documented site.yaml does not admit a plain job: exit %d\n%s%s\n--- site.yaml\n%s", code, out, errs, ex.yaml)
			}
		})
	}
}

// readmeSiteYAML is the yaml block after the README's test marker.
func readmeSiteYAML(readme string) (string, bool) {
	_, after, ok := strings.Cut(readme, "<!-- tested: cli TestDocumentedSiteYAMLWorks")
	if !ok {
		return "", false
	}
	_, after, ok = strings.Cut(after, "```yaml\n")
	if !ok {
		return "", false
	}
	block, _, ok := strings.Cut(after, "```")
	return block, ok
}
