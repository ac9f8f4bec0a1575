package policy

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"
)

var defaultEngine = sync.OnceValues(func() (*Engine, error) {
	return LoadFS(context.Background(), Default(), ".")
})

// loadDefault returns the default policy's engine, compiled once per run.
func loadDefault(t testing.TB) *Engine {
	t.Helper()
	e, err := defaultEngine()
	if err != nil {
		t.Fatalf("load default policy: %v", err)
	}
	return e
}

// defaultFiles returns a writable copy of the default policy folder.
func defaultFiles(t testing.TB) fstest.MapFS {
	t.Helper()
	files := fstest.MapFS{}
	err := fs.WalkDir(Default(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		bs, err := fs.ReadFile(Default(), p)
		files[p] = &fstest.MapFile{Data: bs}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// withSiteData returns the default policy with data.federa changed by edit.
func withSiteData(t testing.TB, edit func(federa map[string]any)) *Engine {
	t.Helper()
	files := defaultFiles(t)
	var doc map[string]any
	if err := json.Unmarshal(files["data.json"].Data, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc["federa"].(map[string]any))
	bs, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	files["data.json"] = &fstest.MapFile{Data: bs}
	e, err := LoadFS(context.Background(), files, ".")
	if err != nil {
		t.Fatalf("load default policy with edited data: %v", err)
	}
	return e
}

// writeFiles writes files (slash paths) under dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// copyDefault writes the default policy folder to dir.
func copyDefault(t testing.TB, dir string) {
	t.Helper()
	files := map[string]string{}
	for name, f := range defaultFiles(t) {
		files[name] = string(f.Data)
	}
	writeFiles(t, dir, files)
}
