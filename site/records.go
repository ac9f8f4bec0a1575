package site

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// journal appends JSON lines to a file in the state directory and fsyncs
// each, so a record the site made survives a crash right after.
type journal struct {
	mu   sync.Mutex
	path string
}

func newJournal(stateDir, name string) *journal {
	if stateDir == "" {
		return nil
	}
	return &journal{path: filepath.Join(stateDir, name)}
}

func (j *journal) append(v any) error {
	if j == nil {
		return nil
	}
	line, err := json.Marshal(v)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("append to %s: %w", j.path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("append to %s: %w", j.path, err)
	}
	// Half the record is written, the rest never will be, in a journal whose
	// name matches the pattern it is given (chaos/failpoint_test.go).
	// gofail: var journalTornWrite string
	// if ok, _ := filepath.Match(journalTornWrite, filepath.Base(j.path)); ok { _, _ = f.Write(line[:len(line)/2]); select {} }
	_, err = f.Write(append(line, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		// A partial line would run into the next record and make both
		// unreadable: cut the file back to where this one began.
		if terr := f.Truncate(st.Size()); terr != nil {
			err = errors.Join(err, fmt.Errorf("cut back the partial line: %w", terr))
		}
		return fmt.Errorf("append to %s: %w", j.path, err)
	}
	return nil
}
