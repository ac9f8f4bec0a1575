package coordinator

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/internal/logkeys"
	"github.com/federa-dev/federa/models"
	"github.com/federa-dev/federa/policy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/transfer"
)

// A site's tensors for a task are bounded by what the task can need: an
// update has the shape of the weights the task was sent, so a site may
// send at most that many values (pendingTask.maxElems), and none for a
// task sent without weights. A site claiming a 1 GiB tensor for a 62
// parameter model is refused at its first chunk, before anything is
// allocated.

// session is one connected site's stream.
type session struct {
	site       string
	peer       spiffeid.ID   // the site's verified SPIFFE ID
	witnessKey string        // the site's audit witness key, from its hello
	witnessed  int64         // largest audit tree size shown to it (guarded by Coordinator.mu)
	witnessReq chan struct{} // wakes the session's witness loop (witness.go)
	datasets   map[string]bool
	stream     federav1.SiteService_ConnectServer
	sendMu     sync.Mutex
	fragments  int64 // messages sent in fragments (guarded by sendMu), for their ids
	done       chan struct{}
	doneOnce   sync.Once
	reason     string
}

func (s *session) send(m *federav1.CoordinatorMessage) (int64, error) {
	return s.sendAll(m)
}

// sendShared sends a chunk from its payload's own memory
// (transfer.SharedChunk; a chunk is never over MaxWholeMessageBytes).
func (s *session) sendShared(m *transfer.SharedChunk) (int64, error) {
	err := s.stream.SendMsg(m)
	return int64(m.Size()), err
}

// sendAll sends ms back to back: no other message to the site comes
// between them (a task and its weight chunks must arrive together). Each
// is a *federav1.CoordinatorMessage or a *transfer.SharedChunk.
func (s *session) sendAll(ms ...any) (int64, error) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	var n int64
	for _, m := range ms {
		select {
		case <-s.done:
			return n, fmt.Errorf("site %s disconnected", s.site)
		default:
		}
		var sent int64
		var err error
		switch m := m.(type) {
		case *transfer.SharedChunk:
			sent, err = s.sendShared(m)
		case *federav1.CoordinatorMessage:
			sent, err = s.sendOne(m)
		default:
			err = fmt.Errorf("internal error: cannot send a %T", m)
		}
		n += sent
		if err != nil {
			return n, fmt.Errorf("send to site %s: %w", s.site, err)
		}
	}
	return n, nil
}

// sendOne sends m whole, or in fragments when it is too large for one
// gRPC message (a task over hundreds of thousands of columns, an audit
// sync of many entries). The caller holds sendMu, so nothing comes
// between the fragments.
func (s *session) sendOne(m *federav1.CoordinatorMessage) (int64, error) {
	s.fragments++
	frags, err := transfer.SplitMessage(fmt.Sprintf("c%d", s.fragments), m, 0)
	if err != nil {
		return 0, err
	}
	if frags == nil {
		return int64(proto.Size(m)), s.stream.Send(m)
	}
	var n int64
	for _, f := range frags {
		fm := &federav1.CoordinatorMessage{Body: &federav1.CoordinatorMessage_Fragment{Fragment: f}}
		if err := s.stream.Send(fm); err != nil {
			return n, err
		}
		n += int64(proto.Size(fm))
	}
	return n, nil
}

func (s *session) close(reason string) {
	s.doneOnce.Do(func() { s.reason = reason; close(s.done) })
}

// reply is what a fan-out receives from one site for one task.
type reply struct {
	site    string
	result  *federav1.TaskResult
	weights models.Weights
	ring    []byte // a secure-aggregation masked input, packed (secagg.Pack)
	lost    string // non-empty: the site will not answer, and why
	bytesIn int64
	// digest is the update's "sha256:…", hashed as its chunks arrived
	// (models.EncodeWeights of it); "" if not known that way.
	digest string
	// streamed: the update went into the fan-out's streaming sum as it
	// arrived, checked chunk by chunk; weights is nil.
	streamed bool
}

type pendingTask struct {
	site     string
	sess     *session
	ch       chan<- reply
	bytesIn  int64
	maxElems int64 // values the site may send back: those of the weights sent
	ring     bool  // the site sends back a ring vector of exactly maxElems
	// in says where the site's update goes: a streaming sum, or whole
	// weights hashed as they arrive.
	in inbound
}

