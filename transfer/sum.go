package transfer

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"gonum.org/v1/gonum/blas/gonum"

	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// Sum is streaming aggregation: it adds the updates of several transfers
// (one per site, each weighted by its example count) into one weighted
// sum Σ nᵢ·wᵢ as their chunks arrive, so no update is ever held whole.
// Each transfer is a SumStream; a chunk is checked (tensor, shape, order,
// finite values) before any of it is added, and hashed as it passes, so
// the update's digest is known when its last chunk is.
//
// Float32 addition is not associative, so the order in which the sites'
// values meet decides the last bit of the sum. To keep a round
// reproducible (the same updates give the same model, whatever the
// network did), every value is added in the order of its sender's key:
// a stream waits, holding its one chunk, until every sender ranked
// before it has added that far or is out of the round. A sender that
// never starts holds up those ranked after it until it is dropped (Drop)
// or the sum is closed.
//
// What is added cannot be taken out: a transfer that started and is not
// kept when the round closes (it failed midway, or was still sending or
// waiting) spoils the sum: Close says so, and the caller aggregates the
// round another way. Sum is safe for concurrent use by one goroutine per
// stream.
type Sum struct {
	layout models.Weights
	names  []string // tensor order: the order chunks must come in
	prefix []byte   // safetensors header of the layout

	mu      sync.Mutex
	cond    *sync.Cond // signalled when a sender moves on, drops out, or the sum closes
	acc     models.Weights
	rank    map[string]int // the senders, in key order
	slots   []slot         // by rank
	streams map[string]*SumStream
	closed  bool
	// written is how many values, in layout order, hold a sum: the first
	// sender to reach a value writes it (n·x), the rest add to it, so the
	// buffer needs no zeroing and the first pass no read.
	written int64
	adding  int // adds under way outside mu; Close waits for them
}

// slot is one sender's progress: the values it has added, in layout
// order, and whether it is out of the ordering (dropped, failed or done).
type slot struct {
	pos int64
	out bool
}

// NewSum starts a sum of the updates of keys (their senders, e.g. the
// sites asked), shaped like layout. buf, a model the caller no longer
// needs (nil: allocate), is reused where its tensors fit layout (every
// value is overwritten before the sum completes); it must share no memory
// with layout.
func NewSum(layout, buf models.Weights, keys []string) (*Sum, error) {
	if len(layout) == 0 {
		return nil, errors.New("streaming sum: no tensors in the layout")
	}
	prefix, err := models.SafetensorsPrefix(layout)
	if err != nil {
		return nil, fmt.Errorf("streaming sum: %w", err)
	}
	s := &Sum{layout: layout, names: layout.Names(), prefix: prefix, acc: make(models.Weights, len(layout)), streams: map[string]*SumStream{},
		rank: map[string]int{}}
	s.cond = sync.NewCond(&s.mu)
	ks := slices.Clone(keys)
	slices.Sort(ks)
	for i, k := range slices.Compact(ks) {
		s.rank[k] = i
	}
	s.slots = make([]slot, len(s.rank))
	for _, name := range s.names {
		t := layout[name]
		if b := buf[name]; b != nil && slices.Equal(b.Shape, t.Shape) && len(b.Data) == len(t.Data) {
			s.acc[name] = &models.Tensor{Name: name, Shape: b.Shape, Data: b.Data}
		} else {
			s.acc[name] = &models.Tensor{Name: name, Shape: slices.Clone(t.Shape), Data: models.MakeValues(len(t.Data))}
		}
	}
	return s, nil
}

// Stream starts the transfer of key's update (key names its sender, e.g.
// a site), made from examples training examples, whose chunks carry
// transferID.
func (s *Sum) Stream(key, transferID string, examples int64) (*SumStream, error) {
	if examples < 1 {
		return nil, fmt.Errorf("tensor transfer %s: an update from %d training examples", transferID, examples)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("tensor transfer %s: the round's sum is closed", transferID)
	}
	if _, dup := s.streams[key]; dup {
		return nil, fmt.Errorf("tensor transfer %s: %s already sent an update to this sum", transferID, key)
	}
	r, ok := s.rank[key]
	if !ok || s.slots[r].out {
		return nil, fmt.Errorf("tensor transfer %s: %s is not among this sum's senders", transferID, key)
	}
	h := sha256.New()
	h.Write(s.prefix)
	st := &SumStream{sum: s, id: transferID, key: key, rank: r, examples: examples, h: h}
	s.streams[key] = st
	return st, nil
}

