// Package fsutil writes files so a crash leaves either the old content or
// the new, never half of it: a temporary file in the same directory,
// fsynced, then renamed (or linked, for create-only) into place, and the
// directory fsynced so the rename itself survives.
package fsutil

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	return Write(path, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write replaces path with what fill writes.
func Write(path string, mode os.FileMode, fill func(w io.Writer) error) error {
	tmp, err := temp(path, mode, fill)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// The new content is whole in tmp, path still holds the old: a write
	// of a file whose name matches the pattern it is given stops here for
	// good (chaos/failpoint_test.go).
	// gofail: var fsutilBeforeRename string
	// if ok, _ := filepath.Match(fsutilBeforeRename, filepath.Base(path)); ok { select {} }
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// CreateExclusive writes path only if it does not exist yet. Linking a
// fully written temporary file makes creation atomic, so two processes
// racing to create the same file (a key, say) cannot both win; the loser
// gets an error wrapping fs.ErrExist.
func CreateExclusive(path string, data []byte, mode os.FileMode) error {
	tmp, err := temp(path, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// temp writes a synced temporary file beside path and returns its name.
func temp(path string, mode os.FileMode, fill func(w io.Writer) error) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	bw := bufio.NewWriter(f)
	err = f.Chmod(mode)
	if err == nil {
		err = fill(bw)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// SyncDir makes a directory's entries (created or renamed files) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// RemoveTemps removes the temporary files that Write left in dir for the
// files whose names match the glob pattern name: a crash between writing
// one and renaming it into place leaves it behind, and what it held never
// took effect. It returns the files removed. The caller must hold
// whatever keeps other processes from writing those files meanwhile
// (the directory's lock), or it could remove a write in progress.
func RemoveTemps(dir, name string) ([]string, error) {
	stale, err := filepath.Glob(filepath.Join(dir, "."+name+".tmp-*"))
	if err != nil {
		return nil, fmt.Errorf("remove temporary files %s in %s: %w", name, dir, err)
	}
	var removed []string
	for _, s := range stale {
		if err := os.Remove(s); err != nil && !os.IsNotExist(err) {
			return removed, fmt.Errorf("remove temporary file: %w", err)
		}
		removed = append(removed, s)
	}
	return removed, nil
}
