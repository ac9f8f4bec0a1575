package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/util"
)

// Problems is every problem Check found, each naming its file and line.
type Problems []error

func (p Problems) Error() string {
	lines := make([]string, len(p))
	for i, e := range p {
		lines[i] = e.Error()
	}
	if len(p) == 1 {
		return lines[0]
	}
	return fmt.Sprintf("%d problems:\n%s", len(p), strings.Join(lines, "\n"))
}

func (p Problems) Unwrap() []error { return p }

// Check is `federa policy check DIR`: it parses every file under dir (tests
// included), then compiles strictly like `opa check --strict DIR`, then — if
// that passed — evaluates data.federa.config_errors. It returns nil or one
// error (Problems underneath) listing every problem as file:line: message.
// A folder of data files only (a jurisdiction pack) passes when they parse.
func Check(ctx context.Context, dir string) error {
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("check site policy %q: %w", dir, err)
	}
	if err := check(ctx, os.DirFS(dir), ".", dir); err != nil {
		return fmt.Errorf("check site policy %q: %w", dir, err)
	}
	return nil
}

// CheckFS is Check for a folder of an fs.FS.
func CheckFS(ctx context.Context, fsys fs.FS, name string) error {
	if err := check(ctx, fsys, name, name); err != nil {
		return fmt.Errorf("check site policy %q: %w", name, err)
	}
	return nil
}

func check(ctx context.Context, fsys fs.FS, root, display string) error {
	snap, err := readSnapshot(fsys, root, true)
	if err != nil {
		return err
	}
	var problems Problems
	for _, p := range snap.paths() {
		if err := parseFile(joinDisplay(display, p), snap.files[p].Data); err != nil {
			problems = append(problems, flatten(err)...)
		}
	}
	if len(problems) > 0 {
		return problems
	}
	compiler, store, err := compile(ctx, snap, display)
	if err != nil {
		return Problems(flatten(err))
	}
	if err := configErrors(ctx, compiler, store); err != nil {
		return err
	}
	return nil
}

// parseFile reports the first syntax error of one file with its line.
func parseFile(name string, src []byte) error {
	switch path.Ext(name) {
	case ".rego":
		_, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
		return err
	case ".json":
		var v any
		if err := json.Unmarshal(src, &v); err != nil {
			var syn *json.SyntaxError
			if errors.As(err, &syn) {
				return fmt.Errorf("%s:%d: %w", name, lineAt(src, syn.Offset), err)
			}
			var typ *json.UnmarshalTypeError
			if errors.As(err, &typ) {
				return fmt.Errorf("%s:%d: %w", name, lineAt(src, typ.Offset), err)
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		if _, ok := v.(map[string]any); !ok {
			return fmt.Errorf("%s:1: a data file must hold an object, not %s", name, typeName(v))
		}
	default: // .yaml, .yml
		var v any
		if err := util.Unmarshal(src, &v); err != nil {
			return fmt.Errorf("%s: %w", name, err) // the YAML error names the line
		}
		if _, ok := v.(map[string]any); !ok && v != nil {
			return fmt.Errorf("%s:1: a data file must hold an object, not %s", name, typeName(v))
		}
	}
	return nil
}

func lineAt(src []byte, offset int64) int {
	if offset > int64(len(src)) {
		offset = int64(len(src))
	}
	return 1 + bytes.Count(src[:offset], []byte("\n"))
}

// flatten splits error lists into one error per problem.
func flatten(err error) []error {
	switch e := err.(type) {
	case Problems:
		return e
	case ast.Errors:
		out := make([]error, len(e))
		for i, x := range e {
			out[i] = x
		}
		return out
	case loader.Errors:
		return e
	}
	return []error{err}
}