// inbound is where a fan-out's updates go as their chunks arrive: into
// sum (streaming aggregation), or assembled whole and hashed with prefix
// (models.SafetensorsPrefix of the weights sent); both zero for a task
// whose answer carries no update to hash.
type inbound struct {
	sum    *transfer.Sum
	prefix []byte
}

type siteService struct {
	federav1.UnimplementedSiteServiceServer
	c *Coordinator
}

// Connect is one site's stream. The site is the peer's SPIFFE ID, never
// what a message claims.
func (s *siteService) Connect(stream federav1.SiteService_ConnectServer) error {
	c := s.c
	id, err := attest.PeerID(stream.Context())
	if err != nil {
		return status.Error(codes.Unauthenticated, "site stream needs an mTLS SPIFFE identity")
	}
	// The access policy checks the first message (SiteService.Connect):
	// only a listed site, and only for its own stream.
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	name, ok := c.sites[id]
	if !ok {
		return status.Errorf(codes.PermissionDenied, "only listed sites may open a site stream; %s is not one", id)
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message on a site stream must be a hello")
	}
	sess := &session{site: name, peer: id, stream: stream, done: make(chan struct{}), datasets: map[string]bool{},
		witnessKey: hello.GetWitnessKey(), witnessed: hello.GetWitnessedSize(), witnessReq: make(chan struct{}, 1)}
	for _, d := range hello.GetDatasets() {
		sess.datasets[d] = true
	}
	// Registered before the welcome, so a site that knows it is connected
	// is also one the coordinator will ask; the send lock is held from
	// registering until the welcome is out, so a task dispatched at once
	// (a resumed job's) cannot reach the site before its welcome.
	sess.sendMu.Lock()
	c.addSession(sess)
	log := c.log.With(logkeys.Site, name)
	defer func() {
		c.removeSession(sess)
		log.Info("site disconnected", logkeys.Reason, sess.reason)
	}()
	err = stream.Send(&federav1.CoordinatorMessage{Body: &federav1.CoordinatorMessage_Welcome{Welcome: &federav1.Welcome{
		Site: name, HeartbeatIntervalMs: c.cfg.HeartbeatInterval.Milliseconds(),
	}}})
	sess.sendMu.Unlock()
	if err != nil {
		sess.close("welcome failed: " + err.Error())
		return err
	}
	log.Info("site connected", "datasets", hello.GetDatasets(), "agent_version", hello.GetAgentVersion())
	c.metrics.siteSessions.WithLabelValues(name).Inc()
	// A (re)connecting site checks the log at once, not at the next round.
	if sess.witnessKey != "" {
		go c.witnessLoop(sess)
		sess.requestWitnessSync()
	}

	msgs := make(chan *federav1.SiteMessage)
	errc := make(chan error, 1)
	// When the site was last heard from, stamped as a message arrives, not
	// when it is handled: a site whose messages wait behind a slow one is
	// alive (with a thousand sites, handling can lag arrival by seconds).
	var heard atomic.Int64
	heard.Store(time.Now().UnixNano())
	go func() {
		for {
			m, err := stream.Recv()
			heard.Store(time.Now().UnixNano())
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-stream.Context().Done():
				// The stream ended while the loop was busy: say so, or the
				// loop would wait for the idle timer to find out.
				errc <- context.Cause(stream.Context())
				return
			}
		}
	}()
	asm := map[string]*assembly{}
	frags := transfer.NewReassembler(0)
	// Three missed heartbeats and the site is presumed dead, so a round
	// does not wait on a half-open connection until its deadline.
	idle := 3 * c.cfg.HeartbeatInterval
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for {
		select {
		case <-sess.done:
			return status.Error(codes.Unavailable, sess.reason)
		case err := <-errc:
			sess.close("stream ended: " + err.Error())
			return nil
		case <-timer.C:
			if since := time.Since(time.Unix(0, heard.Load())); since < idle {
				timer.Reset(idle - since)
				continue
			}
			sess.close(fmt.Sprintf("no message for %s", idle))
			return status.Error(codes.DeadlineExceeded, "site missed its heartbeats")
		case m := <-msgs:
			timer.Reset(idle)
			m, err := joinFragments(frags, m)
			if err == nil && m == nil {
				continue // more fragments to come
			}
			if err == nil {
				err = c.handleSiteMessage(sess, m, asm)
				releaseChunkPayload(m)
			}
			if err != nil {
				log.Warn("site protocol violation", logkeys.Err, err)
				sess.close(err.Error())
				return err
			}
			// A chunk may wait its turn in a streaming sum (its site's
			// messages queue behind it meanwhile): that time is the
			// coordinator's, not the site's silence.
			heard.Store(time.Now().UnixNano())
		}
	}
}

