package transfer_test

import (
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/transfer"
)

// frame encodes chunks as the fuzz input: each a varint length and a
// marshalled TensorChunk.
func frame(t testing.TB, chunks []*federav1.TensorChunk) []byte {
	var b []byte
	for _, c := range chunks {
		data, err := proto.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		b = protowire.AppendBytes(b, data)
	}
	return b
}

// FuzzAssembler feeds arbitrary chunk sequences to an Assembler, as a
// hostile peer could. It must never panic or allocate beyond its limit,
// and whatever it completes must be consistent weights.
func FuzzAssembler(f *testing.F) {
	const limit = 1 << 12
	good := models.Weights{
		"bias":   {Name: "bias", Shape: []int{3}, Data: []float32{1, 2, 3}},
		"weight": {Name: "weight", Shape: []int{3, 4}, Data: make([]float32, 12)},
		"zero":   {Name: "zero", Shape: []int{0, 5}},
	}
	f.Add(frame(f, transfer.ChunkWeights("t", good, 8)))
	f.Add(frame(f, transfer.ChunkWeights("t", good, 0)))
	f.Add(frame(f, transfer.ChunkWeights("t", nil, 0)))
	f.Add(frame(f, transfer.ChunkWeights("other", good, 0)))
	f.Add(frame(f, []*federav1.TensorChunk{
		{TransferId: "t", Name: "w", Shape: []int64{1 << 40, 1 << 40}},
		{TransferId: "t", Name: "w", Shape: []int64{2}, Offset: 1, Data: []byte{1, 2, 3}, Last: true},
	}))
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, in []byte) {
		a := transfer.NewAssembler("t", limit)
		done := false
		for len(in) > 0 {
			data, n := protowire.ConsumeBytes(in)
			if n < 0 {
				return
			}
			in = in[n:]
			var c federav1.TensorChunk
			if proto.Unmarshal(data, &c) != nil {
				continue
			}
			ok, err := a.Add(&c)
			if done && err == nil {
				t.Fatal("Add accepted a chunk after the transfer completed")
			}
			if err != nil {
				if ok && !done {
					t.Fatalf("Add reported done together with error %v", err)
				}
				return
			}
			done = ok
		}
		if !done {
			return
		}
		total := 0
		for name, tn := range a.Weights() {
			if tn.Name != name {
				t.Fatalf("tensor %q has Name %q", name, tn.Name)
			}
			n := 1
			for _, d := range tn.Shape {
				if d < 0 {
					t.Fatalf("tensor %q has shape %v", name, tn.Shape)
				}
				n *= d
			}
			if n != len(tn.Data) {
				t.Fatalf("tensor %q has shape %v but %d values", name, tn.Shape, len(tn.Data))
			}
			total += n
		}
		if total > limit {
			t.Fatalf("assembled %d values, limit %d", total, limit)
		}
		// Completed weights chunk and assemble back to themselves.
		b := transfer.NewAssembler("t", limit)
		for _, c := range transfer.ChunkWeights("t", a.Weights(), 16) {
			if _, err := b.Add(c); err != nil {
				t.Fatalf("re-chunked weights refused: %v", err)
			}
		}
	})
}

