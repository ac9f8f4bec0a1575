package transfer_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/transfer"
)

type connectOnly struct {
	federav1.UnimplementedSiteServiceServer
	connect func(federav1.SiteService_ConnectServer) error
}

func (c connectOnly) Connect(s federav1.SiteService_ConnectServer) error { return c.connect(s) }

// TestSharedChunkReleasedOnceWritten: a chunk sent as a SharedChunk over
// real gRPC arrives as the same message, and is released only once gRPC
// has written its payload: while the receiver reads nothing, flow control
// keeps chunks that SendMsg has queued unwritten and unreleased; once it
// has read them all, every one is released. A codec that copied the payload
// (and released at once) fails the first check; one that released too
// late, or never, the last.
func TestSharedChunkReleasedOnceWritten(t *testing.T) {
	const chunks = 32
	model := make([]byte, chunks<<20)
	for i := range model {
		model[i] = byte(i * 7)
	}
	var released, handed atomic.Int32 // chunks released; chunks SendMsg returned for
	sent := make(chan error, 1)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(transfer.NewCodec()))
	federav1.RegisterSiteServiceServer(srv, connectOnly{connect: func(s federav1.SiteService_ConnectServer) error {
		if _, err := s.Recv(); err != nil {
			return err
		}
		for i := range chunks {
			c := &federav1.TensorChunk{TransferId: "t", Name: "w", Shape: []int64{chunks << 18}, Offset: int64(i) << 18,
				Data: model[i<<20 : (i+1)<<20], Last: i == chunks-1}
			m := transfer.NewSharedChunk(&federav1.CoordinatorMessage{Body: &federav1.CoordinatorMessage_Chunk{Chunk: c}}, func() { released.Add(1) })
			if err := s.SendMsg(m); err != nil {
				sent <- err
				return err
			}
			handed.Add(1)
		}
		sent <- nil
		<-s.Context().Done()
		return nil
	}})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := federav1.NewSiteServiceClient(cc).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Hello{Hello: &federav1.Hello{}}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the server sends what flow control lets through
	// SendMsg returns once the message is queued; flow control keeps what
	// it queued unwritten, so some handed chunk is not released.
	if r, h := released.Load(), handed.Load(); r >= h {
		t.Fatalf("%d chunks handed to gRPC and %d released while the receiver had read none: the payloads were copied, not shared", h, r)
	}
	var got bytes.Buffer
	for i := range chunks {
		m, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		c := m.GetChunk()
		want := &federav1.TensorChunk{TransferId: "t", Name: "w", Shape: []int64{chunks << 18}, Offset: int64(i) << 18,
			Data: model[i<<20 : (i+1)<<20], Last: i == chunks-1}
		if !proto.Equal(c, want) {
			t.Fatalf("chunk %d arrived as %v", i, fmt.Sprint(c.GetTransferId(), c.GetName(), c.GetShape(), c.GetOffset(), len(c.GetData()), c.GetLast()))
		}
		got.Write(c.GetData())
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), model) {
		t.Fatal("the payloads that arrived differ from the model's bytes")
	}
	deadline := time.Now().Add(10 * time.Second)
	for released.Load() < chunks && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := released.Load(); n != chunks {
		t.Fatalf("%d of %d chunks released after all were received", n, chunks)
	}
}

// TestSharedChunkSmallPayloadIsCopied: a payload gRPC would not hand back
// (under its pooling threshold) is copied and released at once, and a
// message that holds more than a chunk is encoded whole.
func TestSharedChunkSmallPayloadIsCopied(t *testing.T) {
	codec := transfer.NewCodec()
	for name, m := range map[string]proto.Message{
		"small payload": &federav1.CoordinatorMessage{Body: &federav1.CoordinatorMessage_Chunk{Chunk: &federav1.TensorChunk{TransferId: "t", Data: make([]byte, 64)}}},
		"not a chunk":   &federav1.CoordinatorMessage{Body: &federav1.CoordinatorMessage_Task{Task: &federav1.Task{TaskId: "t"}}},
	} {
		var released atomic.Int32
		b, err := codec.Marshal(transfer.NewSharedChunk(m, func() { released.Add(1) }))
		if err != nil {
			t.Fatal(err)
		}
		if released.Load() != 1 {
			t.Errorf("%s: released %d times at Marshal, want once", name, released.Load())
		}
		got := m.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(b.Materialize(), got); err != nil || !proto.Equal(got, m) {
			t.Errorf("%s: decoded %v (%v), want %v", name, got, err, m)
		}
		b.Free()
		if n := released.Load(); n != 1 {
			t.Errorf("%s: released %d times once gRPC freed the buffers, want once", name, n)
		}
	}
}

// TestSharedChunkEncodingIsProtos: what a SharedChunk sends, and what
// WriteTo writes (what a site's journal hashes), are the message's
// deterministic protobuf encoding, byte for byte — fields after the
// payload included.
func TestSharedChunkEncodingIsProtos(t *testing.T) {
	codec := transfer.NewCodec()
	for _, c := range []*federav1.TensorChunk{
		{TransferId: "job/r1/train/eu/paris", Name: "layer.0.weight", Shape: []int64{3, 1 << 20}, Offset: 1 << 18, Data: make([]byte, 1<<20), Last: true, Ring: true},
		{TransferId: "t", Name: "w", Shape: []int64{4096}, Data: make([]byte, 16384)},
		{TransferId: "t", Name: "b", Data: make([]byte, 8), Last: true},
	} {
		for i := range c.Data {
			c.Data[i] = byte(i * 13)
		}
		m := &federav1.SiteMessage{Body: &federav1.SiteMessage_Chunk{Chunk: c}}
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		sc := transfer.NewSharedChunk(m, nil)
		var written bytes.Buffer
		if _, err := sc.WriteTo(&written); err != nil {
			t.Fatal(err)
		}
		sent, err := codec.Marshal(sc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(written.Bytes(), want) || !bytes.Equal(sent.Materialize(), want) || sc.Size() != len(want) {
			t.Errorf("chunk %q of %d bytes: WriteTo and Marshal do not give the deterministic encoding", c.GetName(), len(c.Data))
		}
		sent.Free()
	}
}