// joinFragments passes a whole message through, takes a fragment (nil
// until its message is complete), and returns the message a last fragment
// completes. A malformed fragment, or a fragment inside a fragmented
// message, is a protocol violation.
func joinFragments(r *transfer.Reassembler, m *federav1.SiteMessage) (*federav1.SiteMessage, error) {
	f := m.GetFragment()
	if f == nil {
		return m, nil
	}
	b, err := r.Add(f)
	if err != nil || b == nil {
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return nil, nil
	}
	whole := &federav1.SiteMessage{}
	if err := proto.Unmarshal(b, whole); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "fragmented message %q: %v", f.GetId(), err)
	}
	if whole.GetFragment() != nil {
		return nil, status.Errorf(codes.InvalidArgument, "fragmented message %q carries a fragment", f.GetId())
	}
	return whole, nil
}

type assembly struct {
	result *federav1.TaskResult
	asm    *transfer.Assembler
	ring   *federav1.RingAssembler
	stream *transfer.SumStream
}

// handleSiteMessage routes one message. An error is a protocol violation
// that ends the stream; a bad payload for one task fails that task only.
func (c *Coordinator) handleSiteMessage(sess *session, m *federav1.SiteMessage, asm map[string]*assembly) error {
	size := int64(proto.Size(m))
	switch b := m.GetBody().(type) {
	case *federav1.SiteMessage_Heartbeat:
		return nil
	case *federav1.SiteMessage_Result:
		r := b.Result
		if ok, err := c.countPending(sess, r.GetTaskId(), size); !ok {
			return err // nil: a late answer to a task that already closed
		}
		if r.GetWeightsFollow() && r.GetError() == "" {
			limit, ring, in := c.transferLimit(r.GetTaskId())
			switch {
			case limit == 0:
				c.deliver(sess.site, r.GetTaskId(), reply{site: sess.site, lost: "announced weights for a task that was sent none"})
			case ring:
				asm[r.GetTaskId()] = &assembly{result: r, ring: federav1.NewRingAssembler(r.GetTaskId(), limit)}
			case in.sum != nil:
				// Streaming: the header's figures are checked now, before
				// any of the update reaches the round's sum.
				if err := checkTrainResult(r); err != nil {
					c.deliver(sess.site, r.GetTaskId(), reply{site: sess.site, lost: "refused its answer: " + err.Error()})
					return nil
				}
				st, err := in.sum.Stream(sess.site, r.GetTaskId(), r.GetExamples())
				if err != nil {
					c.deliver(sess.site, r.GetTaskId(), reply{site: sess.site, lost: "refused its answer: " + err.Error()})
					return nil
				}
				asm[r.GetTaskId()] = &assembly{result: r, stream: st}
			default:
				a := transfer.NewAssembler(r.GetTaskId(), limit)
				if in.prefix != nil {
					a.HashAs(in.prefix)
				}
				asm[r.GetTaskId()] = &assembly{result: r, asm: a}
			}
			return nil
		}
		c.deliver(sess.site, r.GetTaskId(), reply{site: sess.site, result: r})
		return nil
	case *federav1.SiteMessage_Chunk:
		id := b.Chunk.GetTransferId()
		a, ok := asm[id]
		if !ok {
			if ok, err := c.countPending(sess, id, size); !ok {
				return err
			}
			return status.Errorf(codes.InvalidArgument, "tensor chunk for task %s without a result header", id)
		}
		if ok, err := c.countPending(sess, id, size); !ok {
			delete(asm, id)
			return err
		}
		var done bool
		var err error
		switch {
		case a.ring != nil:
			done, err = a.ring.Add(b.Chunk)
		case a.stream != nil:
			done, err = a.stream.Add(b.Chunk)
		default:
			done, err = a.asm.Add(b.Chunk)
		}
		if err != nil {
			delete(asm, id)
			c.deliver(sess.site, id, reply{site: sess.site, lost: "sent malformed weights: " + err.Error()})
			return nil
		}
		if done {
			delete(asm, id)
			r := reply{site: sess.site, result: a.result}
			switch {
			case a.ring != nil:
				r.ring = a.ring.Packed()
			case a.stream != nil:
				r.streamed, r.digest = true, a.stream.Digest()
			default:
				r.weights, r.digest = a.asm.Weights(), a.asm.Digest()
			}
			c.deliver(sess.site, id, r)
		}
		return nil
	case *federav1.SiteMessage_Decision:
		return c.acceptDecision(sess.site, b.Decision)
	case *federav1.SiteMessage_Cosignature:
		c.acceptCoSignature(sess, b.Cosignature.GetCheckpoint())
		return nil
	case *federav1.SiteMessage_Hello:
		return status.Error(codes.InvalidArgument, "hello sent twice on one stream")
	default:
		return status.Error(codes.InvalidArgument, "empty or unknown site message")
	}
}

