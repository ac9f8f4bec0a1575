package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// guides are the user guides under docs/guides; README links each.
var guides = []string{"data-scientist", "site-operator", "policy-author", "auditor"}

// TestGuides runs every ```sh block of every guide, in order, in one bash
// (so variables and the working directory carry from block to block, as in
// a reader's terminal) with `set -euo pipefail`, in a fresh directory
// holding a link to the repository's testdata/, with the federa built for
// these tests first on PATH. A renamed flag, a changed output a command
// relies on, or a command that now fails breaks this test, not the reader.
// Daemons a guide starts in the background are stopped when it ends.
func TestGuides(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range guides {
		t.Run(g, func(t *testing.T) {
			path := filepath.Join("..", "docs", "guides", g+".md")
			if !bytes.Contains(readme, []byte("docs/guides/"+g+".md")) {
				t.Errorf("README.md does not link %s", path)
			}
			md, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			blocks := shBlocks(string(md))
			if len(blocks) == 0 {
				t.Fatalf("%s has no ```sh blocks", path)
			}
			runGuide(t, path, blocks)
		})
	}
}

type shBlock struct {
	line int // of the opening fence, 1-based
	body string
}

// shBlocks returns the ```sh fenced blocks of a Markdown file.
func shBlocks(md string) []shBlock {
	var out []shBlock
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```sh" {
			continue
		}
		start := i
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		out = append(out, shBlock{line: start + 1, body: strings.Join(body, "\n")})
	}
	return out
}

func runGuide(t *testing.T, path string, blocks []shBlock) {
	dir := t.TempDir()
	testdata, err := filepath.Abs("../testdata")
	if err != nil {
		t.Fatal(err)
	}
	// The guides run from a checkout of the repository: testdata/ is there.
	if err := os.Symlink(testdata, filepath.Join(dir, "testdata")); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(freePort(t), ":")
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for i, b := range blocks {
		// The marker says which block a failure is in.
		fmt.Fprintf(&script, "echo '>>> %s:%d (block %d)'\n%s\n", path, b.line, i+1, b.body)
	}
	script.WriteString("echo '>>> done'\n")

	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(federaBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+dir,
		"FEDERA_COORDINATOR=", "FEDERA_IDENTITY=", "FEDERA_WORKLOAD_API=",
		// A guide that picks a port takes ${PORT:-7443}: a free one here.
		"PORT="+port,
	)
	// Its own process group, so the daemons a guide leaves running in the
	// background are stopped with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { stopGroup(pgid) })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute):
		stopGroup(pgid)
		err = <-done
		err = fmt.Errorf("still running after 5 minutes (%v)", err)
	}
	text := out.String()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(text), ">>> done") {
		last := strings.LastIndex(text, ">>> ")
		where := "(no block started)"
		if last >= 0 {
			where, _, _ = strings.Cut(text[last+4:], "\n")
		}
		t.Fatalf("%s failed in %s: %v\n--- output\n%s\n--- files\n%s", path, where, err, text, logs(dir))
	}
}

// stopGroup ends a process group: SIGTERM, then SIGKILL after a grace.
func stopGroup(pgid int) {
	if syscall.Kill(-pgid, syscall.SIGTERM) != nil {
		return // gone
	}
	for range 100 {
		time.Sleep(100 * time.Millisecond)
		if syscall.Kill(-pgid, 0) != nil {
			return
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// logs is the tail of every *.log a guide wrote, for a failure message.
func logs(dir string) string {
	var b strings.Builder
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".log") || strings.Contains(p, string(filepath.Separator)+"audit"+string(filepath.Separator)) {
			return nil
		}
		data, _ := os.ReadFile(p)
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "== %s\n%s\n", p, data)
		return nil
	})
	return b.String()
}
