package auditlog

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"
)

// Export writes every entry as one JSON object per line:
//
//	{"index":0,"leaf":"<base64 of the exact leaf bytes>","entry":{…}}
//
// "entry" is the leaf itself (canonical JSON is readable JSON), so the line
// is both what a person reads and what a verifier hashes. Export takes a
// snapshot of the current size; entries appended meanwhile are not written.
func (l *Log) Export(w io.Writer) error {
	size := l.Size()
	bw := bufio.NewWriterSize(w, 1<<16)
	var line []byte
	for i := int64(0); i < size; i++ {
		leaf, err := l.Entry(i)
		if err != nil {
			return fmt.Errorf("export audit log: %w", err)
		}
		line = appendExportLine(line[:0], i, leaf)
		if _, err := bw.Write(line); err != nil {
			return fmt.Errorf("export audit log: entry %d: %w", i, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export audit log: %w", err)
	}
	return nil
}

// appendExportLine builds a line by hand so that its bytes are fixed by
// this function alone and VerifyExport can demand exactly them.
func appendExportLine(b []byte, index int64, leaf []byte) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, index, 10)
	b = append(b, `,"leaf":"`...)
	b = base64.StdEncoding.AppendEncode(b, leaf)
	b = append(b, `","entry":`...)
	b = append(b, leaf...)
	return append(b, "}\n"...)
}

type exportLine struct {
	Index *int64          `json:"index"`
	Leaf  string          `json:"leaf"`
	Entry json.RawMessage `json:"entry"`
}

// VerifyExport checks an export (as Export writes it) against a checkpoint,
// for an auditor who has nothing else: the checkpoint must be signed by
// logKey (and co-signed by every witness key given), every line must be
// exactly as Export writes it with consecutive indexes, every leaf a
// canonical Entry, and the tree of the first checkpoint-size entries must
// hash to the signed root. Entries beyond the checkpoint are reported as
// Unvouched.
//
// A line that was edited is named exactly. Consistently rewritten entries
// change only the root, and one checkpoint cannot say which entry changed:
// the error then names entry 0, the first one not vouched for.
func VerifyExport(r io.Reader, checkpoint []byte, logKey string, witnessKeys ...string) (*Report, error) {
	cp, err := VerifyCheckpoint(checkpoint, logKey, witnessKeys...)
	if err != nil {
		return nil, &VerifyError{Index: -1, Checkpoint: -1, Reason: err.Error()}
	}
	rep := &Report{Origin: cp.Origin, Witnessed: map[string]int64{}}
	for _, w := range cp.Witnesses {
		rep.Witnessed[w] = cp.Size
	}
	var p problems
	tree := &memTree{}
	br := bufio.NewReaderSize(r, 1<<16)
	for i := int64(0); ; i++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			break
		}
		if err != nil && err != io.EOF {
			return rep, fmt.Errorf("verify export: read line %d: %w", i+1, err)
		}
		leaf, reason := checkExportLine(line, i)
		if reason != "" {
			p.add(i, -1, "line %d: %s", i+1, reason)
			break
		}
		if err := tree.add(tlog.RecordHash(leaf)); err != nil {
			return rep, fmt.Errorf("verify export: %w", err)
		}
	}
	n := tree.n
	rep.Size = n
	if rep.Root, err = tree.root(n); err != nil {
		return rep, fmt.Errorf("verify export: %w", err)
	}
	switch {
	case cp.Size > n:
		p.add(n, cp.Size, "the export ends after %d entries but the checkpoint covers %d", n, cp.Size)
	default:
		root, err := tree.root(cp.Size)
		if err != nil {
			return rep, fmt.Errorf("verify export: %w", err)
		}
		if root != cp.Root {
			p.add(0, cp.Size, "entries 0 to %d do not hash to the root signed in the checkpoint; a single checkpoint cannot say which changed", cp.Size-1)
		}
	}
	if err := p.err(); err != nil {
		return rep, err
	}
	rep.Checkpoints = 1
	rep.LatestCheckpoint = cp.Size
	rep.Unvouched = n - cp.Size
	return rep, nil
}

// checkExportLine returns the leaf of a line, or why the line is wrong.
func checkExportLine(line []byte, want int64) ([]byte, string) {
	if !bytes.HasSuffix(line, []byte("\n")) {
		return nil, "cut short (no newline)"
	}
	var el exportLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&el); err != nil {
		return nil, fmt.Sprintf("not an export line: %v", err)
	}
	if el.Index == nil {
		return nil, "no index"
	}
	if *el.Index != want {
		return nil, fmt.Sprintf("index %d where %d belongs (lines removed, added or reordered)", *el.Index, want)
	}
	// Strict: one leaf, one spelling, so a flipped padding bit is caught.
	leaf, err := base64.StdEncoding.Strict().DecodeString(el.Leaf)
	if err != nil {
		return nil, fmt.Sprintf("leaf: %v", err)
	}
	if _, err := ParseEntry(leaf); err != nil {
		return nil, err.Error()
	}
	if !bytes.Equal(line, appendExportLine(nil, want, leaf)) {
		return nil, "differs from the line Export writes for its leaf (the entry field was edited?)"
	}
	return leaf, ""
}
