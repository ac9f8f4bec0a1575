package transfer

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// SplitMessage returns m as fragments of id when its encoding is larger
// than federav1.MaxWholeMessageBytes, or nil when it goes whole. The
// fragments carry the deterministic encoding in order, at most maxBytes
// each (federav1.MaxChunkBytes when maxBytes ≤ 0); the last has Last set.
func SplitMessage(id string, m proto.Message, maxBytes int) ([]*federav1.Fragment, error) {
	if proto.Size(m) <= federav1.MaxWholeMessageBytes {
		return nil, nil
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode a %d-byte message for fragments: %w", proto.Size(m), err)
	}
	return Fragments(id, b, maxBytes), nil
}

// Fragments splits b into fragments of id of at most maxBytes each
// (federav1.MaxChunkBytes when maxBytes ≤ 0). The fragments share b's
// memory. Empty b gives one empty fragment with Last set.
func Fragments(id string, b []byte, maxBytes int) []*federav1.Fragment {
	if maxBytes <= 0 {
		maxBytes = federav1.MaxChunkBytes
	}
	out := make([]*federav1.Fragment, 0, len(b)/maxBytes+1)
	for off := 0; off < len(b) || off == 0; off += maxBytes {
		end := min(off+maxBytes, len(b))
		out = append(out, &federav1.Fragment{Id: id, Offset: int64(off), Data: b[off:end]})
		if end == len(b) {
			break
		}
	}
	out[len(out)-1].Last = true
	return out
}

// MaxOpenMessages bounds the messages partly received on one stream at
// once: a site sends at most a few big answers side by side.
const MaxOpenMessages = 64

// Reassembler joins the fragments of the messages on one stream, checking
// every fragment so a malformed or hostile stream is an error, never a
// panic or an unbounded allocation: fragments of one message must arrive
// in order, at most MaxOpenMessages may be partly received at once, and
// together they hold at most the reassembler's limit of bytes.
type Reassembler struct {
	limit   int64
	held    int64
	partial map[string][]byte
}

// NewReassembler holds at most limit bytes of partly received messages
// (federav1.MaxFragmentedBytes when limit ≤ 0).
func NewReassembler(limit int64) *Reassembler {
	if limit <= 0 {
		limit = federav1.MaxFragmentedBytes
	}
	return &Reassembler{limit: limit, partial: map[string][]byte{}}
}

// Add takes the next fragment. It returns the message's whole encoding
// when f is its last fragment, else nil.
func (r *Reassembler) Add(f *federav1.Fragment) ([]byte, error) {
	id := f.GetId()
	b, open := r.partial[id]
	if f.GetOffset() != int64(len(b)) {
		r.drop(id)
		return nil, fmt.Errorf("message fragment %q at offset %d, want %d (fragments must arrive in order)", id, f.GetOffset(), len(b))
	}
	n := int64(len(f.GetData()))
	if r.held+n > r.limit {
		r.drop(id)
		return nil, fmt.Errorf("message fragment %q: partly received messages would exceed %d bytes", id, r.limit)
	}
	if f.GetLast() {
		r.drop(id)
		if !open {
			return f.GetData(), nil
		}
		return append(b, f.GetData()...), nil
	}
	if !open && len(r.partial) >= MaxOpenMessages {
		return nil, fmt.Errorf("message fragment %q: already %d messages partly received on this stream", id, MaxOpenMessages)
	}
	r.partial[id] = append(b, f.GetData()...)
	r.held += n
	return nil, nil
}

// drop forgets a partly received message.
func (r *Reassembler) drop(id string) {
	r.held -= int64(len(r.partial[id]))
	delete(r.partial, id)
}

// Held is the bytes of partly received messages.
func (r *Reassembler) Held() int64 { return r.held }