// countPending adds size to a pending task's inbound bytes. It reports
// false for a task that is not pending (a late answer). Whether this site
// may answer the task at all is the access policy's call
// (SiteService.AnswerTask): answering a task sent to another site is an
// error that ends the stream.
func (c *Coordinator) countPending(sess *session, taskID string, size int64) (bool, error) {
	c.mu.Lock()
	p, ok := c.pending[taskID]
	taskSite := ""
	if ok {
		taskSite = p.site
	}
	c.mu.Unlock()
	if !ok {
		// Late (its fan-out closed), replayed, or for a task never sent:
		// nothing of it is used.
		c.log.Info("ignored an answer to a task that is not pending (late, replayed, or never sent)", logkeys.Site, sess.site, logkeys.Task, taskID)
		return false, nil
	}
	if err := c.authorizeID(sess.stream.Context(), sess.peer, "SiteService.AnswerTask", policy.Resource{TaskSite: taskSite}); err != nil {
		return false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok = c.pending[taskID]; !ok {
		return false, nil
	}
	p.bytesIn += size
	return true, nil
}

// transferLimit is how many values a site may send for a pending task,
// whether they are a ring vector (exactly that many) rather than
// weights, and where weights go.
func (c *Coordinator) transferLimit(taskID string) (int64, bool, inbound) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pending[taskID]; ok {
		return p.maxElems, p.ring, p.in
	}
	return 0, false, inbound{}
}

// deliver hands a task's reply to its fan-out, exactly once.
func (c *Coordinator) deliver(site, taskID string, r reply) {
	c.mu.Lock()
	p, ok := c.pending[taskID]
	if ok && p.site == site {
		delete(c.pending, taskID)
	}
	c.mu.Unlock()
	if !ok || p.site != site {
		return
	}
	r.bytesIn = p.bytesIn
	if p.in.sum != nil && !r.streamed {
		// No update of this site goes into the sum: those after it in
		// the sum's order stop waiting for it.
		p.in.sum.Drop(site)
	}
	p.ch <- r // buffered for every task of the fan-out
}

func (c *Coordinator) addSession(s *session) {
	c.mu.Lock()
	old := c.sessions[s.site]
	c.sessions[s.site] = s
	c.notifyLocked()
	c.mu.Unlock()
	if old != nil {
		old.close("replaced by a new connection from the same site")
		c.loseTasksOf(old)
	}
}

func (c *Coordinator) removeSession(s *session) {
	c.mu.Lock()
	if c.sessions[s.site] == s {
		delete(c.sessions, s.site)
		c.notifyLocked()
	}
	c.mu.Unlock()
	c.loseTasksOf(s)
}

// loseTasksOf fails every task pending at a session that went away, so a
// fan-out learns at once instead of at its deadline.
func (c *Coordinator) loseTasksOf(s *session) {
	c.mu.Lock()
	var lost []*pendingTask
	for id, p := range c.pending {
		if p.sess == s {
			lost = append(lost, p)
			delete(c.pending, id)
		}
	}
	c.mu.Unlock()
	reason := "disconnected"
	if s.reason != "" {
		reason = "disconnected: " + s.reason
	}
	for _, p := range lost {
		if p.in.sum != nil {
			p.in.sum.Drop(p.site)
		}
		p.ch <- reply{site: p.site, lost: reason, bytesIn: p.bytesIn}
	}
}

