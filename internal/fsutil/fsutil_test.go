package fsutil

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAndCreateExclusive(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, data := range []string{"first", "second"} {
		if err := WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != data {
			t.Fatalf("read %q, want %q", b, data)
		}
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	if err := CreateExclusive(p, []byte("third"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("CreateExclusive over an existing file: %v", err)
	}
	if err := CreateExclusive(filepath.Join(dir, "g"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Fatal("wrote into a missing directory")
	}
}

// TestRemoveTemps: the temporary file a write left before its rename goes;
// the files themselves and other files' temporaries stay.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	fill := func(w io.Writer) error { _, err := io.WriteString(w, "x"); return err }
	left, err := temp(filepath.Join(dir, "00000000000000000007.txt"), 0o600, fill)
	if err != nil {
		t.Fatal(err)
	}
	other, err := temp(filepath.Join(dir, "privacy.json"), 0o600, fill)
	if err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(dir, "00000000000000000003.txt")
	if err := WriteFile(kept, []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveTemps(dir, "*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != left {
		t.Fatalf("removed %v, want [%s]", removed, left)
	}
	for _, p := range []string{other, kept} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if _, err := os.Stat(left); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s still there: %v", left, err)
	}
}
