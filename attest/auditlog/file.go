package auditlog

import (
	"os"

	"github.com/federa-dev/federa/internal/fsutil"
)

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	return fsutil.WriteFile(path, data, mode)
}

func createFileExclusive(path string, data []byte, mode os.FileMode) error {
	return fsutil.CreateExclusive(path, data, mode)
}

func syncDir(dir string) error { return fsutil.SyncDir(dir) }