// Drop takes key out of the sum's order: it will send nothing (it was
// lost, or answered without an update), so the senders ranked after it
// stop waiting for it. A stream of key that already added values still
// spoils the sum unless it is kept.
func (s *Sum) Drop(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.rank[key]; ok {
		s.slots[r].out = true
		s.cond.Broadcast()
	}
}

// SpoiledError is Close's error when transfers that started are not
// among those kept: the sum may hold parts of updates that must not
// count, and cannot be taken apart.
type SpoiledError struct{ Keys []string }

func (e *SpoiledError) Error() string {
	return "the streaming sum holds part of the updates of " + strings.Join(e.Keys, ", ") + ", which do not count"
}

// Close ends the sum: no chunk is added after it. It returns the
// example-weighted mean of the updates of keep (which must all be
// complete) and their total examples. If any other transfer added to the
// sum, or one of keep is incomplete, the error is a *SpoiledError. The
// mean is the buffer NewSum was given, when it fit; once Close has
// returned nothing writes to that buffer, so the caller may reuse it.
func (s *Sum) Close(keep []string) (models.Weights, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.cond.Broadcast()
	for s.adding > 0 {
		// An add under way finishes (its values are counted only if its
		// stream completes); after Close nothing writes to the sum.
		s.cond.Wait()
	}
	var spoiled []string
	var total int64
	for key, st := range s.streams {
		kept := slices.Contains(keep, key)
		switch {
		case kept && st.done:
			total += st.examples
		case !kept && st.finished && !st.added:
			// Refused at its first chunk: nothing of it is in the sum.
		default:
			// Kept and incomplete, or not kept: it added values, or may
			// have been held back by the order and deserves another go.
			spoiled = append(spoiled, key)
		}
	}
	for _, key := range keep {
		if s.streams[key] == nil {
			spoiled = append(spoiled, key)
		}
	}
	if len(spoiled) > 0 {
		sort.Strings(spoiled)
		return nil, 0, &SpoiledError{Keys: spoiled}
	}
	if total < 1 {
		return nil, 0, errors.New("streaming sum: no update to average")
	}
	var blas gonum.Implementation
	inv := float32(1 / float64(total))
	for _, t := range s.acc {
		if len(t.Data) > 0 {
			blas.Sscal(len(t.Data), inv, t.Data, 1)
		}
	}
	return s.acc, total, nil
}

// SumStream is one transfer into a Sum. Its Add is called by one
// goroutine at a time.
type SumStream struct {
	sum      *Sum
	id, key  string
	rank     int
	examples int64
	h        hash.Hash
	tensor   int  // index in sum.names of the tensor being received
	filled   int  // its values received
	added    bool // some values reached the sum (guarded by sum.mu)
	done     bool // the last chunk arrived (guarded by sum.mu)
	finished bool // written under sum.mu; its own goroutine reads it without
	scratch  []float32
}

// Add checks the next chunk and adds its values, times the stream's
// examples, to the sum. It returns true once the transfer is complete.
// Chunks must come in the order ChunkWeights makes them: tensors in name
// order, offsets ascending, every value finite.
func (st *SumStream) Add(c *federav1.TensorChunk) (bool, error) {
	if st.finished {
		return true, fmt.Errorf("tensor transfer %s: chunk after the last one", st.id)
	}
	if c.GetTransferId() != st.id {
		return false, fmt.Errorf("tensor transfer %s: chunk belongs to transfer %q", st.id, c.GetTransferId())
	}
	if c.GetRing() {
		return false, fmt.Errorf("tensor transfer %s: a ring chunk where float32 weights belong", st.id)
	}
	done, err := st.addChunk(c)
	if err != nil {
		// Out of the order, so no sender waits for it; if it added
		// anything, Close finds the sum spoiled.
		s := st.sum
		s.mu.Lock()
		s.slots[st.rank].out = true
		st.finished = true // under the lock: Close reads it
		s.cond.Broadcast()
		s.mu.Unlock()
	}
	return done, err
}

