package testutil

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildFederaFailpoints builds cmd/federa with its gofail failpoints
// compiled in, as etcd's robustness tests build etcd: the failpoints are
// comments in the production code (`// gofail: var name type`), inert in
// every ordinary build; `gofail enable` (go.etcd.io/gofail, a tool of
// go.mod) rewrites them into calls to gofail's runtime. The rewrite is
// done on a copy of the module in the system's temporary folder (one per
// checkout), never on the checkout. A process of the binary takes failpoints from GOFAIL_FAILPOINTS
// (e.g. "coordBeforeRoundSave=sleep(600000)") and, with GOFAIL_HTTP set to
// a listen address, over HTTP (PUT /name with the terms, GET /name/count
// for how often it fired). Without either it behaves as the ordinary
// build. It returns the binary's path and the cleanup; a failure exits the
// test binary, as BuildFederaOnce's does.
func BuildFederaFailpoints(prefix string) (bin string, cleanup func()) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "federa")
	if err := buildFailpoints(bin); err != nil {
		fmt.Fprintln(os.Stderr, "build federa with failpoints:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	return bin, func() { os.RemoveAll(dir) }
}

func buildFailpoints(bin string) error {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	// The copy lives at one path per checkout, so the build cache (whose
	// keys hold a package's folder) serves every package the last build of
	// the same sources compiled: after the first run only what changed is
	// compiled, and the binary linked. A lock keeps two test processes of
	// one checkout from writing it at once.
	sum := sha256.Sum256([]byte(root))
	src := filepath.Join(os.TempDir(), "federa-failpoints-"+hex.EncodeToString(sum[:6]))
	unlock, err := lockPath(src + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.RemoveAll(src); err != nil {
		return err
	}
	pkgs, err := copyModule(root, src)
	if err != nil {
		return err
	}
	if len(pkgs) == 0 {
		return fmt.Errorf("no package under %s declares a failpoint (// gofail: var …)", root)
	}
	run := func(args ...string) error {
		cmd := exec.Command("go", args...)
		cmd.Dir = src
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.String())
		}
		return nil
	}
	if err := run(append([]string{"tool", "gofail", "enable"}, pkgs...)...); err != nil {
		return err
	}
	return run("build", "-o", bin, "./cmd/federa")
}

// copyModule copies the module's files (not .git, .cache, bin, data or
// symlinks) to dst and returns the package folders ("./site") whose Go
// files declare a failpoint.
func copyModule(root, dst string) ([]string, error) {
	var pkgs []string
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || rel == "bin" || rel == "data") {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") && declaresFailpoint(data) {
			if p := "./" + filepath.ToSlash(filepath.Dir(rel)); !seen[p] {
				seen[p] = true
				pkgs = append(pkgs, p)
			}
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	return pkgs, err
}

// declaresFailpoint says whether Go source holds a line that is a gofail
// declaration. (gofail takes the comment lines right below one as the code
// to run when it fires, so a declaration is followed by code or a blank
// line.)
func declaresFailpoint(src []byte) bool {
	for _, line := range bytes.Split(src, []byte("\n")) {
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte("// gofail: var ")) {
			return true
		}
	}
	return false
}
