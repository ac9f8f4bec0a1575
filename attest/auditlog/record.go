package auditlog

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Each record in entries.log is
//
//	uint32 big-endian length | uint32 big-endian CRC-32C of the bytes | bytes
//
// The checksum is not security (the Merkle tree and signatures are); it
// lets Open tell a torn or zero-filled tail left by a crash from a real
// record, since a length prefix alone would accept zeros as data.
const recordHeaderSize = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord marks a record that cannot be read back: short, zero-length,
// oversized or failing its checksum.
var errBadRecord = errors.New("auditlog: damaged record")

func appendRecord(buf, data []byte) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(data)))
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(data, castagnoli))
	return append(buf, data...)
}

// checkRecord validates a header against the data that follows it.
func checkRecord(hdr [recordHeaderSize]byte, data []byte) error {
	if crc32.Checksum(data, castagnoli) != binary.BigEndian.Uint32(hdr[4:]) {
		return fmt.Errorf("%w: checksum mismatch", errBadRecord)
	}
	return nil
}

func recordLen(hdr [recordHeaderSize]byte) (int, error) {
	n := binary.BigEndian.Uint32(hdr[:4])
	if n == 0 || n > MaxEntrySize {
		return 0, fmt.Errorf("%w: length %d outside 1..%d", errBadRecord, n, MaxEntrySize)
	}
	return int(n), nil
}

// recordReader reads records sequentially.
type recordReader struct {
	r   *bufio.Reader
	off int64 // offset of the next record
	buf []byte
}

func newRecordReader(r io.Reader) *recordReader {
	return &recordReader{r: bufio.NewReaderSize(r, 1<<16)}
}

// next returns the next record's bytes (valid until the following call),
// io.EOF at a clean end, or an error wrapping errBadRecord. After an error
// the reader stays where the bad record starts.
func (rr *recordReader) next() ([]byte, error) {
	var hdr [recordHeaderSize]byte
	n, err := io.ReadFull(rr.r, hdr[:])
	if err == io.EOF {
		return nil, io.EOF
	}
	if err == io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("%w: %d-byte header cut short", errBadRecord, n)
	}
	if err != nil {
		return nil, err
	}
	size, err := recordLen(hdr)
	if err != nil {
		return nil, err
	}
	if cap(rr.buf) < size {
		rr.buf = make([]byte, size)
	}
	data := rr.buf[:size]
	if n, err := io.ReadFull(rr.r, data); err == io.ErrUnexpectedEOF || err == io.EOF {
		return nil, fmt.Errorf("%w: %d of %d bytes present", errBadRecord, n, size)
	} else if err != nil {
		return nil, err
	}
	if err := checkRecord(hdr, data); err != nil {
		return nil, err
	}
	rr.off += recordHeaderSize + int64(size)
	return data, nil
}
