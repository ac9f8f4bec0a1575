package testutil

import (
	"os"
	"strings"
	"testing"
)

// FuzzConfigFile is the body every config loader's fuzz target shares:
// each input is written to path and loaded. It must never panic; a refusal
// names the file; an accepted config passes validate. release frees what
// an accepted config holds (its identity source).
func FuzzConfigFile[C any](f *testing.F, path string, load func(string) (C, error), validate func(C) error, release func(C)) {
	f.Fuzz(func(t *testing.T, content string) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := load(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		defer release(cfg)
		if err := validate(cfg); err != nil {
			t.Fatalf("the loader accepted a config Validate refuses: %v", err)
		}
	})
}

// CloseIdentity closes an identity source that holds resources (a
// directory watcher, a Workload API client).
func CloseIdentity(id any) {
	if c, ok := id.(interface{ Close() error }); ok {
		_ = c.Close()
	}
}
