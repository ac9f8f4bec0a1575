package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/transfer"
)

// fakeClock is a Clock that moves only when the test says.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	armed   chan struct{} // receives each time After is called
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t0 time.Time) *fakeClock {
	return &fakeClock{now: t0, armed: make(chan struct{}, 16)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	c.mu.Unlock()
	select {
	case c.armed <- struct{}{}:
	default:
	}
	return ch
}

// advance moves the clock by d and fires every wait that is due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// fakeStream is a site's stream as the coordinator sees it: what is sent
// arrives on got; a stalled stream blocks every send until released.
type fakeStream struct {
	federav1.SiteService_ConnectServer
	got     chan *federav1.CoordinatorMessage
	stalled chan struct{} // nil: not stalled
	// held, when set, keeps shared chunks unreleased, as gRPC does until
	// it has written them.
	held chan *transfer.SharedChunk
}

func (s *fakeStream) Send(m *federav1.CoordinatorMessage) error {
	if s.stalled != nil {
		<-s.stalled
	}
	s.got <- m
	return nil
}

// SendMsg takes a chunk sent from its payload's memory, and releases it
// as gRPC would once it is written.
func (s *fakeStream) SendMsg(m any) error {
	sc, ok := m.(*transfer.SharedChunk)
	if !ok {
		return fmt.Errorf("fakeStream: SendMsg of a %T", m)
	}
	if s.held != nil {
		s.held <- sc
	} else {
		defer sc.Release()
	}
	return s.Send(sc.Message().(*federav1.CoordinatorMessage))
}

// TestModelNotReusedUntilItsChunksAreWritten: the chunks of a model go to
// gRPC as views of its memory, so the model is not reused (as the next
// round's sum) while gRPC holds any of them unwritten; once gRPC has
// released them all, or the site's stream ended (it never writes them),
// it is.
func TestModelNotReusedUntilItsChunksAreWritten(t *testing.T) {
	c := &Coordinator{log: slog.New(slog.DiscardHandler), sessions: map[string]*session{}, pending: map[string]*pendingTask{}}
	w := models.NewLogReg(600, 10) // 24 KB: chunks worth sharing
	for _, end := range []string{"gRPC wrote them", "the stream ended"} {
		st := &fakeStream{got: make(chan *federav1.CoordinatorMessage, 64), held: make(chan *transfer.SharedChunk, 64)}
		sess := &session{site: "eu/a", stream: st, done: make(chan struct{})}
		c.dispatch(sess, &federav1.Task{TaskId: "t"}, transfer.ShareWeights("", w, 4096), c.sendingOf(w))
		if c.reusable(w) != nil {
			t.Fatalf("%s: the model is reusable while gRPC holds its chunks unwritten", end)
		}
		if end == "the stream ended" {
			sess.close("gone")
		} else {
			for len(st.held) > 0 {
				(<-st.held).Release()
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for c.reusable(w) == nil && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if c.reusable(w) == nil {
			t.Fatalf("%s: the model is still not reusable", end)
		}
	}
}

// TestRoundClosesAtItsDeadlineOnTheInjectedClock drives a training
// fan-out through its deadline without sleeping: the test's clock is the
// only time the fan-out reads. Two of three sites answer, the third's
// stream is stalled so its task never leaves; the two still get their
// tasks at once (a stalled site delays no other), and the round closes,
// with the quorum, exactly when the clock reaches its deadline — not a
// moment before.
func TestRoundClosesAtItsDeadlineOnTheInjectedClock(t *testing.T) {
	// A year ahead: a fan-out that waited on the wall clock would not close.
	t0 := time.Now().Add(365 * 24 * time.Hour)
	clock := newFakeClock(t0)
	c := &Coordinator{cfg: Config{Clock: clock}, log: slog.New(slog.DiscardHandler), sessions: map[string]*session{}, pending: map[string]*pendingTask{}}
	c.metrics = newMetrics(c)
	c.cfg.setDefaults()
	release := make(chan struct{})
	defer close(release)
	sites := []string{"eu/a-stalled", "eu/b", "eu/c"}
	streams := map[string]*fakeStream{}
	for _, s := range sites {
		st := &fakeStream{got: make(chan *federav1.CoordinatorMessage, 64)}
		if s == "eu/a-stalled" {
			st.stalled = release
		}
		streams[s] = st
		c.sessions[s] = &session{site: s, stream: st, done: make(chan struct{})}
	}
	job := &federav1.Job{Id: "job-1", Spec: &federav1.JobSpec{RoundTimeoutMs: 60_000}}
	w := models.NewLogReg(3, 2)
	deadline := t0.Add(time.Minute)
	type result struct {
		col *collected
		err error
	}
	done := make(chan result, 1)
	go func() {
		col, err := c.fanOut(context.Background(), fan{job: job, round: 1, kind: federav1.TaskKind_TASK_KIND_TRAIN,
			sites: sites, minSites: 2, w: w, deadline: deadline})
		done <- result{col, err}
	}()
	bound := time.After(time.Minute) // only if the feature is broken
	var payloads [][]byte
	for _, s := range []string{"eu/b", "eu/c"} {
		var task *federav1.Task
		for task == nil || !task.GetWeightsFollow() {
			select {
			case m := <-streams[s].got:
				if m.GetTask() != nil {
					task = m.GetTask()
				}
			case <-bound:
				t.Fatalf("%s never got its task: the stalled site held it up", s)
			}
		}
		for last := false; !last; {
			m := <-streams[s].got
			ch := m.GetChunk()
			if ch.GetTransferId() != task.GetTaskId() {
				t.Fatalf("%s: chunk of transfer %q after task %q", s, ch.GetTransferId(), task.GetTaskId())
			}
			if len(ch.GetData()) > 0 && ch.GetName() == firstName(w) && ch.GetOffset() == 0 {
				payloads = append(payloads, ch.GetData())
			}
			last = ch.GetLast()
		}
		// An honest answer: an update of the model's shape (checkReply
		// refuses anything else).
		c.deliver(s, task.GetTaskId(), reply{site: s, weights: models.NewLogReg(3, 2),
			result: &federav1.TaskResult{TaskId: task.GetTaskId(), Examples: 10, TrainLoss: 0.5}})
	}
	if len(payloads) == 2 && &payloads[0][0] != &payloads[1][0] {
		t.Error("each site's chunks were encoded anew; the fan-out should chunk the weights once")
	}
	select {
	case <-clock.armed:
	case <-bound:
		t.Fatal("the fan-out never waited on the clock")
	}
	clock.advance(59 * time.Second)
	select {
	case r := <-done:
		t.Fatalf("the round closed before its deadline: %v %v", r.err, r.col.Reason())
	default:
	}
	clock.advance(time.Second)
	var r result
	select {
	case r = <-done:
	case <-bound:
		t.Fatal("the round did not close when the injected clock reached its deadline")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.col.Outcome() != Done {
		t.Fatalf("outcome %v: %s", r.col.Outcome(), r.col.Reason())
	}
	if got := r.col.Missing(); len(got) != 1 || got[0] != "eu/a-stalled" {
		t.Fatalf("missing %v, want the stalled site", got)
	}
}

func firstName(w models.Weights) string { return w.Names()[0] }
