package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/keepalive"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/attest/sign"
	"github.com/federa-dev/federa/internal/httpserve"
	"github.com/federa-dev/federa/internal/logkeys"
	"github.com/federa-dev/federa/policy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/store"
)

// Coordinator serves SiteService and JobService on one mTLS port.
type Coordinator struct {
	cfg   Config
	log   *slog.Logger
	store store.Store
	lis   net.Listener
	srv   *grpc.Server

	sites map[spiffeid.ID]string // allowed site ID -> site name

	updMu    sync.Mutex // serializes job updates (see updateWith)
	mu       sync.Mutex
	sessions map[string]*session // by site name
	changed  chan struct{}       // closed and replaced when sessions change
	pending  map[string]*pendingTask
	jobs     map[string]*jobState
	queries  map[string]*federav1.Query // every query's latest record (the store holds the same)

	sendMu sync.Mutex
	sends  map[*float32]int // sends under way of a model's memory, by weightsKey (runner.go)

	access  *policy.Access
	streams *perIdentity // calls open per peer (Limits.MaxStreamsPerIdentity)

	signer     *sign.Signer
	auditLog   *auditlog.Log
	auditKey   string
	auditQueue []auditlog.Entry
	auditMu    sync.Mutex   // held from taking the queue to appending it, so entries land in queue order
	decisions  decisionBook // sites' decision records: task key, sequence numbers (decisions.go)
	cpReq      chan struct{}
	cpMu       sync.Mutex
	cpSize     int64 // tree size of the latest checkpoint this process signed
	witness    witnessBook

	metrics *metrics
	http    *httpserve.Server // nil unless Config.HTTP is set
	health  *health.Server

	runCtx    context.Context
	runCancel context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New checks cfg, opens the store and binds the listener. Nothing is served
// until Run.
func New(cfg Config) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("coordinator config: %w", err)
	}
	cfg.setDefaults()
	var err error
	c := &Coordinator{
		cfg:      cfg,
		log:      cfg.Log.With(logkeys.Component, "coordinator"),
		sites:    map[spiffeid.ID]string{},
		sessions: map[string]*session{},
		changed:  make(chan struct{}),
		pending:  map[string]*pendingTask{},
		jobs:     map[string]*jobState{},
		queries:  map[string]*federav1.Query{},
	}
	for _, id := range cfg.Sites {
		name, _ := attest.SiteName(id)
		c.sites[id] = name
	}
	if cfg.AccessPolicy != "" {
		c.access, err = policy.LoadAccess(context.Background(), cfg.AccessPolicy)
	} else {
		c.access, err = policy.LoadDefaultAccess(context.Background())
	}
	if err != nil {
		return nil, fmt.Errorf("coordinator config: field access_policy: %w", err)
	}
	st, err := store.OpenBolt(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	c.store = st
	if c.signer, err = sign.LoadOrCreate(filepath.Join(cfg.StateDir, AuditKeysDir)); err != nil {
		st.Close()
		return nil, fmt.Errorf("model signing key: %w", err)
	}
	if err := c.openAudit(); err != nil {
		st.Close()
		return nil, err
	}
	if err := c.loadJobs(); err != nil {
		st.Close()
		return nil, err
	}
	if err := c.loadQueries(); err != nil {
		st.Close()
		return nil, err
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		st.Close()
		c.auditLog.Close()
		return nil, fmt.Errorf("coordinator listen on %s: %w", cfg.Listen, err)
	}
	// Limits (limits.go), in the order a connection meets them: the
	// listener's cap, the handshake deadline, the per-identity cap in the
	// credentials, the per-connection stream cap, then the per-identity
	// call cap before the access check, so a refused flood costs no policy
	// evaluation.
	lim := cfg.Limits
	c.lis = newLimitListener(lis, lim.MaxConnections, c.log)
	c.streams = newPerIdentity(lim.MaxStreamsPerIdentity)
	creds := &identityLimitCreds{
		TransportCredentials: attest.ServerCredentials(cfg.Identity, c.authorizePeer, c.log),
		lim:                  newPerIdentity(lim.MaxConnectionsPerIdentity),
		log:                  c.log,
	}
	opts := append([]grpc.ServerOption{
		grpc.Creds(creds),
		serverCodec(),
		grpc.ConnectionTimeout(lim.HandshakeTimeout),
		grpc.MaxConcurrentStreams(uint32(lim.MaxStreamsPerConnection)),
		grpc.ChainUnaryInterceptor(c.limitUnary, c.accessUnary),
		grpc.ChainStreamInterceptor(c.limitStream, c.accessStream),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, MaxConnectionIdle: lim.IdleTimeout}),
	}, cfg.ServerOptions...)
	c.srv = grpc.NewServer(opts...)
	c.metrics = newMetrics(c)
	c.registerHealth()
	federav1.RegisterSiteServiceServer(c.srv, &siteService{c: c})
	federav1.RegisterJobServiceServer(c.srv, &jobService{c: c})
	federav1.RegisterQueryServiceServer(c.srv, &queryService{c: c})
	federav1.RegisterAuditServiceServer(c.srv, &auditService{c: c})
	federav1.RegisterApprovalServiceServer(c.srv, &approvalService{c: c})
	if err := c.openHTTP(); err != nil {
		st.Close()
		c.auditLog.Close()
		c.lis.Close()
		return nil, err
	}
	c.runCtx, c.runCancel = context.WithCancel(context.Background())
	c.cpReq = make(chan struct{}, 1)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.checkpointer(c.runCtx)
	}()
	return c, nil
}

