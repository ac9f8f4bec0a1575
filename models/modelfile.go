package models

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/federa-dev/federa/internal/fsutil"
)

// SaveModel writes m to path atomically: it writes a temporary file in the
// same directory, fsyncs it and renames it over path, so readers see either
// the old file or the complete new one, never a torn write. The file is
// created with mode 0644 because model files are meant to be shared.
func SaveModel(path string, m *Model) error {
	// Validate before touching the filesystem; WriteSafetensors checks
	// again, but failing here leaves no temporary file to clean up.
	if err := m.Validate(); err != nil {
		return fmt.Errorf("saving model %s: invalid model: %w", path, err)
	}
	if err := fsutil.Write(path, 0o644, func(w io.Writer) error { return WriteSafetensors(w, m) }); err != nil {
		return fmt.Errorf("saving model: %w", err)
	}
	return nil
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
