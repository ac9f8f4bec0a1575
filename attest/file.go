package attest

import (
	"os"

	"github.com/federa-dev/federa/internal/fsutil"
)

// WriteFileAtomic writes data to path so a crash leaves either the old file
// or the new one, never half of one (see internal/fsutil).
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	return fsutil.WriteFile(path, data, mode)
}