// authorizePeer admits the configured sites and users of the coordinator's
// own trust domain; anything else is refused at the handshake.
func (c *Coordinator) authorizePeer(id spiffeid.ID) error {
	if _, ok := c.sites[id]; ok {
		return nil
	}
	if attest.IsUser(id) && id.TrustDomain() == c.cfg.Identity.ID().TrustDomain() {
		return nil
	}
	if _, isSite := attest.SiteName(id); isSite {
		return fmt.Errorf("site %s is not listed in the coordinator's sites", id)
	}
	return fmt.Errorf("%s is neither a listed site nor a user of trust domain %s", id, c.cfg.Identity.ID().TrustDomain())
}

// SigningKeyPEM is the public key released models are signed with.
func (c *Coordinator) SigningKeyPEM() []byte { return c.signer.PublicKeyPEM() }

// Addr is the address the coordinator listens on.
func (c *Coordinator) Addr() string { return c.lis.Addr().String() }

// Run serves until ctx is cancelled, then shuts down gracefully. It resumes
// every job that was running when the coordinator last stopped.
func (c *Coordinator) Run(ctx context.Context) error {
	c.log.Info("coordinator serving", logkeys.Addr, c.Addr(), logkeys.SpiffeID, c.cfg.Identity.ID().String())
	c.resumeJobs()
	errc := make(chan error, 1)
	go func() { errc <- c.srv.Serve(c.lis) }()
	stopHTTP := c.serveHTTP()
	defer stopHTTP()
	c.setServing()
	select {
	case <-ctx.Done():
		c.shutdown()
		<-errc
		return nil
	case err := <-errc:
		c.shutdown()
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return fmt.Errorf("coordinator serve: %w", err)
	}
}

// shutdown stops the job runners first (so nothing new is dispatched), then
// drains gRPC: GracefulStop raced against a deadline, then Stop, because a
// site stream never ends on its own.
func (c *Coordinator) shutdown() {
	c.health.Shutdown()
	c.runCancel()
	c.wg.Wait()
	done := make(chan struct{})
	go func() { c.srv.GracefulStop(); close(done) }()
	c.closeSessions()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.srv.Stop()
		<-done
	}
}

// Close releases everything New acquired, in order: runners stop, the
// gRPC server stops, the listener closes, the store closes. Safe to call
// more than once and after Run returned.
func (c *Coordinator) Close() error {
	c.closeOnce.Do(func() {
		c.runCancel()
		c.wg.Wait()
		c.srv.Stop()
		c.lis.Close()
		if c.http != nil {
			_ = c.http.Close()
		}
		c.closeErr = errors.Join(c.store.Close(), c.auditLog.Close())
	})
	return c.closeErr
}