// FuzzReassembler feeds arbitrary fragment sequences to a Reassembler, as
// a hostile peer could: it must never panic, hold more than its limit or
// more than MaxOpenMessages messages, and a message it completes is
// exactly the bytes of that message's fragments in order.
func FuzzReassembler(f *testing.F) {
	const limit = 1 << 10
	frag := func(fs []*federav1.Fragment) []byte {
		var b []byte
		for _, x := range fs {
			data, err := proto.Marshal(x)
			if err != nil {
				f.Fatal(err)
			}
			b = protowire.AppendBytes(b, data)
		}
		return b
	}
	f.Add(frag(transfer.Fragments("a", []byte("hello, fragmented world"), 4)))
	f.Add(frag(append(transfer.Fragments("a", []byte("0123456789"), 3), transfer.Fragments("b", []byte("xyz"), 1)...)))
	f.Add(frag([]*federav1.Fragment{{Id: "a", Offset: 3, Data: []byte("x")}}))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := transfer.NewReassembler(limit)
		sent := map[string][]byte{}
		for len(in) > 0 {
			data, n := protowire.ConsumeBytes(in)
			if n < 0 {
				return
			}
			in = in[n:]
			var fr federav1.Fragment
			if proto.Unmarshal(data, &fr) != nil {
				continue
			}
			whole, err := r.Add(&fr)
			if r.Held() < 0 || r.Held() > limit {
				t.Fatalf("holds %d bytes; limit %d", r.Held(), limit)
			}
			if err != nil {
				delete(sent, fr.GetId())
				continue
			}
			sent[fr.GetId()] = append(sent[fr.GetId()], fr.GetData()...)
			if whole != nil {
				if string(whole) != string(sent[fr.GetId()]) {
					t.Fatalf("message %q joined as %q; its fragments carried %q", fr.GetId(), whole, sent[fr.GetId()])
				}
				delete(sent, fr.GetId())
			}
		}
	})
}

// FuzzDecodeChunkMessage feeds arbitrary bytes to DecodeChunkMessage as a
// SiteMessage's encoding: whatever it decodes, proto.Unmarshal decodes
// alike. The same bytes also arrive cut into pieces, as gRPC hands over a
// message in the frames it came in (cut picks the pieces' sizes): the
// decoder that reads across them decodes exactly what the one over the
// joined bytes does, or declines where it declines.
func FuzzDecodeChunkMessage(f *testing.F) {
	field := protowire.Number((&federav1.SiteMessage{}).ProtoReflect().Descriptor().Fields().ByName("chunk").Number())
	for _, c := range []*federav1.TensorChunk{
		{TransferId: "t-1", Name: "w", Shape: []int64{1}, Data: []byte{0, 0, 128, 63}, Last: true},
		{TransferId: "t-2", Name: "b", Offset: 7, Data: make([]byte, 4096), Ring: true},
		{Name: "x"},
	} {
		b, err := proto.Marshal(&federav1.SiteMessage{Body: &federav1.SiteMessage_Chunk{Chunk: c}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint64(0))
		f.Add(b, uint64(0x0305_0101_0700_0203))
		f.Add(append(b, b...), uint64(1)) // the chunk field twice: the last wins in protobuf
	}
	f.Fuzz(func(t *testing.T, b []byte, cut uint64) {
		c, ok := transfer.DecodeChunkMessage(b, field)
		pieces := cutInto(b, cut)
		pc, pok := transfer.DecodeChunk(pieces, field)
		if pok {
			defer transfer.ReleasePayload(pc)
		}
		if pok != ok {
			t.Fatalf("over %d pieces the decoder says %v, over the joined bytes %v", len(pieces), pok, ok)
		}
		if !ok {
			return
		}
		defer transfer.ReleasePayload(c)
		if !proto.Equal(pc, c) {
			t.Fatalf("over %d pieces the decoder decoded\n  %v\nover the joined bytes\n  %v", len(pieces), pc, c)
		}
		var m federav1.SiteMessage
		if err := proto.Unmarshal(b, &m); err != nil {
			t.Fatalf("DecodeChunkMessage decoded %v from bytes proto.Unmarshal refuses: %v", c, err)
		}
		if !proto.Equal(m.GetChunk(), c) {
			t.Fatalf("DecodeChunkMessage decoded\n  %v\nproto.Unmarshal\n  %v", c, m.GetChunk())
		}
	})
}

// cutInto cuts b into pieces whose sizes are cut's bytes in turn (a zero
// byte: 1), the last piece the rest.
func cutInto(b []byte, cut uint64) mem.BufferSlice {
	var out mem.BufferSlice
	for len(b) > 0 {
		n := max(int(cut&0xff), 1)
		cut >>= 8
		if cut == 0 {
			n = len(b)
		}
		n = min(n, len(b))
		out = append(out, mem.SliceBuffer(b[:n]))
		b = b[n:]
	}
	return out
}
