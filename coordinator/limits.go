package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/internal/config"
	"github.com/federa-dev/federa/internal/logkeys"
)

// Defaults for Limits fields left at their zero value.
const (
	DefaultHandshakeTimeout          = 10 * time.Second
	DefaultMaxConnections            = 4096
	DefaultMaxConnectionsPerIdentity = 64
	DefaultMaxStreamsPerConnection   = 100
	DefaultMaxStreamsPerIdentity     = 256
	DefaultIdleTimeout               = 5 * time.Minute
)

// Limits bound what a peer can hold open on the coordinator, so that no one
// — authenticated or not — can exhaust its sockets, goroutines or memory
// (coordinator.yaml's limits block). A zero field takes its default.
//
// Where each is enforced, in the order a connection meets them:
//   - MaxConnections: the listener (limitListener), before any byte is read;
//   - HandshakeTimeout: gRPC's connection deadline, which covers the TLS
//     handshake and the HTTP/2 preface;
//   - MaxConnectionsPerIdentity: the transport credentials, right after the
//     handshake verified the peer's SPIFFE ID (identityLimitCreds);
//   - MaxStreamsPerConnection: HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS; gRPC
//     resets a stream over it with REFUSED_STREAM;
//   - MaxStreamsPerIdentity: the first interceptor of every call
//     (limitStream, limitUnary), across all of the identity's connections;
//   - IdleTimeout: gRPC's MaxConnectionIdle: a connection with no call open
//     for that long is sent GOAWAY and closed. A site's stream is a call
//     that lasts, so site connections are never idle.
type Limits struct {
	HandshakeTimeout          time.Duration
	MaxConnections            int
	MaxConnectionsPerIdentity int
	MaxStreamsPerConnection   int
	MaxStreamsPerIdentity     int
	IdleTimeout               time.Duration
}

// LimitsFile is the limits block of coordinator.yaml. Pointers tell a
// key that is absent (the default) from one set to 0 (an error).
type LimitsFile struct {
	HandshakeTimeout          *config.Duration `yaml:"handshake_timeout"`
	MaxConnections            *int             `yaml:"max_connections"`
	MaxConnectionsPerIdentity *int             `yaml:"max_connections_per_identity"`
	MaxStreamsPerConnection   *int             `yaml:"max_streams_per_connection"`
	MaxStreamsPerIdentity     *int             `yaml:"max_streams_per_identity"`
	IdleTimeout               *config.Duration `yaml:"idle_timeout"`
}

// Setting keys, as an operator writes them; errors and logs name them.
const (
	keyHandshakeTimeout          = "limits.handshake_timeout"
	keyMaxConnections            = "limits.max_connections"
	keyMaxConnectionsPerIdentity = "limits.max_connections_per_identity"
	keyMaxStreamsPerConnection   = "limits.max_streams_per_connection"
	keyMaxStreamsPerIdentity     = "limits.max_streams_per_identity"
	keyIdleTimeout               = "limits.idle_timeout"
)

// Log field keys of the limit messages.
const (
	logLimit   = "limit"
	logSetting = "setting"
)

// limits turns the file's block into Limits, refusing an explicit 0:
// "no limit" is not on offer, and 0 as "the default" would read as one.
func (f LimitsFile) limits() (Limits, error) {
	var l Limits
	var errs []error
	dur := func(key string, p *config.Duration, def time.Duration) time.Duration {
		if p == nil {
			return 0
		}
		if p.D() == 0 {
			errs = append(errs, fmt.Errorf("field %s: 0s is not valid; want a positive duration such as %s (the default, when the key is left out)", key, def))
		}
		return p.D()
	}
	num := func(key string, p *int, def int) int {
		if p == nil {
			return 0
		}
		if *p == 0 {
			errs = append(errs, fmt.Errorf("field %s: 0 is not valid; want a positive number such as %d (the default, when the key is left out)", key, def))
		}
		return *p
	}
	l.HandshakeTimeout = dur(keyHandshakeTimeout, f.HandshakeTimeout, DefaultHandshakeTimeout)
	l.MaxConnections = num(keyMaxConnections, f.MaxConnections, DefaultMaxConnections)
	l.MaxConnectionsPerIdentity = num(keyMaxConnectionsPerIdentity, f.MaxConnectionsPerIdentity, DefaultMaxConnectionsPerIdentity)
	l.MaxStreamsPerConnection = num(keyMaxStreamsPerConnection, f.MaxStreamsPerConnection, DefaultMaxStreamsPerConnection)
	l.MaxStreamsPerIdentity = num(keyMaxStreamsPerIdentity, f.MaxStreamsPerIdentity, DefaultMaxStreamsPerIdentity)
	l.IdleTimeout = dur(keyIdleTimeout, f.IdleTimeout, DefaultIdleTimeout)
	return l, errors.Join(errs...)
}

