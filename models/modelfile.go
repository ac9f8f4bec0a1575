package models

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
)

// SaveModel writes m to path atomically: it writes a temporary file in the
// same directory, fsyncs it and renames it over path, so readers see either
// the old file or the complete new one, never a torn write. The file is
// created with mode 0644 because model files are meant to be shared.
func SaveModel(path string, m *Model) (err error) {
	// Validate before touching the filesystem; WriteSafetensors checks
	// again, but failing here leaves no temporary file to clean up.
	if err := m.Validate(); err != nil {
		return fmt.Errorf("saving model %s: invalid model: %w", path, err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("saving model %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()

	bw := bufio.NewWriter(f)
	if err := WriteSafetensors(bw, m); err != nil {
		return fmt.Errorf("saving model %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("saving model %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("saving model %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("saving model %s: syncing: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("saving model %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("saving model %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes the rename durable across a crash. It is best effort: some
// platforms and filesystems cannot fsync a directory, and by this point the
// new file is already complete and in place.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}

// LoadModel reads and validates the model file at path.
func LoadModel(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("loading model %s: %w", path, err)
	}
	defer f.Close()
	m, err := ReadSafetensors(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("loading model %s: %w", path, err)
	}
	return m, nil
}
