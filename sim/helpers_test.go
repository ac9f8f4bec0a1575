package sim_test

import (
	"context"
	"io"
	"log/slog"
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
	"github.com/federa-dev/federa/internal/testutil"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/spec"
	"github.com/federa-dev/federa/transfer"
)

// syncBuffer is a log sink tests can read while daemons write.
type syncBuffer = testutil.Buffer

const shipped = "../testdata/breast-cancer"

var shippedSites = []sim.SiteSpec{
	{Name: "eu/paris", Dataset: "breast-cancer", Path: filepath.Join(shipped, "eu-paris.csv")},
	{Name: "sg/singapore", Dataset: "breast-cancer", Path: filepath.Join(shipped, "sg-singapore.csv")},
	{Name: "us/boston", Dataset: "breast-cancer", Path: filepath.Join(shipped, "us-boston.csv")},
}

// hangBound bounds every wait in these tests for something that is bound
// to happen (a site connecting, a log line, a reload): generous, so a slow
// or loaded machine only makes a test slower, never red; it exists so a
// broken feature fails the test instead of hanging it.
const hangBound = time.Minute

// waitFor polls cond until it holds, failing the test (naming what it
// waited for) after hangBound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", hangBound, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logLines counts the lines of logs that hold every part.
func logLines(logs string, parts ...string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// waitLogLine waits until one line of logs holds every part.
func waitLogLine(t *testing.T, logs *syncBuffer, parts ...string) {
	t.Helper()
	waitLogLines(t, logs, 1, parts...)
}

// waitLogLines waits until n lines of logs hold every part.
func waitLogLines(t *testing.T, logs *syncBuffer, n int, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for logLines(logs.String(), parts...) < n {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %d log lines with %q:\n%s", hangBound, n, parts, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startNet starts a federation in a temp dir and waits for every site.
func startNet(t *testing.T, opts sim.Options) (*sim.Net, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Sites == nil {
		opts.Sites = shippedSites
	}
	var w io.Writer = logs
	if testing.Verbose() && os.Getenv("FEDERA_TEST_LOGS") != "" {
		w = io.MultiWriter(logs, os.Stderr)
	}
	opts.Log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n, err := sim.Start(opts)
	if err != nil {
		t.Fatalf("start sim: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	if err := n.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return n, logs
}

// demoSpec is the job the demo runs.
func demoSpec() *spec.Job {
	j := &spec.Job{
		Name: "test", Dataset: "breast-cancer", Label: "label", Model: spec.Model{Type: "logreg"},
		Rounds: 10, LocalEpochs: 2, BatchSize: 16, LearningRate: 0.1, L2: 1e-4, MinSites: 2,
		RoundTimeout: spec.Duration(20 * time.Second), Seed: 42,
		Sites: []string{"eu/paris", "sg/singapore", "us/boston"},
	}
	j.ApplyDefaults()
	return j
}

// runJob submits a job as alice and waits for it to end.
func runJob(t *testing.T, n *sim.Net, j *spec.Job) *federav1.Job {
	t.Helper()
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	job, err := c.SubmitJob(ctx, &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return waitFinal(t, c, job.GetId())
}

func waitFinal(t *testing.T, c federav1.JobServiceClient, id string) *federav1.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		j, err := c.GetJob(ctx, &federav1.GetJobRequest{Id: id})
		if err == nil {
			switch j.GetStatus() {
			case federav1.JobStatus_JOB_STATUS_SUCCEEDED, federav1.JobStatus_JOB_STATUS_FAILED, federav1.JobStatus_JOB_STATUS_CANCELLED:
				return j
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %s did not end: last error %v, job %v", id, err, j)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// wireTap records every message the coordinator receives on any stream,
// marshalled exactly as it crossed the wire.
type wireTap struct {
	mu    sync.Mutex
	msgs  [][]byte
	peers []string // the sender's SPIFFE ID, per message
	typed []proto.Message
	sent  []proto.Message // what the coordinator sent the sites
}

func (w *wireTap) option() grpc.ServerOption {
	return grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return h(srv, &tappedStream{ServerStream: ss, tap: w})
	})
}

// from returns the site messages a peer sent.
func (w *wireTap) from(peer string) []*federav1.SiteMessage {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*federav1.SiteMessage
	for i, m := range w.typed {
		if sm, ok := m.(*federav1.SiteMessage); ok && w.peers[i] == peer {
			out = append(out, sm)
		}
	}
	return out
}

func (w *wireTap) typedAll() []proto.Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.typed)
}

func (w *wireTap) sentAll() []proto.Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.sent)
}

func (w *wireTap) all() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.msgs...)
}

type tappedStream struct {
	grpc.ServerStream
	tap *wireTap
}

func (s *tappedStream) SendMsg(m any) error {
	pm, ok := m.(proto.Message)
	if sc, shared := m.(*transfer.SharedChunk); shared {
		pm, ok = sc.Message(), true
	}
	if ok {
		s.tap.mu.Lock()
		s.tap.sent = append(s.tap.sent, proto.Clone(pm))
		s.tap.mu.Unlock()
	}
	return s.ServerStream.SendMsg(m)
}

func (s *tappedStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		if pm, ok := m.(proto.Message); ok {
			b, _ := proto.Marshal(pm)
			peer := ""
			if id, err := attest.PeerID(s.Context()); err == nil {
				peer = id.String()
			}
			s.tap.mu.Lock()
			s.tap.msgs = append(s.tap.msgs, b)
			s.tap.peers = append(s.tap.peers, peer)
			s.tap.typed = append(s.tap.typed, proto.Clone(pm))
			s.tap.mu.Unlock()
		}
	}
	return err
}

func withTap(tap *wireTap) func(*coordinator.Config) {
	return func(c *coordinator.Config) { c.ServerOptions = append(c.ServerOptions, tap.option()) }
}

// restartCoordinator stops the coordinator (which waits for every job
// runner to return) and starts it again on the same state, and returns a
// client for alice on the new one, closed at the end of the test.
func restartCoordinator(t *testing.T, n *sim.Net) federav1.JobServiceClient {
	t.Helper()
	if err := n.StopCoordinator(); err != nil {
		t.Fatal(err)
	}
	if err := n.StartCoordinator(); err != nil {
		t.Fatal(err)
	}
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeFn)
	return c
}

// jobDecisions pages through every policy decision of job id, as alice
// (its owner in these tests), checking each page's token leads on.
func jobDecisions(t testing.TB, n *sim.Net, id string) []*federav1.SiteDecision {
	t.Helper()
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	var out []*federav1.SiteDecision
	token := ""
	for {
		resp, err := c.ListDecisions(context.Background(), &federav1.ListDecisionsRequest{JobId: id, PageToken: token, PageSize: 7})
		if err != nil {
			t.Fatalf("list decisions of %s: %v", id, err)
		}
		out = append(out, resp.GetDecisions()...)
		if token = resp.GetNextPageToken(); token == "" {
			if int64(len(out)) != resp.GetTotal() {
				t.Fatalf("paged %d decisions of job %s, total says %d", len(out), id, resp.GetTotal())
			}
			return out
		}
	}
}
