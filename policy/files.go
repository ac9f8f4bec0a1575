package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
)

// ErrNoPolicy is returned by Load for a folder that holds no .rego file
// (test files aside).
var ErrNoPolicy = errors.New("policy: no .rego files")

// snapshot is every policy and data file of a folder, read once. Loading,
// hashing and compiling all work on the same bytes, so an editor saving
// mid-load can at worst make the load fail, never produce an engine whose
// revision names other contents than it runs.
type snapshot struct {
	files fstest.MapFS // relative slash paths → contents; a ready-made read-only fs.FS
}

// isPolicyFile reports whether the loader reads name: Rego and the data
// formats OPA loads. Everything else (README.md, editor droppings) is ignored.
func isPolicyFile(name string) bool {
	switch path.Ext(name) {
	case ".rego", ".json", ".yaml", ".yml":
		return true
	}
	return false
}

func isTestFile(name string) bool { return strings.HasSuffix(name, "_test.rego") }

// hidden entries are skipped: editors' swap and backup files, and the
// "..data" / "..2025_01_01..." directories Kubernetes uses to swap ConfigMap
// contents atomically (their files are also linked from the folder itself).
func hidden(name string) bool { return strings.HasPrefix(name, ".") }

// readSnapshot reads root of fsys recursively. Test files are kept only when
// withTests is set. Symbolic links to files are followed; links to
// directories are not (no cycles).
func readSnapshot(fsys fs.FS, root string, withTests bool) (*snapshot, error) {
	s := &snapshot{files: fstest.MapFS{}}
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root && hidden(d.Name()) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isPolicyFile(p) || (!withTests && isTestFile(p)) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			info, err := fs.Stat(fsys, p)
			if err != nil {
				return err
			}
			if info.IsDir() {
				return nil
			}
		}
		bs, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		if root == "." {
			rel = p
		}
		s.files[rel] = &fstest.MapFile{Data: bs, Mode: 0o444}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// paths returns the file paths in sorted order.
func (s *snapshot) paths() []string {
	ps := make([]string, 0, len(s.files))
	for p := range s.files {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

func (s *snapshot) hasPolicy() bool {
	for p := range s.files {
		if path.Ext(p) == ".rego" && !isTestFile(p) {
			return true
		}
	}
	return false
}

// revision hashes sorted paths and contents, each length-prefixed so no two
// different folders hash alike: "sha256:<hex>". It depends only on relative
// paths, so the embedded default and a copy of it on disk share a revision.
func (s *snapshot) revision() string {
	h := sha256.New()
	var n [8]byte
	for _, p := range s.paths() {
		for _, part := range [][]byte{[]byte(p), s.files[p].Data} {
			binary.BigEndian.PutUint64(n[:], uint64(len(part)))
			h.Write(n[:])
			h.Write(part)
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// load parses the snapshot's Rego files, named as display/relative path so
// every error and trace names a file the user can open, and merges its data
// files with OPA's loader (directory paths become data paths; conflicting
// files are an error). All parse errors are reported, not just the first.
func (s *snapshot) load(display string) (map[string]*ast.Module, map[string]any, error) {
	var errs ast.Errors
	modules := map[string]*ast.Module{}
	for _, p := range s.paths() {
		if path.Ext(p) != ".rego" {
			continue
		}
		name := joinDisplay(display, p)
		m, err := ast.ParseModuleWithOpts(name, string(s.files[p].Data), ast.ParserOptions{
			RegoVersion:       ast.RegoV1,
			ProcessAnnotation: true,
		})
		if err != nil {
			errs = append(errs, flattenAST(err)...)
			continue
		}
		modules[name] = m
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	res, err := loader.NewFileLoader().
		WithFS(s.files).
		Filtered([]string{"."}, func(_ string, info fs.FileInfo, _ int) bool {
			return !info.IsDir() && path.Ext(info.Name()) == ".rego"
		})
	if err != nil {
		return nil, nil, err
	}
	return modules, res.Documents, nil
}

func flattenAST(err error) ast.Errors {
	switch e := err.(type) {
	case ast.Errors:
		return e
	case *ast.Error:
		return ast.Errors{e}
	}
	return ast.Errors{ast.NewError(ast.ParseErr, nil, "%s", err.Error())}
}

func joinDisplay(dir, name string) string {
	if dir == "." || dir == "" {
		return name
	}
	return filepath.Join(dir, filepath.FromSlash(name))
}
