package site

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/internal/httpserve"
	"github.com/federa-dev/federa/internal/logkeys"
	"github.com/federa-dev/federa/models"
	"github.com/federa-dev/federa/policy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/transfer"
)

// Version is reported to the coordinator in the hello.
const Version = "0.1.0"

// Agent is a site agent.
type Agent struct {
	cfg       Config
	opts      options
	log       *slog.Logger
	data      *dataCache
	policy    engineSource
	approvals *Approvals
	decisions *journal
	egress    *journal
	// stateLock is held from New to Close: one agent per state dir.
	stateLock *os.File
	ledger    *ledger
	secagg    *secaggRounds
	noiseMu   sync.Mutex
	noiseRNG  *rand.Rand

	witness    *witness
	started    time.Time
	reportedMu sync.Mutex
	reported   map[string]bool // decisions reported and not yet seen in the log
	dlog       decisionLog     // numbered decision records (decisions.go)

	admitMu    sync.Mutex
	admitCache map[string]evaluation
	prepCache  map[string]*policy.Prepared
	// egressCache holds egress decisions by policy revision and input
	// (egressDecision).
	egressCache map[egressKey]keptEgress

	metrics *metrics
	http    *httpserve.Server // nil unless Config.HTTP is set

	mu        sync.Mutex
	connected bool
	current   *conn
	closeOnce sync.Once
	stop      context.CancelFunc
}

// engineSource is where the agent gets the policy in force: a watched
// folder, or the built-in default.
type engineSource interface {
	Current() *policy.Engine
}

type staticEngine struct{ e *policy.Engine }

func (s staticEngine) Current() *policy.Engine { return s.e }

// New checks cfg and prepares an agent. It does not dial. opts are for
// simulations and tests (see Option).
func New(cfg Config, opts ...Option) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("site config: %w", err)
	}
	cfg.setDefaults()
	var lock *os.File
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("site state dir: %w", err)
		}
		var err error
		if lock, err = lockStateDir(cfg.StateDir); err != nil {
			return nil, err
		}
	}
	ok := false
	defer func() {
		if !ok && lock != nil {
			lock.Close()
		}
	}()
	a := &Agent{cfg: cfg, data: newDataCache(8), started: time.Now(), stateLock: lock}
	a.opts.now = time.Now
	for _, o := range opts {
		o(&a.opts)
	}
	a.log = cfg.Log.With(logkeys.Component, "site", logkeys.SpiffeID, cfg.Identity.ID().String())
	var err error
	if a.ledger, err = openLedger(cfg.StateDir); err != nil {
		return nil, err
	}
	if a.secagg, err = openSecAggRounds(cfg.StateDir); err != nil {
		return nil, err
	}
	if cfg.StateDir != "" {
		a.approvals = OpenApprovals(cfg.StateDir)
	}
	a.decisions = newJournal(cfg.StateDir, "decisions.jsonl")
	if a.witness, err = openWitness(cfg.StateDir, cfg.Identity.ID().String()); err != nil {
		return nil, err
	}
	a.metrics = newMetrics(a)
	if err := a.openDecisions(); err != nil {
		return nil, err
	}
	a.egress = newJournal(cfg.StateDir, "egress.jsonl")
	seed := [32]byte{}
	if a.opts.noiseSeed != nil {
		binary.LittleEndian.PutUint64(seed[:], *a.opts.noiseSeed)
	} else if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("seed DP noise: %w", err)
	}
	a.noiseRNG = rand.New(rand.NewChaCha8(seed))
	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	switch {
	case cfg.PolicyBundle != "":
		w, err := policy.NewBundleWatcher(ctx, cfg.PolicyBundle, cfg.PolicyBundleKey, a.log)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("field policy.bundle: %w", err)
		}
		a.policy = w
	case cfg.PolicyDir == "":
		eng, err := policy.LoadFS(ctx, policy.Default(), ".")
		if err != nil {
			cancel()
			return nil, fmt.Errorf("load the built-in default policy: %w", err)
		}
		a.policy = staticEngine{eng}
		a.log.Info("using the built-in default policy", "revision", eng.Revision())
	default:
		w, err := policy.NewWatcher(ctx, cfg.PolicyDir, a.log)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("field policy.dir: %w", err)
		}
		a.policy = w
	}
	if cfg.HTTP.Enabled() {
		if a.http, err = httpserve.New(cfg.HTTP, a.metrics.reg, nil, a.log); err != nil {
			cancel()
			if w, isW := a.policy.(*policy.Watcher); isW {
				_ = w.Close()
			}
			return nil, fmt.Errorf("site config: %w", err)
		}
	}
	ok = true
	return a, nil
}