// validate reports every negative (or, for streams per connection, too
// large) limit.
func (l *Limits) validate() []error {
	var errs []error
	for _, d := range []struct {
		key    string
		v, def time.Duration
	}{
		{keyHandshakeTimeout, l.HandshakeTimeout, DefaultHandshakeTimeout},
		{keyIdleTimeout, l.IdleTimeout, DefaultIdleTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("field %s: %s is negative; want a positive duration (default %s)", d.key, d.v, d.def))
		}
	}
	for _, n := range []struct {
		key    string
		v, def int
	}{
		{keyMaxConnections, l.MaxConnections, DefaultMaxConnections},
		{keyMaxConnectionsPerIdentity, l.MaxConnectionsPerIdentity, DefaultMaxConnectionsPerIdentity},
		{keyMaxStreamsPerConnection, l.MaxStreamsPerConnection, DefaultMaxStreamsPerConnection},
		{keyMaxStreamsPerIdentity, l.MaxStreamsPerIdentity, DefaultMaxStreamsPerIdentity},
	} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("field %s: %d is negative; want a positive number (default %d)", n.key, n.v, n.def))
		}
	}
	if int64(l.MaxStreamsPerConnection) > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("field %s: %d is more than HTTP/2 allows (%d)", keyMaxStreamsPerConnection, l.MaxStreamsPerConnection, uint32(math.MaxUint32)))
	}
	return errs
}

func (l *Limits) setDefaults() {
	if l.HandshakeTimeout == 0 {
		l.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if l.MaxConnections == 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxConnectionsPerIdentity == 0 {
		l.MaxConnectionsPerIdentity = DefaultMaxConnectionsPerIdentity
	}
	if l.MaxStreamsPerConnection == 0 {
		l.MaxStreamsPerConnection = DefaultMaxStreamsPerConnection
	}
	if l.MaxStreamsPerIdentity == 0 {
		l.MaxStreamsPerIdentity = DefaultMaxStreamsPerIdentity
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
}

// perIdentity counts what each SPIFFE ID holds open against one maximum.
type perIdentity struct {
	max  int
	mu   sync.Mutex
	open map[spiffeid.ID]int
}

func newPerIdentity(max int) *perIdentity {
	return &perIdentity{max: max, open: map[spiffeid.ID]int{}}
}

// acquire takes one of id's slots, if it has one left.
func (p *perIdentity) acquire(id spiffeid.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open[id] >= p.max {
		return false
	}
	p.open[id]++
	return true
}

func (p *perIdentity) release(id spiffeid.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open[id]--; p.open[id] <= 0 {
		delete(p.open, id)
	}
}

// releaseConn gives its slot back when gRPC closes it, which gRPC does on
// every path: a failed handshake, a finished transport, Stop.
type releaseConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *releaseConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// limitListener holds at most max connections open. One over it is closed
// as soon as it is accepted, before a byte is read, so a flood of idle or
// half-open connections costs a file descriptor for an instant and no
// goroutine; a client sees its connection closed at once and retries with
// its backoff, rather than hanging in a queue. (netutil.LimitListener
// blocks Accept instead: the excess waits unseen in the kernel's backlog.)
type limitListener struct {
	net.Listener
	max int
	log *slog.Logger

	mu       sync.Mutex
	open     int
	refusing bool // since the last time a connection was refused with room left
	refused  int  // while refusing
}

func newLimitListener(l net.Listener, max int, log *slog.Logger) *limitListener {
	return &limitListener{Listener: l, max: max, log: log}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.acquire() {
			return &releaseConn{Conn: c, release: l.release}, nil
		}
		c.Close()
	}
}

// acquire logs when the limit is first hit and when room opens again, not
// each refused connection: a flood must not become a flood of log lines.
func (l *limitListener) acquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open < l.max {
		l.open++
		return true
	}
	if !l.refusing {
		l.refusing = true
		l.log.Warn("connection limit reached; closing new connections until one ends",
			logLimit, l.max, logSetting, keyMaxConnections)
	}
	l.refused++
	return false
}