func (st *SumStream) addChunk(c *federav1.TensorChunk) (bool, error) {
	if c.GetName() == "" && (len(c.GetData()) > 0 || len(c.GetShape()) > 0) {
		return false, fmt.Errorf("tensor transfer %s: chunk with data but no tensor name", st.id)
	}
	if c.GetName() != "" {
		if err := st.add(c); err != nil {
			return false, fmt.Errorf("tensor transfer %s: tensor %q: %w", st.id, c.GetName(), err)
		}
	}
	if !c.GetLast() {
		return false, nil
	}
	s := st.sum
	for i := st.tensor; i < len(s.names); i++ {
		want, have := len(s.layout[s.names[i]].Data), 0
		if i == st.tensor {
			have = st.filled
		}
		if have != want {
			return false, fmt.Errorf("tensor transfer %s: tensor %q ended with %d of %d values", st.id, s.names[i], have, want)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, fmt.Errorf("tensor transfer %s: the round's sum closed before the update was complete", st.id)
	}
	st.done, st.finished = true, true
	s.slots[st.rank].out = true
	s.cond.Broadcast()
	return true, nil
}

func (st *SumStream) add(c *federav1.TensorChunk) error {
	s := st.sum
	name := c.GetName()
	if cur := s.names[st.tensor]; name != cur {
		// The tensor being received is complete (or empty, and its
		// chunk skipped): the next one in name order may start.
		next := st.tensor + 1
		for next < len(s.names) && s.names[next] != name && len(s.layout[s.names[next]].Data) == 0 {
			next++
		}
		if st.filled != len(s.layout[cur].Data) || next >= len(s.names) || s.names[next] != name {
			if _, ok := s.layout[name]; !ok {
				return errors.New("the model has no such tensor")
			}
			return fmt.Errorf("arrived while %q (%d of %d values) was due: tensors must come in name order", cur, st.filled, len(s.layout[cur].Data))
		}
		st.tensor, st.filled = next, 0
	}
	t := s.layout[name]
	if !sameShape(t.Shape, c.GetShape()) {
		return fmt.Errorf("shape %v, want %v", c.GetShape(), t.Shape)
	}
	if c.GetOffset() != int64(st.filled) {
		return fmt.Errorf("chunk at offset %d, want %d (chunks must arrive in order)", c.GetOffset(), st.filled)
	}
	data := c.GetData()
	if len(data)%4 != 0 {
		return fmt.Errorf("payload of %d bytes is not whole float32 values", len(data))
	}
	n := len(data) / 4
	if st.filled+n > len(t.Data) {
		return fmt.Errorf("chunk overruns the tensor (%d+%d > %d values)", st.filled, n, len(t.Data))
	}
	var x []float32
	if littleEndian && n > 0 && uintptr(unsafe.Pointer(&data[0]))%4 == 0 {
		// The payload is the values' memory image: read in place.
		x = unsafe.Slice((*float32)(unsafe.Pointer(&data[0])), n)
	} else {
		if cap(st.scratch) < n {
			st.scratch = make([]float32, n)
		}
		x = st.scratch[:n]
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
	}
	for i, v := range x {
		if v-v != 0 { // NaN or ±Inf
			return fmt.Errorf("non-finite value %v at index %d", v, st.filled+i)
		}
	}
	st.h.Write(data)
	s.mu.Lock()
	// Every sender ranked before this one adds these values first.
	start := s.slots[st.rank].pos
	end := start + int64(n)
	for r := 0; r < st.rank && !s.closed; {
		if o := &s.slots[r]; o.out || o.pos >= end {
			r++
			continue
		}
		s.cond.Wait()
		r = 0
	}
	if s.closed {
		s.mu.Unlock()
		return errors.New("the round's sum closed before the update was complete")
	}
	if n == 0 {
		s.mu.Unlock()
		return nil
	}
	// Those ranked after this one wait for its pos, and it has added
	// every value before start, so these values are this stream's alone
	// until it moves pos: the arithmetic runs outside the lock, beside
	// the other streams'. The first to reach a value writes it.
	held := int(min(max(s.written-start, 0), int64(n))) // values [0, held) hold a sum already
	s.written = max(s.written, end)
	s.adding++
	st.added = true
	s.mu.Unlock()

	y := s.acc[name].Data[st.filled : st.filled+n]
	a := float32(st.examples)
	if held > 0 {
		var blas gonum.Implementation
		blas.Saxpy(held, a, x[:held], 1, y[:held], 1)
	}
	for i, v := range x[held:] {
		// + 0 as the added zero of a zeroed sum would: -0 becomes +0, so
		// the bits are those of 0 + a·x.
		y[held+i] = a*v + 0
	}
	st.filled += n

	s.mu.Lock()
	s.adding--
	s.slots[st.rank].pos = end
	s.cond.Broadcast()
	s.mu.Unlock()
	return nil
}

// Digest is the update's "sha256:…" once Add has returned true: the
// SHA-256 of models.EncodeWeights of the update, the same digest the
// sender computes over what it sent.
func (st *SumStream) Digest() string {
	return "sha256:" + hex.EncodeToString(st.h.Sum(nil))
}
