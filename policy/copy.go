package policy

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CopyTo writes every file of fsys (such as Default() or a pack) into dir,
// creating it, so a policy author starts from a working, tested policy.
// It refuses to overwrite an existing file.
func CopyTo(fsys fs.FS, dir string) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("write policy file: %w", err)
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return fmt.Errorf("write policy file %s: %w", dst, err)
		}
		return f.Close()
	})
}