// noise is the DP noise source: unpredictable in production, seeded in
// tests. Guarded because tasks run concurrently.
func (a *Agent) noise() *rand.Rand {
	a.noiseMu.Lock()
	defer a.noiseMu.Unlock()
	return rand.New(rand.NewPCG(a.noiseRNG.Uint64(), a.noiseRNG.Uint64()))
}

// Connected reports whether a stream to the coordinator is up.
func (a *Agent) Connected() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.connected
}

// Run keeps a stream to the coordinator open until ctx is cancelled,
// reconnecting with exponential backoff and full jitter so a fleet of sites
// does not stampede a restarted coordinator. It returns nil on cancel.
func (a *Agent) Run(ctx context.Context) error {
	if a.http != nil {
		hctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := a.http.Serve(hctx); err != nil {
				a.log.Error("http listener stopped", logkeys.Err, err)
			}
		}()
		defer func() { stop(); <-done }()
	}
	attempt := 0
	for {
		start := time.Now()
		err := a.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 10*time.Second {
			attempt = 0 // it was a real session, not a failing dial
		}
		backoff := a.cfg.ReconnectMin << min(attempt, 16)
		if backoff > a.cfg.ReconnectMax || backoff <= 0 {
			backoff = a.cfg.ReconnectMax
		}
		wait := time.Duration(a.cfg.Rand.Int64N(int64(backoff))) + a.cfg.ReconnectMin/2
		attempt++
		a.metrics.reconnects.Inc()
		a.log.Warn("coordinator stream ended; reconnecting", logkeys.Err, err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// Close releases the agent's resources. Safe to call more than once.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		a.data.clear()
		if w, ok := a.policy.(*policy.Watcher); ok {
			_ = w.Close()
		}
		a.stop()
		if a.http != nil {
			_ = a.http.Close()
		}
		if a.stateLock != nil {
			_ = a.stateLock.Close()
		}
	})
	return nil
}

// conn is one live stream with its send lock and running tasks.
type conn struct {
	a         *Agent
	spare     spareWeights // the last task's model, for the next task's
	update    spareWeights // the last update that left, for the next training
	stream    federav1.SiteService_ConnectClient
	sendMu    sync.Mutex
	fragments atomic.Int64 // messages sent in fragments, for their ids
	tasks     sync.Map     // task id -> context.CancelFunc
	wg        sync.WaitGroup
}