func (c *Coordinator) closeSessions() {
	c.mu.Lock()
	var all []*session
	for _, s := range c.sessions {
		all = append(all, s)
	}
	c.mu.Unlock()
	for _, s := range all {
		s.close("coordinator shutting down")
	}
}

func (c *Coordinator) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// connectedSites returns the connected sites that serve dataset, sorted,
// and a channel closed at the next connect or disconnect.
func (c *Coordinator) connectedSites(dataset string) ([]string, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for name, s := range c.sessions {
		if dataset == "" || s.datasets[dataset] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, c.changed
}

// expect registers where the reply to a task for site goes, before the
// task is sent. The site may send back as many values as the weights w
// hold, or, with ring > 0, a ring vector of exactly ring elements.
func (c *Coordinator) expect(site, taskID string, w models.Weights, ring int64, in inbound, ch chan<- reply) (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sess := c.sessions[site]
	if sess == nil {
		return nil, fmt.Errorf("site %s is not connected", site)
	}
	var elems int64
	for _, t := range w {
		elems += int64(len(t.Data))
	}
	p := &pendingTask{site: site, sess: sess, ch: ch, maxElems: elems, in: in}
	if ring > 0 {
		p.maxElems, p.ring = ring, true
	}
	c.pending[taskID] = p
	return sess, nil
}

// dispatch sends a task expected from sess, and the weights' chunks
// after it, and returns the bytes sent. The chunks are shared by every
// site of a fan-out: each gets its own headers naming its task, over the
// same payloads. If the send fails, the task's fan-out hears that the site
// is lost (unless it already heard, from the session ending).
func (c *Coordinator) dispatch(sess *session, t *federav1.Task, chunks []*federav1.TensorChunk, released func()) int64 {
	t.WeightsFollow = chunks != nil
	msgs := make([]any, 0, 1+len(chunks))
	msgs = append(msgs, &federav1.CoordinatorMessage{Body: &federav1.CoordinatorMessage_Task{Task: t}})
	// The chunks go from the model's memory, not copied into encode
	// buffers (transfer.SharedChunk): released is called once gRPC has
	// written the last of them to the connection, or dropped them.
	var shares transfer.Shares
	for _, ch := range transfer.Retarget(chunks, t.GetTaskId()) {
		msgs = append(msgs, shares.Share(&federav1.CoordinatorMessage{Body: &federav1.CoordinatorMessage_Chunk{Chunk: ch}}))
	}
	// The task and its chunks go together: a second fan-out's task to the
	// same site must not land between them.
	n, err := sess.sendAll(msgs...)
	if err != nil {
		// The stream is broken: what gRPC still holds of it is never
		// written (or written to a stream the site no longer reads).
		shares.ReleaseAll()
		released()
		c.deliver(sess.site, t.GetTaskId(), reply{site: sess.site, lost: err.Error()})
		return 0
	}
	// Or the stream ended: gRPC dropped its frames, or its connection
	// died with them unwritten.
	shares.AfterRelease(sess.done, func(bool) { released() })
	return n
}

// forget drops tasks whose fan-out ended and tells the sites still working
// on them to stop.
func (c *Coordinator) forget(taskSites map[string]string, reason string) {
	c.mu.Lock()
	var cancel []*session
	var ids []string
	for id, site := range taskSites {
		if _, ok := c.pending[id]; ok {
			delete(c.pending, id)
			if s := c.sessions[site]; s != nil {
				cancel = append(cancel, s)
				ids = append(ids, id)
			}
		}
	}
	c.mu.Unlock()
	// Not waited for: a site whose stream is stalled must not hold up the
	// fan-out that gave up on it.
	for i, s := range cancel {
		go func() {
			_, _ = s.send(&federav1.CoordinatorMessage{Body: &federav1.CoordinatorMessage_Cancel{Cancel: &federav1.CancelTask{TaskId: ids[i], Reason: reason}}})
		}()
	}
}

// waitChanged blocks until the set of sessions changes or ctx ends.
func waitChanged(ctx context.Context, ch <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-ch:
	case <-t.C:
	}
}