func (l *limitListener) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.refusing {
		l.log.Info("accepting connections again", "refused", l.refused, logLimit, l.max, logSetting, keyMaxConnections)
		l.refusing, l.refused = false, 0
	}
}

// identityLimitCreds caps the connections one SPIFFE ID holds open. The
// check sits in the credentials because that is the first place the
// verified ID is known and the last place a connection can still be
// refused before gRPC serves it; the slot is tied to the connection's
// Close, so no bookkeeping can drift from what is really open. A refused
// connection is closed after the handshake: the client sees it closed
// (Unavailable), and the coordinator logs the identity and the limit.
type identityLimitCreds struct {
	credentials.TransportCredentials
	lim *perIdentity
	log *slog.Logger
}

func (c *identityLimitCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return conn, info, err
	}
	tlsInfo, ok := info.(credentials.TLSInfo)
	if !ok || tlsInfo.SPIFFEID == nil {
		// Unreachable with attest's server credentials, which refuse a peer
		// without an ID; every call checks it again (access.go).
		return conn, info, nil
	}
	id, err := spiffeid.FromURI(tlsInfo.SPIFFEID)
	if err != nil {
		return conn, info, nil
	}
	if !c.lim.acquire(id) {
		conn.Close()
		c.log.Warn("connection refused: too many connections for this identity",
			logkeys.SpiffeID, id.String(), logkeys.Addr, raw.RemoteAddr().String(), logLimit, c.lim.max, logSetting, keyMaxConnectionsPerIdentity)
		return nil, nil, fmt.Errorf("%s already has %d connections open, the most %s allows", id, c.lim.max, keyMaxConnectionsPerIdentity)
	}
	return &releaseConn{Conn: conn, release: func() { c.lim.release(id) }}, info, nil
}

func (c *identityLimitCreds) Clone() credentials.TransportCredentials {
	return &identityLimitCreds{TransportCredentials: c.TransportCredentials.Clone(), lim: c.lim, log: c.log}
}

// limitCall takes one of the caller's call slots, or says which limit
// refused it. Unary calls count too: each is an HTTP/2 stream, and a
// flood of them is as heavy as a flood of streams.
func (c *Coordinator) limitCall(ctx context.Context, rpc string) (release func(), err error) {
	id, err := attest.PeerID(ctx)
	if err != nil {
		// No verified identity: the access check refuses the call.
		return func() {}, nil
	}
	if !c.streams.acquire(id) {
		c.log.Warn("call refused: too many streams for this identity",
			logkeys.SpiffeID, id.String(), "rpc", rpc, logLimit, c.streams.max, logSetting, keyMaxStreamsPerIdentity)
		return nil, status.Errorf(codes.ResourceExhausted,
			"%s already has %d streams open on this coordinator, the most allowed per identity (%s); close some and retry",
			id, c.streams.max, keyMaxStreamsPerIdentity)
	}
	return func() { c.streams.release(id) }, nil
}

func (c *Coordinator) limitUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	release, err := c.limitCall(ctx, rpcName(info.FullMethod))
	if err != nil {
		return nil, err
	}
	defer release()
	return handler(ctx, req)
}

func (c *Coordinator) limitStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	release, err := c.limitCall(ss.Context(), rpcName(info.FullMethod))
	if err != nil {
		return err
	}
	defer release()
	return handler(srv, ss)
}
