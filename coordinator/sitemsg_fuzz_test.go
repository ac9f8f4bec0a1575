package coordinator

import (
	"context"
	"encoding/binary"
	"math"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/transfer"
)

// ctxOnlyStream is the one thing handleSiteMessage asks of a stream: its
// context.
type ctxOnlyStream struct {
	federav1.SiteService_ConnectServer
}

func (ctxOnlyStream) Context() context.Context { return context.Background() }

// siteMessages splits fuzz bytes into SiteMessages: each a 2-byte length
// and that many bytes of protobuf. A message that does not unmarshal ends
// the stream, as gRPC would.
func siteMessages(b []byte) []*federav1.SiteMessage {
	var out []*federav1.SiteMessage
	for len(b) >= 2 && len(out) < 64 {
		n := min(int(binary.LittleEndian.Uint16(b)), len(b)-2)
		m := &federav1.SiteMessage{}
		if proto.Unmarshal(b[2:2+n], m) != nil {
			break
		}
		out = append(out, m)
		b = b[2+n:]
	}
	return out
}

func frame(ms ...*federav1.SiteMessage) []byte {
	var out []byte
	for _, m := range ms {
		b, err := proto.Marshal(m)
		if err != nil {
			panic(err)
		}
		out = binary.LittleEndian.AppendUint16(out, uint16(len(b)))
		out = append(out, b...)
	}
	return out
}

// FuzzSiteMessages feeds the coordinator's site-stream handler a stream of
// arbitrary messages from a listed site with three tasks pending: a
// training task of its own (weights back), a secure-aggregation task of
// its own (a ring vector back) and a task of another site. Nothing may
// panic; a stream-ending error is InvalidArgument or PermissionDenied;
// each task gets at most one reply, never for the other site's task; no
// reply carries more values than its task was sent; and an update
// checkReply lets through aggregates (FedAvg) into a model of the
// global's shape with finite values.
func FuzzSiteMessages(f *testing.F) {
	paris := spiffeid.RequireFromString("spiffe://example.org/site/eu/paris")
	boston := spiffeid.RequireFromString("spiffe://example.org/site/us/boston")
	c, err := New(Config{StateDir: f.TempDir(), Identity: testIdentity(f), Listen: "127.0.0.1:0", Sites: []spiffeid.ID{paris, boston}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { c.Close() })
	global := models.NewLogReg(3, 2)
	var params int64
	for _, t := range global {
		params += int64(len(t.Data))
	}
	const ringN = 6
	const trainID, ringID, otherID = "job/r1/train/eu/paris/00", "job/r1/secagg/eu/paris/00", "job/r1/train/us/boston/00"
	update := models.NewLogReg(3, 2)
	for _, t := range update {
		for i := range t.Data {
			t.Data[i] = float32(i) / 4
		}
	}
	header := &federav1.SiteMessage{Body: &federav1.SiteMessage_Result{Result: &federav1.TaskResult{TaskId: trainID, WeightsFollow: true, Examples: 10, TrainLoss: 0.5}}}
	var chunks []*federav1.SiteMessage
	for _, ch := range transfer.ChunkWeights(trainID, update, 24) {
		chunks = append(chunks, &federav1.SiteMessage{Body: &federav1.SiteMessage_Chunk{Chunk: ch}})
	}
	ringHeader := &federav1.SiteMessage{Body: &federav1.SiteMessage_Result{Result: &federav1.TaskResult{TaskId: ringID, WeightsFollow: true}}}
	var ring []*federav1.SiteMessage
	for _, ch := range federav1.ChunkRing(ringID, make([]byte, 4*ringN)) {
		ring = append(ring, &federav1.SiteMessage{Body: &federav1.SiteMessage_Chunk{Chunk: ch}})
	}
	f.Add(frame(append([]*federav1.SiteMessage{header}, chunks...)...))
	f.Add(frame(append([]*federav1.SiteMessage{ringHeader}, ring...)...))
	f.Add(frame(append(append([]*federav1.SiteMessage{header}, chunks[0], chunks[0]), chunks[1:]...)...))
	f.Add(frame(&federav1.SiteMessage{Body: &federav1.SiteMessage_Result{Result: &federav1.TaskResult{TaskId: otherID}}}))
	f.Add(frame(&federav1.SiteMessage{Body: &federav1.SiteMessage_Heartbeat{Heartbeat: &federav1.Heartbeat{}}}, &federav1.SiteMessage{}))

	// run feeds one stream and checks what came out; it returns how many
	// training updates checkReply let through.
	run := func(t testing.TB, b []byte) (accepted int) {
		ch := make(chan reply, 8)
		c.mu.Lock()
		c.pending[trainID] = &pendingTask{site: "eu/paris", ch: ch, maxElems: params}
		c.pending[ringID] = &pendingTask{site: "eu/paris", ch: ch, maxElems: ringN, ring: true}
		c.pending[otherID] = &pendingTask{site: "us/boston", ch: ch, maxElems: params}
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			delete(c.pending, trainID)
			delete(c.pending, ringID)
			delete(c.pending, otherID)
			c.mu.Unlock()
		}()
		sess := &session{site: "eu/paris", peer: paris, stream: ctxOnlyStream{}, datasets: map[string]bool{}, done: make(chan struct{})}
		asm := map[string]*assembly{}
		for _, m := range siteMessages(b) {
			if err := c.handleSiteMessage(sess, m, asm); err != nil {
				if code := status.Code(err); code != codes.InvalidArgument && code != codes.PermissionDenied {
					t.Fatalf("stream ended with %v, want InvalidArgument or PermissionDenied", err)
				}
				break
			}
		}
		close(ch)
		got := map[string]bool{}
		for r := range ch {
			if r.site != "eu/paris" {
				t.Fatalf("a reply for site %q from paris's stream", r.site)
			}
			id := r.result.GetTaskId()
			if r.lost != "" {
				continue
			}
			if got[id] {
				t.Fatalf("two replies for task %s", id)
			}
			got[id] = true
			if id == otherID {
				t.Fatal("paris answered boston's task")
			}
			if r.ring != nil && len(r.ring) != 4*ringN {
				t.Fatalf("a ring reply of %d bytes for %d values", len(r.ring), ringN)
			}
			var n int64
			for _, tn := range r.weights {
				n += int64(len(tn.Data))
			}
			if n > params {
				t.Fatalf("a reply of %d values for a task sent %d", n, params)
			}
			fn := fan{kind: federav1.TaskKind_TASK_KIND_TRAIN, w: global}
			if id != trainID || checkReply(fn, r) != nil {
				continue
			}
			agg, err := models.NewAggregator("fedavg", models.AggregatorParams{})
			if err != nil {
				t.Fatal(err)
			}
			next, err := agg.Aggregate(global, []models.Update{{Weights: r.weights, Examples: int(r.result.GetExamples())}})
			if err != nil {
				t.Fatalf("an update checkReply accepted does not aggregate: %v", err)
			}
			if err := next.Validate(global); err != nil {
				t.Fatalf("an update checkReply accepted gives a bad model: %v", err)
			}
			if l := r.result.GetTrainLoss(); math.IsNaN(l) || math.IsInf(l, 0) {
				t.Fatalf("loss %v accepted", l)
			}
			accepted++
		}
		return accepted
	}
	// The honest stream is accepted: the properties above are not vacuous.
	if n := run(f, frame(append([]*federav1.SiteMessage{header}, chunks...)...)); n != 1 {
		f.Fatalf("the honest update: %d accepted, want 1", n)
	}
	f.Fuzz(func(t *testing.T, b []byte) { run(t, b) })
}