// send sends m whole, or in fragments when it is too large for one gRPC
// message (the statistics of hundreds of thousands of columns). Each
// fragment takes the send lock on its own, so heartbeats and other
// tasks' answers go on between them.
func (c *conn) send(m *federav1.SiteMessage) error {
	frags, err := transfer.SplitMessage(fmt.Sprintf("s%d", c.fragments.Add(1)), m, 0)
	if err != nil {
		return err
	}
	if frags == nil {
		c.sendMu.Lock()
		defer c.sendMu.Unlock()
		return c.stream.Send(m)
	}
	for _, f := range frags {
		c.sendMu.Lock()
		err := c.stream.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Fragment{Fragment: f}})
		c.sendMu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *Agent) session(ctx context.Context) error {
	creds := attest.ClientCredentials(a.cfg.Identity, attest.AllowIDs(a.cfg.CoordinatorID), a.log, attest.WithClock(a.opts.now))
	cc, err := grpc.NewClient(a.cfg.CoordinatorAddr,
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	if err != nil {
		return fmt.Errorf("dial coordinator %s: %w", a.cfg.CoordinatorAddr, err)
	}
	defer cc.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := federav1.NewSiteServiceClient(cc).Connect(sctx, newWireCodec())
	if err != nil {
		return fmt.Errorf("open stream to %s: %w", a.cfg.CoordinatorAddr, err)
	}
	c := &conn{a: a, stream: stream}
	defer func() {
		cancel()
		c.wg.Wait()
	}()
	var names []string
	for _, d := range a.cfg.Datasets {
		names = append(names, d.Name)
	}
	hello := &federav1.Hello{AgentVersion: Version, Datasets: names, Site: a.siteName()}
	if a.witness != nil {
		hello.WitnessKey, hello.WitnessedSize = a.witness.vkey, a.witness.size()
	}
	if err := c.send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Hello{Hello: hello}}); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	first, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("await welcome: %w", err)
	}
	w := first.GetWelcome()
	if w == nil {
		return errors.New("coordinator did not answer the hello with a welcome")
	}
	if err := a.attach(c); err != nil {
		return err
	}
	defer func() {
		a.mu.Lock()
		a.connected, a.current = false, nil
		a.mu.Unlock()
	}()
	log := a.log.With(logkeys.Site, w.GetSite())
	log.Info("connected to coordinator", logkeys.Addr, a.cfg.CoordinatorAddr)

	interval := time.Duration(w.GetHeartbeatIntervalMs()) * time.Millisecond
	if interval <= 0 {
		interval = 5 * time.Second
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case now := <-t.C:
				if err := c.send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Heartbeat{Heartbeat: &federav1.Heartbeat{UnixMs: now.UnixMilli()}}}); err != nil {
					return
				}
			}
		}
	}()

	var (
		waiting *federav1.Task // task whose weights are arriving
		asm     *transfer.Assembler
		frags   = transfer.NewReassembler(0)
	)
	for {
		m, err := stream.Recv()
		if err == nil {
			a.metrics.received.Add(float64(proto.Size(m)))
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("coordinator closed the stream")
			}
			return err
		}
		if f := m.GetFragment(); f != nil {
			b, err := frags.Add(f)
			if err != nil {
				return fmt.Errorf("coordinator message: %w", err)
			}
			if b == nil {
				continue
			}
			m = &federav1.CoordinatorMessage{}
			if err := proto.Unmarshal(b, m); err != nil {
				return fmt.Errorf("fragmented coordinator message %q: %w", f.GetId(), err)
			}
			if m.GetFragment() != nil {
				return fmt.Errorf("fragmented coordinator message %q carries a fragment", f.GetId())
			}
		}
		switch b := m.GetBody().(type) {
		case *federav1.CoordinatorMessage_Task:
			if waiting != nil {
				return fmt.Errorf("task %s arrived before the weights of task %s were complete", b.Task.GetTaskId(), waiting.GetTaskId())
			}
			if b.Task.GetWeightsFollow() {
				waiting, asm = b.Task, transfer.NewAssembler(b.Task.GetTaskId(), paramsFor(b.Task))
				asm.Reuse(c.takeSpare())
				continue
			}
			c.start(sctx, log, b.Task, nil)
		case *federav1.CoordinatorMessage_Chunk:
			if waiting == nil {
				return fmt.Errorf("tensor chunk for %q with no task waiting for it", b.Chunk.GetTransferId())
			}
			done, err := asm.Add(b.Chunk)
			transfer.ReleasePayload(b.Chunk) // copied: the buffer is free
			if err != nil {
				return fmt.Errorf("weights of task %s: %w", waiting.GetTaskId(), err)
			}
			if done {
				c.start(sctx, log, waiting, asm.Weights())
				waiting, asm = nil, nil
			}
		case *federav1.CoordinatorMessage_AuditSync:
			a.auditSync(c, b.AuditSync)
		case *federav1.CoordinatorMessage_Cancel:
			if f, ok := c.tasks.Load(b.Cancel.GetTaskId()); ok {
				f.(context.CancelFunc)()
			}
		default:
			log.Warn("ignoring unknown coordinator message")
		}
	}
}

