package sim_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
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
	"github.com/federa-dev/federa/transfer"
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
		{"evaluation claiming more correct than scored", func(m *federav1.SiteMessage) []*federav1.SiteMessage {
			if r := m.GetResult(); r.GetKind() == federav1.TaskKind_TASK_KIND_EVAL {
				r.EvalCorrect = 2*r.EvalTotal + 1
			}
			return []*federav1.SiteMessage{m}
		}, nil, "an evaluation of"},
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
				if r.GetEvalAccuracy() > 1 {
					t.Errorf("round %d: pooled accuracy %v", r.GetRound(), r.GetEvalAccuracy())
				}
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

// hostileCoordinator rewrites what the real coordinator sends one site,
// on the wire: to the site it is the coordinator (its real SVID, its
// real stream) sending the rewritten messages.
type hostileCoordinator struct {
	peer    string
	mu      sync.Mutex
	rewrite func(m *federav1.CoordinatorMessage)
}

func (h *hostileCoordinator) set(f func(m *federav1.CoordinatorMessage)) {
	h.mu.Lock()
	h.rewrite = f
	h.mu.Unlock()
}

func (h *hostileCoordinator) option() grpc.ServerOption {
	return grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if id, err := attest.PeerID(ss.Context()); err != nil || id.String() != h.peer {
			return handler(srv, ss)
		}
		return handler(srv, &rewrittenStream{ServerStream: ss, h: h})
	})
}

type rewrittenStream struct {
	grpc.ServerStream
	h *hostileCoordinator
}

func (s *rewrittenStream) SendMsg(m any) error {
	cm, ok := m.(*federav1.CoordinatorMessage)
	s.h.mu.Lock()
	f := s.h.rewrite
	s.h.mu.Unlock()
	if sc, shared := m.(*transfer.SharedChunk); shared && f != nil {
		// A chunk sent from the model's memory: rewritten, it goes as a
		// copy, and the model's memory is released.
		defer sc.Release()
		cm, ok = sc.Message().(*federav1.CoordinatorMessage)
	}
	if ok && f != nil {
		cm = proto.Clone(cm).(*federav1.CoordinatorMessage)
		f(cm)
		m = cm
	}
	return s.ServerStream.SendMsg(m)
}

// TestHostileCoordinatorRefusedBySite: a coordinator that sends a site a
// task its policy refuses, a task for a data set it does not hold, or a
// malformed task or weights stream is refused: the site says why in its
// log and, for a task, in its egress journal (what left was only the
// reason), and stays up — it answers the next honest job.
func TestHostileCoordinatorRefusedBySite(t *testing.T) {
	const bostonID = "spiffe://federa.demo/site/us/boston"
	h := &hostileCoordinator{peer: bostonID}
	n, logs := startNet(t, sim.Options{Coordinator: func(c *coordinator.Config) {
		c.ServerOptions = append(c.ServerOptions, h.option())
	}})
	onTask := func(edit func(t *federav1.Task)) func(m *federav1.CoordinatorMessage) {
		return func(m *federav1.CoordinatorMessage) {
			if t := m.GetTask(); t != nil {
				edit(t)
			}
		}
	}
	journal := filepath.Join(n.SiteDir("us/boston"), "egress.jsonl")
	tests := []struct {
		name    string
		rewrite func(m *federav1.CoordinatorMessage)
		log     string // in a site log line naming us/boston
		journal string // in the "error" of an egress journal entry; "" for none
	}{
		{"task the policy refuses", onTask(func(t *federav1.Task) { t.RequesterRole = "intruder" }),
			`has role \"intruder\"`, `has role "intruder"`},
		{"dataset it does not hold", onTask(func(t *federav1.Task) {
			if t.Spec != nil {
				t.Spec.Dataset = "ghost-records"
			}
		}), "ghost-records", "ghost-records"},
		{"training task carrying a query", onTask(func(t *federav1.Task) {
			if t.GetKind() == federav1.TaskKind_TASK_KIND_TRAIN {
				t.QueryRequest = []byte(`{"query":`)
			}
		}), "must carry a query request exactly when it is a query task", "must carry a query request exactly when it is a query task"},
		{"weights chunk out of order", func(m *federav1.CoordinatorMessage) {
			if c := m.GetChunk(); c != nil {
				c.Offset += 3
			}
		}, "chunks must arrive in order", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, seen := len(logs.String()), len(readJournal(t, journal))
			h.set(tt.rewrite)
			j := demoSpec()
			j.Rounds, j.MinSites = 1, 2
			j.RoundTimeout = spec.Duration(5 * time.Second)
			c, closeFn, err := n.Dial("alice")
			if err != nil {
				t.Fatal(err)
			}
			defer closeFn()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// The submit's pre-check may already meet the refusal (the site's
			// reason comes back to the user), or the job runs without boston.
			if job, err := c.SubmitJob(ctx, &federav1.SubmitJobRequest{Spec: j.Proto()}); err != nil {
				t.Logf("submit: %v", err)
			} else {
				job = waitFinal(t, c, job.GetId())
				t.Logf("job %s: %s", job.GetStatus(), job.GetMessage())
			}
			h.set(nil)
			found := false
			for _, line := range strings.Split(logs.String()[before:], "\n") {
				if strings.Contains(line, "us/boston") && strings.Contains(line, tt.log) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("no site log line names us/boston and %q", tt.log)
			}
			if tt.journal != "" {
				found = false
				for _, e := range readJournal(t, journal)[seen:] {
					if strings.Contains(fmt.Sprint(e["error"]), tt.journal) {
						found = true
						if b, _ := e["bytes"].(float64); b > 4096 {
							t.Errorf("a refusal sent %v bytes", b)
						}
					}
				}
				if !found {
					t.Errorf("boston's egress journal has no new entry with an error containing %q", tt.journal)
				}
			}
			// The site stays up: the next honest job has it take part.
			wctx, wcancel := context.WithTimeout(context.Background(), hangBound)
			defer wcancel()
			if err := n.WaitConnected(wctx); err != nil {
				t.Fatal(err)
			}
			j = demoSpec()
			j.Rounds = 1
			honest := runJob(t, n, j)
			if honest.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED || !slices.Contains(honest.GetRounds()[0].GetParticipants(), "us/boston") {
				t.Fatalf("the next honest job: %s %s, participants %v", honest.GetStatus(), honest.GetMessage(), honest.GetRounds())
			}
		})
	}
}

func readJournal(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no task yet
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("journal line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}
