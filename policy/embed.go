package policy

import (
	"embed"
	"io/fs"
)

//go:embed default
var defaultFS embed.FS

//go:embed all:packs
var packsFS embed.FS

//go:embed input.schema.json
var inputSchema []byte

// Default returns the embedded default policy folder (policy/default: its
// .rego files, their _test.rego tests and data.json) as an fs.FS rooted at
// the folder. LoadFS(ctx, Default(), ".") compiles it.
func Default() fs.FS { return sub(defaultFS, "default") }

// Packs returns the embedded example jurisdiction packs, one folder each
// (eu-gdpr-example, us-hipaa-example, sg-pdpa-example), each holding a
// data.json to put in place of the default one. They are examples, not
// legal advice.
func Packs() fs.FS { return sub(packsFS, "packs") }

// InputSchema returns the JSON Schema (draft 2020-12) of the input document.
func InputSchema() []byte { return append([]byte(nil), inputSchema...) }

func sub(fsys fs.FS, dir string) fs.FS {
	s, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // dir is a constant embedded above
	}
	return s
}