// start runs a task in its own goroutine and sends its result, if the
// egress policy lets it leave.
func (c *conn) start(ctx context.Context, log *slog.Logger, t *federav1.Task, w models.Weights) {
	tctx, cancel := context.WithCancel(ctx)
	c.tasks.Store(t.GetTaskId(), cancel)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.tasks.Delete(t.GetTaskId())
		defer cancel()
		log := log.With(logkeys.Job, t.GetJobId(), logkeys.Round, t.GetRound(), logkeys.Task, t.GetTaskId(), logkeys.Kind, t.GetKind().String())
		var dst models.Weights
		if t.GetKind() == federav1.TaskKind_TASK_KIND_TRAIN {
			dst = c.takeSpareUpdate()
		}
		rel := c.a.execute(tctx, t, w, dst)
		// The task is done with its weights (nothing it ran keeps them):
		// the next task's may take their memory.
		defer c.putSpare(w)
		if tctx.Err() != nil {
			log.Info("task cancelled")
			return
		}
		if rel.res.GetError() != "" {
			log.Warn("task failed", logkeys.Err, rel.res.GetError())
		}
		// A DP release is checked and charged in one step: the ledger stays
		// locked from computing the spend until it is recorded, durably,
		// before anything leaves (a crash after sending must not forget it).
		var tx *ledgerTx
		fail := func(msg string) []*federav1.SiteMessage {
			return []*federav1.SiteMessage{{Body: &federav1.SiteMessage_Result{Result: &federav1.TaskResult{
				TaskId: t.GetTaskId(), JobId: t.GetJobId(), Round: t.GetRound(), Kind: t.GetKind(), Error: msg,
			}}}}
		}
		var msgs []*federav1.SiteMessage
		allowed := true
		if rel.dp != nil && rel.kind != "" && rel.res.GetError() == "" {
			var err error
			if tx, err = c.a.ledger.begin(rel.dataset, t.GetJobId(), t.GetRound(), rel.dp.budget); err != nil {
				msgs, allowed = fail(fmt.Sprintf("at %s: %v", c.a.siteName(), err)), false
			} else {
				rel.epsilonJob, rel.epsilonDataset = tx.jobEpsilon, tx.datasetEpsilon
				rel.res.EpsilonSpent, rel.res.DatasetEpsilonSpent = tx.jobEpsilon, tx.datasetEpsilon
			}
		}
		if allowed {
			msgs, allowed = c.a.checkEgress(tctx, t, rel, rel.messages())
		}
		if tx != nil {
			if !allowed {
				tx.abort()
			} else if err := c.a.payFor(tx, t, rel); err != nil {
				log.Error("privacy ledger", logkeys.Err, err)
				msgs, allowed = fail(fmt.Sprintf("at %s: privacy ledger: %v; nothing was sent", c.a.siteName(), err)), false
			} else {
				c.a.metrics.epsilon.WithLabelValues(rel.dataset).Set(tx.datasetEpsilon)
				// Charged; neither journalled nor sent (chaos/failpoint_test.go).
				// gofail: var siteAfterCharge struct{}
			}
		}
		if !allowed {
			log.Warn("egress denied", logkeys.Reason, msgs[0].GetResult().GetError())
		}
		// What leaves is recorded first, with its digest, so the site's own
		// record never misses a message that did leave. The digest is of
		// the messages' deterministic encodings, which sendRelease sends
		// (wire.go).
		h := sha256.New()
		var n int64
		var scratch []byte
		// A chunk is hashed and sent from the update's memory
		// (transfer.SharedChunk: the same bytes, not copied); pending
		// counts the chunks gRPC has yet to write.
		var shares transfer.Shares
		shared := make([]*transfer.SharedChunk, len(msgs))
		for i, m := range msgs {
			if m.GetChunk() != nil {
				shared[i] = shares.Share(m)
				k, err := shared[i].WriteTo(h)
				if err != nil {
					log.Warn("encode result", logkeys.Err, err)
				}
				n += k
				continue
			}
			b, err := hashEncoding(scratch, m)
			if err != nil {
				// Recorded as before (no bytes); sending m fails alike.
				log.Warn("encode result", logkeys.Err, err)
				continue
			}
			h.Write(b)
			n += int64(len(b))
			scratch = b
		}
		refused := ""
		if len(msgs) == 1 {
			res := msgs[0].GetResult()
			refused = res.GetError()
			if ad := res.GetAdmission(); refused == "" && ad.GetOutcome() == federav1.Admission_OUTCOME_DENY {
				refused = "not admitted: " + strings.Join(ad.GetReasons(), "; ")
			}
		}
		if err := c.a.recordEgress(t, n, "sha256:"+hex.EncodeToString(h.Sum(nil)), allowed, refused); err != nil && !allowed {
			log.Warn("record egress", logkeys.Err, err)
		} else if err != nil {
			// A release this site could not record does not leave: its
			// journal must never miss a message that did. (A DP release
			// stays charged: over-counted, never under.)
			log.Error("record egress; the release is withheld", logkeys.Err, err)
			shares.ReleaseAll()
			shared = nil
			msgs = fail(fmt.Sprintf("at %s: cannot record the release in the egress journal (%v); nothing was sent", c.a.siteName(), redact(err)))
			if err := c.a.recordEgress(t, 0, "", false, msgs[0].GetResult().GetError()); err != nil {
				log.Warn("record egress", logkeys.Err, err)
			}
		}
		for i, m := range msgs {
			if i == 1 {
				// A release in several messages (its chunks, then the
				// result) is half sent (chaos/failpoint_test.go).
				// gofail: var siteMidRelease struct{}
			}
			var err error
			if i < len(shared) && shared[i] != nil {
				err = c.sendShared(shared[i])
			} else {
				err = c.sendRelease(m)
			}
			if err != nil {
				// The stream is broken: what gRPC holds of it is never
				// written, or written to a stream no one reads.
				shares.ReleaseAll()
				log.Warn("send result", logkeys.Err, err)
				return
			}
		}
		if rel.kind == egressModelUpdate && t.GetSecagg() == nil && !overlaps(rel.weights, w) {
			// Once gRPC has written the update, nothing keeps it: the
			// next training may write into its memory.
			// If the session ends first, its memory is not reused.
			shares.AfterRelease(ctx.Done(), func(written bool) {
				if written {
					c.putSpareUpdate(rel.weights)
				}
			})
		}
		c.a.metrics.egress(t, n)
		log.Debug("task done", logkeys.Bytes, n)
	}()
}

// recordEgress appends what left to the site's own record, so the site can
// say what it sent without trusting the coordinator.
// A task the site refused (not admitted, not for data it holds, malformed,
// or its release denied) is recorded with the reason it sent back in
// "error": only that reason left.
func (a *Agent) recordEgress(t *federav1.Task, n int64, digest string, allowed bool, refused string) error {
	rec := map[string]any{
		"time": time.Now().UTC().Format(time.RFC3339Nano), "job": t.GetJobId(), "task": t.GetTaskId(),
		"kind": t.GetKind().String(), "round": t.GetRound(), "bytes": n, "sha256": digest,
		"egress_allowed": allowed, "to": a.cfg.CoordinatorID.String(),
	}
	if refused != "" {
		rec["error"] = refused
	}
	if sa := t.GetSecagg(); sa != nil {
		// Each phase of a secure-aggregation round is its own entry.
		rec["secagg_phase"] = strings.ToLower(strings.TrimPrefix(sa.GetPhase().String(), "PHASE_"))
	}
	return a.egress.append(rec)
}
