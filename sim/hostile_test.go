package sim_test

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/coordinator"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/spec"
)

// hostileSite turns one site hostile from the coordinator's side of the
// wire: every message the coordinator receives from that peer, over the
// site's real mTLS stream, goes through rewrite first, which may change
// it, drop it (nil) or add messages after it. To the coordinator it is the
// site itself sending them.
type hostileSite struct {
	peer    string
	mu      sync.Mutex
	rewrite func(m *federav1.SiteMessage) []*federav1.SiteMessage
}

func (h *hostileSite) set(f func(m *federav1.SiteMessage) []*federav1.SiteMessage) {
	h.mu.Lock()
	h.rewrite = f
	h.mu.Unlock()
}

func (h *hostileSite) option() grpc.ServerOption {
	return grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if id, err := attest.PeerID(ss.Context()); err != nil || id.String() != h.peer {
			return handler(srv, ss)
		}
		return handler(srv, &hostileStream{ServerStream: ss, h: h})
	})
}

type hostileStream struct {
	grpc.ServerStream
	h     *hostileSite
	queue []*federav1.SiteMessage
}

func (s *hostileStream) RecvMsg(m any) error {
	sm, ok := m.(*federav1.SiteMessage)
	if !ok {
		return s.ServerStream.RecvMsg(m)
	}
	for len(s.queue) == 0 {
		var in federav1.SiteMessage
		if err := s.ServerStream.RecvMsg(&in); err != nil {
			return err
		}
		s.h.mu.Lock()
		f := s.h.rewrite
		s.h.mu.Unlock()
		if f == nil {
			s.queue = append(s.queue, &in)
			continue
		}
		s.queue = append(s.queue, f(&in)...)
	}
	proto.Reset(sm)
	proto.Merge(sm, s.queue[0])
	s.queue = s.queue[1:]
	return nil
}

// trainChunk reports whether m is a chunk of a training update in the
// clear.
func trainChunk(m *federav1.SiteMessage) *federav1.TensorChunk {
	c := m.GetChunk()
	if c == nil || c.GetRing() || !strings.Contains(c.GetTransferId(), "/train/") {
		return nil
	}
	return c
}

// TestHostileSiteRefusedAlone: a site with a valid identity that sends
// what no honest site sends — an update of the wrong shape, NaN or Inf
// values, an oversized, out-of-order or repeated chunk, an answer to
// another round's task, a replay of an old answer — has that answer
// refused, with the reason in the coordinator's log naming the site, and
// is counted as missing from that round; the job goes on with the other
// two sites (min_sites 2) and succeeds.
func TestHostileSiteRefusedAlone(t *testing.T) {
	const bostonID = "spiffe://federa.demo/site/us/boston"
	h := &hostileSite{peer: bostonID}
	n, logs := startNet(t, sim.Options{Coordinator: func(c *coordinator.Config) {
		c.ServerOptions = append(c.ServerOptions, h.option())
	}})
	onChunk := func(edit func(c *federav1.TensorChunk)) func(m *federav1.SiteMessage) []*federav1.SiteMessage {
		return func(m *federav1.SiteMessage) []*federav1.SiteMessage {
			if c := trainChunk(m); c != nil {
				edit(c)
			}
			return []*federav1.SiteMessage{m}
		}
	}
	put := func(c *federav1.TensorChunk, v float32) {
		if len(c.Data) >= 4 {
			binary.LittleEndian.PutUint32(c.Data, math.Float32bits(v))
		}
	}
	// replay keeps boston's round-1 training answer and sends it again in
	// place of each later one.
	replay := func(otherRound bool) func(m *federav1.SiteMessage) []*federav1.SiteMessage {
		var kept []*federav1.SiteMessage
		return func(m *federav1.SiteMessage) []*federav1.SiteMessage {
			id := m.GetResult().GetTaskId()
			if c := trainChunk(m); c != nil {
				id = c.GetTransferId()
			}
			if !strings.Contains(id, "/train/") {
				return []*federav1.SiteMessage{m}
			}
			if strings.Contains(id, "/r1/") {
				kept = append(kept, proto.Clone(m).(*federav1.SiteMessage))
				return []*federav1.SiteMessage{m}
			}
			if otherRound {
				// This round's answer, addressed to round 1's task.
				fix := func(s string) string { return strings.Replace(s, "/r2/", "/r1/", 1) }
				if r := m.GetResult(); r != nil {
					r.TaskId = fix(r.TaskId)
				}
				if c := m.GetChunk(); c != nil {
					c.TransferId = fix(c.TransferId)
				}
				return []*federav1.SiteMessage{m}
			}
			if m.GetResult() != nil {
				return kept // the old answer, byte for byte, once per new one
			}
			return nil
		}
	}
	tests := []struct {
		name    string
		rewrite func(m *federav1.SiteMessage) []*federav1.SiteMessage
		rounds  []int32 // rounds boston must be missing from
		log     string  // in the coordinator's log, with site=us/boston
	}{
		{"wrong shape", onChunk(func(c *federav1.TensorChunk) { slices.Reverse(c.Shape) }), []int32{1, 2}, "does not fit the model"},
		{"NaN", onChunk(func(c *federav1.TensorChunk) { put(c, float32(math.NaN())) }), []int32{1, 2}, "non-finite value"},
		{"Inf", onChunk(func(c *federav1.TensorChunk) { put(c, float32(math.Inf(-1))) }), []int32{1, 2}, "non-finite value"},
		{"oversized chunk", onChunk(func(c *federav1.TensorChunk) { c.Shape = []int64{1 << 40} }), []int32{1, 2}, "sent malformed weights"},
		{"out-of-order chunk", onChunk(func(c *federav1.TensorChunk) { c.Offset++ }), []int32{1, 2}, "chunks must arrive in order"},
		{"repeated chunk", func(m *federav1.SiteMessage) []*federav1.SiteMessage {
			if trainChunk(m) != nil {
				return []*federav1.SiteMessage{m, proto.Clone(m).(*federav1.SiteMessage)}
			}
			return []*federav1.SiteMessage{m}
		}, []int32{1, 2}, "sent malformed weights"},
		{"answer to another round's task", replay(true), []int32{2}, "not pending"},
		{"replayed old answer", replay(false), []int32{2}, "not pending"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.set(tt.rewrite)
			defer h.set(nil)
			before := len(logs.String())
			j := demoSpec()
			j.Rounds, j.MinSites = 2, 2
			j.RoundTimeout = spec.Duration(3 * time.Second)
			job := runJob(t, n, j)
			if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
				t.Fatalf("job %s: %s; want it to go on without the hostile site", job.GetStatus(), job.GetMessage())
			}
			for _, r := range job.GetRounds() {
				missing := slices.Contains(r.GetMissing(), "us/boston")
				if want := slices.Contains(tt.rounds, r.GetRound()); missing != want || slices.Contains(r.GetParticipants(), "us/boston") == want {
					t.Errorf("round %d: participants %v, missing %v; boston missing: want %v", r.GetRound(), r.GetParticipants(), r.GetMissing(), want)
				}
				for _, s := range []string{"eu/paris", "sg/singapore"} {
					if !slices.Contains(r.GetParticipants(), s) {
						t.Errorf("round %d: honest site %s not a participant (%v)", r.GetRound(), s, r.GetParticipants())
					}
				}
			}
			var found bool
			for _, line := range strings.Split(logs.String()[before:], "\n") {
				if strings.Contains(line, "site=us/boston") && strings.Contains(line, tt.log) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("no coordinator log line names us/boston and %q", tt.log)
			}
		})
	}
}
