package site

import (
	"bytes"
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
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_APPEND|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("append to %s: %w", j.path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("append to %s: %w", j.path, err)
	}
	if err := cutTornTail(f, st.Size()); err != nil {
		return fmt.Errorf("append to %s: %w", j.path, err)
	}
	if st, err = f.Stat(); err != nil {
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

// cutTornTail cuts off a last line that has no newline: a record a crash
// (kill -9, power loss) left half written. Nothing it records happened —
// a record is written before what it records leaves — and a record
// appended after it would run into it, making both unreadable: the
// journal would then miss a release that did leave.
func cutTornTail(f *os.File, size int64) error {
	if size == 0 {
		return nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], size-1); err != nil {
		return fmt.Errorf("read the last record: %w", err)
	}
	if last[0] == '\n' {
		return nil
	}
	// Back to just after the last newline (or the start).
	buf := make([]byte, 4096)
	end := size
	for end > 0 {
		start := max(end-int64(len(buf)), 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil {
			return fmt.Errorf("read the last record: %w", err)
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			end = start + int64(i) + 1
			break
		}
		end = start
	}
	if err := f.Truncate(end); err != nil {
		return fmt.Errorf("cut a half-written last record: %w", err)
	}
	return f.Sync()
}
