package coordinator

import (
	"bytes"
	"runtime"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/transfer"
)

var siteChunkField = protowire.Number((&federav1.SiteMessage{}).ProtoReflect().Descriptor().Fields().ByName("chunk").Number())

// wireCases are encoded SiteMessages: chunks as sites send them, and the
// odd shapes the codec must leave to proto.Unmarshal or decode alike.
func wireCases(t testing.TB) map[string][]byte {
	payload := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, federav1.MaxChunkBytes/8)
	chunk := &federav1.TensorChunk{TransferId: "job/r1/train/a", Name: "w", Shape: []int64{3, 87381}, Offset: 262144, Data: payload, Last: true}
	enc := func(m proto.Message) []byte {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	whole := enc(&federav1.SiteMessage{Body: &federav1.SiteMessage_Chunk{Chunk: chunk}})
	inner := enc(chunk)
	wrap := func(inner []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, siteChunkField, protowire.BytesType), inner)
	}
	dataField := func(v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), v)
	}
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7)
	return map[string][]byte{
		"a chunk":                       whole,
		"payload first":                 wrap(append(dataField(payload), enc(&federav1.TensorChunk{TransferId: "x", Name: "w", Shape: []int64{262144}})...)),
		"payload twice (the last wins)": wrap(append(append(dataField(payload), inner...), dataField(payload[:8])...)),
		"an unknown field in the chunk": wrap(append(append([]byte{}, inner...), unknown...)),
		"a field beside the chunk":      append(append([]byte{}, whole...), unknown...),
		"the chunk twice (merged)":      append(append([]byte{}, whole...), wrap(enc(&federav1.TensorChunk{Name: "v", Last: false}))...),
		"payload over the cap":          wrap(append(append([]byte{}, inner...), dataField(append(payload, 0, 0, 0, 0))...)),
		"invalid UTF-8 in the name":     wrap(append(dataField(payload), protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), "\xff")...)),
		"truncated":                     whole[:len(whole)-1],
		"payload as a varint":           wrap(append(append([]byte{}, enc(&federav1.TensorChunk{Name: "w"})...), protowire.AppendVarint(protowire.AppendTag(nil, 5, protowire.VarintType), 1)...)),
		"a result":                      enc(&federav1.SiteMessage{Body: &federav1.SiteMessage_Result{Result: &federav1.TaskResult{TaskId: string(payload[:300])}}}),
	}
}

// TestWireCodecDecodesAsProto: the coordinator's codec, which puts a
// chunk's payload in a reused buffer, decodes every message exactly as
// proto.Unmarshal does — the same message, or an error where it errs —
// chunks with their fields in any order, unknown fields, a payload
// repeated (the last wins), and messages it must not take apart.
func TestWireCodecDecodesAsProto(t *testing.T) {
	codec := transfer.NewCodec()
	pooled := 0
	for name, b := range wireCases(t) {
		want := &federav1.SiteMessage{}
		wantErr := proto.Unmarshal(b, want)
		got := &federav1.SiteMessage{}
		err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bytes.Clone(b))}, got)
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%s: codec error %v, proto.Unmarshal error %v", name, err, wantErr)
			continue
		}
		if err == nil && !proto.Equal(got, want) {
			t.Errorf("%s: the codec decoded another message than proto.Unmarshal", name)
		}
		if cap(got.GetChunk().GetData()) == federav1.MaxChunkBytes {
			pooled++
		}
		releaseChunkPayload(got)
	}
	if pooled < 2 {
		t.Errorf("%d cases had a pooled payload; want the chunk with its payload last and first", pooled)
	}
}

// TestWireCodecReusesPayloads: a chunk handled and released gives its
// payload buffer to the next chunk, so a stream of chunks costs no
// allocation of its payloads.
func TestWireCodecReusesPayloads(t *testing.T) {
	if raceEnabled {
		t.Skip("skipped with -race: the race build's sync.Pool drops buffers on purpose, so reuse cannot be measured")
	}
	codec := transfer.NewCodec()
	b := wireCases(t)["a chunk"]
	// The message, its chunk, its shape and strings, the header: a
	// few small allocations; never the megabyte.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 20 {
		m := &federav1.SiteMessage{}
		if err := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, m); err != nil {
			t.Fatal(err)
		}
		releaseChunkPayload(m)
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 20; per > federav1.MaxChunkBytes/8 {
		t.Errorf("%d bytes allocated per chunk of %d; the payload buffer is not reused", per, federav1.MaxChunkBytes)
	}
}
