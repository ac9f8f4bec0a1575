package sim_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/coordinator"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

// Each test here sets one of the coordinator's limits low, hits it
// through a real coordinator over real mTLS, and checks what the peer and
// the operator see. One site is enough and keeps the connection count
// exact: it holds one connection with one stream.

// startLimited starts a one-site federation whose coordinator has lim.
// A job waiting for its sites waits for ten minutes, so a test can hold
// one open.
func startLimited(t *testing.T, lim coordinator.Limits) (*sim.Net, *syncBuffer) {
	t.Helper()
	return startNet(t, sim.Options{
		Sites: shippedSites[:1],
		Coordinator: func(c *coordinator.Config) {
			c.Limits = lim
			c.SiteWaitTimeout = 10 * time.Minute
		},
	})
}

// userConn is a gRPC connection to the coordinator as user.
func userConn(t *testing.T, n *sim.Net, user string) *grpc.ClientConn {
	t.Helper()
	id, err := attest.LoadIdentity(n.IdentityDir(user))
	if err != nil {
		t.Fatal(err)
	}
	return dialAs(t, n, id)
}

// userTLS is what a hand-rolled mTLS client presents as user.
func userTLS(t *testing.T, n *sim.Net, user string) *tls.Config {
	t.Helper()
	id, err := attest.LoadIdentity(n.IdentityDir(user))
	if err != nil {
		t.Fatal(err)
	}
	td := spiffeid.RequireTrustDomainFromString(sim.DefaultTrustDomain)
	cfg := tlsconfig.MTLSClientConfig(id, id, tlsconfig.AuthorizeID(attest.CoordinatorID(td)))
	cfg.NextProtos = []string{"h2"}
	return cfg
}

func listJobs(cc *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := federav1.NewJobServiceClient(cc).ListJobs(ctx, &federav1.ListJobsRequest{})
	return err
}

// waitLog waits for a coordinator log line containing every one of want.
func waitLog(t *testing.T, logs *syncBuffer, want ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, line := range strings.Split(logs.String(), "\n") {
			all := true
			for _, w := range want {
				all = all && strings.Contains(line, w)
			}
			if all {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no coordinator log line with %q:\n%s", want, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventually retries f until it returns nil: for what the coordinator
// does once it notices a client went away, which it learns asynchronously.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dropWrites passes the first write through and swallows the rest: a TLS
// client behind it sends its ClientHello, believes it sent the rest of its
// handshake, and leaves the server waiting for it.
type dropWrites struct {
	net.Conn
	n int
}

func (c *dropWrites) Write(b []byte) (int, error) {
	if c.n++; c.n == 1 {
		return c.Conn.Write(b)
	}
	return len(b), nil
}

// TestLimitHandshakeTimeout: a connection that has not finished setting up
// (TLS handshake, then the HTTP/2 preface) within limits.handshake_timeout
// is closed by the coordinator, however far it got.
func TestLimitHandshakeTimeout(t *testing.T) {
	const timeout = time.Second
	n, _ := startLimited(t, coordinator.Limits{HandshakeTimeout: timeout})
	tests := []struct {
		name string
		// stall opens a connection and leaves it stalled; what it returns
		// is read until the coordinator closes it.
		stall func(t *testing.T) net.Conn
	}{
		{"TCP connected, nothing sent", func(t *testing.T) net.Conn {
			c, err := net.Dial("tcp", n.Addr())
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"half a TLS record sent", func(t *testing.T) net.Conn {
			c, err := net.Dial("tcp", n.Addr())
			if err != nil {
				t.Fatal(err)
			}
			// A handshake record header announcing 512 bytes, and 3 of them.
			if _, err := c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01}); err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"ClientHello sent, client certificate and Finished never", func(t *testing.T) net.Conn {
			raw, err := net.Dial("tcp", n.Addr())
			if err != nil {
				t.Fatal(err)
			}
			cfg := userTLS(t, n, "alice")
			cfg.MinVersion = tls.VersionTLS13
			c := tls.Client(&dropWrites{Conn: raw}, cfg)
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if err := c.Handshake(); err != nil {
				t.Fatalf("client side of the handshake: %v", err)
			}
			return c
		}},
		{"mTLS done, HTTP/2 preface never sent", func(t *testing.T) net.Conn {
			c, err := tls.Dial("tcp", n.Addr(), userTLS(t, n, "alice"))
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			c := tt.stall(t)
			defer c.Close()
			// Far below gRPC's own default of 120s, so only the limit
			// can close the connection in time.
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			var err error
			for err == nil {
				// A server that has not timed out sends nothing; drain
				// anything it did send, e.g. its HTTP/2 settings.
				_, err = c.Read(make([]byte, 4096))
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open after %s; want it closed after limits.handshake_timeout (%s)", time.Since(start).Round(time.Millisecond), timeout)
			}
			if took := time.Since(start); took < timeout {
				t.Fatalf("connection closed after %s (%v), before the %s handshake timeout", took, err, timeout)
			}
		})
	}
}

// TestLimitMaxConnections: past limits.max_connections every new
// connection is closed as soon as it is accepted, and the operator is told
// once; when a connection ends there is room again.
func TestLimitMaxConnections(t *testing.T) {
	const limit = 3
	n, logs := startLimited(t, coordinator.Limits{MaxConnections: limit})
	// The site holds one connection; alice fills the rest.
	var held []*grpc.ClientConn
	for i := 1; i < limit; i++ {
		cc := userConn(t, n, "alice")
		if err := listJobs(cc); err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, limit, err)
		}
		held = append(held, cc)
	}
	// A refused client keeps redialling; closed, it cannot take the slot
	// the check below waits for.
	over := userConn(t, n, "auditor")
	err := listJobs(over)
	over.Close()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("connection %d with limits.max_connections %d: %v; want it closed (Unavailable)", limit+1, limit, err)
	}
	waitLog(t, logs, "connection limit reached", "limit=3", "setting=limits.max_connections")

	held[0].Close()
	eventually(t, "a new connection once one closed", func() error {
		cc := userConn(t, n, "alice")
		defer cc.Close()
		return listJobs(cc)
	})
	waitLog(t, logs, "accepting connections again", "setting=limits.max_connections")
}

// TestLimitMaxConnectionsPerIdentity: one identity cannot hold more than
// limits.max_connections_per_identity connections; another identity is
// not affected, and a closed connection frees its slot.
func TestLimitMaxConnectionsPerIdentity(t *testing.T) {
	const limit = 2
	n, logs := startLimited(t, coordinator.Limits{MaxConnectionsPerIdentity: limit})
	var held []*grpc.ClientConn
	for i := range limit {
		cc := userConn(t, n, "alice")
		if err := listJobs(cc); err != nil {
			t.Fatalf("alice's connection %d of %d: %v", i+1, limit, err)
		}
		held = append(held, cc)
	}
	over := userConn(t, n, "alice")
	err := listJobs(over)
	over.Close()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("alice's connection %d with limits.max_connections_per_identity %d: %v; want it closed (Unavailable)", limit+1, limit, err)
	}
	waitLog(t, logs, "too many connections for this identity", "spiffe_id=spiffe://federa.demo/user/alice ",
		"limit=2", "setting=limits.max_connections_per_identity")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Any answer (here: no checkpoint yet) means the connection was served.
	_, err = federav1.NewAuditServiceClient(userConn(t, n, "auditor")).Checkpoint(ctx, &federav1.AuditCheckpointRequest{})
	if status.Code(err) == codes.Unavailable {
		t.Fatalf("the auditor, while alice is at her limit: %v; want served", err)
	}

	held[0].Close()
	eventually(t, "alice's new connection once one closed", func() error {
		cc := userConn(t, n, "alice")
		defer cc.Close()
		return listJobs(cc)
	})
}

// h2Client speaks raw HTTP/2 to the coordinator, so it can do what a
// well-behaved gRPC client never does: open more streams than the server
// allows.
type h2Client struct {
	t    *testing.T
	conn *tls.Conn
	fr   *http2.Framer
	hdec *hpack.Decoder
	addr string
	// maxStreams is what the server's SETTINGS announced (0: not said).
	maxStreams uint32
}

func dialH2(t *testing.T, n *sim.Net, user string) *h2Client {
	t.Helper()
	conn, err := tls.Dial("tcp", n.Addr(), userTLS(t, n, user))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	c := &h2Client{t: t, conn: conn, fr: http2.NewFramer(conn, conn), hdec: hpack.NewDecoder(4096, nil), addr: n.Addr()}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c
}

// open sends the headers of a JobService.WatchJob call on stream id, and,
// if req is set, the request, ending the client's side of the stream.
// Without it the coordinator's handler waits for the request: the stream
// stays open.
func (c *h2Client) open(id uint32, req *federav1.WatchJobRequest) {
	c.t.Helper()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "https"}, {":path", federav1.JobService_WatchJob_FullMethodName},
		{":authority", c.addr}, {"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
	if req == nil {
		return
	}
	msg, err := proto.Marshal(req)
	if err != nil {
		c.t.Fatal(err)
	}
	// gRPC's length-prefixed message: uncompressed, then the length.
	body := append([]byte{0, 0, 0, 0, 0}, msg...)
	binary.BigEndian.PutUint32(body[1:5], uint32(len(msg)))
	if err := c.fr.WriteData(id, true, body); err != nil {
		c.t.Fatal(err)
	}
}

// next reads frames until one that ends a stream: the stream, and either
// the RST_STREAM code or the call's grpc-status.
func (c *h2Client) next() (stream uint32, rst http2.ErrCode, grpcStatus string) {
	c.t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("read from the coordinator: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			if v, ok := f.Value(http2.SettingMaxConcurrentStreams); ok {
				c.maxStreams = v
			}
			if err := c.fr.WriteSettingsAck(); err != nil {
				c.t.Fatal(err)
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = c.fr.WritePing(true, f.Data)
			}
		case *http2.RSTStreamFrame:
			return f.StreamID, f.ErrCode, ""
		case *http2.GoAwayFrame:
			c.t.Fatalf("coordinator sent GOAWAY %s: %q", f.ErrCode, f.DebugData())
		case *http2.HeadersFrame:
			fields, err := c.hdec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				c.t.Fatal(err)
			}
			for _, h := range fields {
				if h.Name == "grpc-status" && f.StreamEnded() {
					return f.StreamID, 0, h.Value
				}
			}
		}
	}
}

// TestLimitMaxStreamsPerConnection: a client that ignores the server's
// SETTINGS_MAX_CONCURRENT_STREAMS has every stream beyond
// limits.max_streams_per_connection refused (RST_STREAM REFUSED_STREAM);
// a stream that ends makes room for the next.
func TestLimitMaxStreamsPerConnection(t *testing.T) {
	const limit = 3
	n, _ := startLimited(t, coordinator.Limits{MaxStreamsPerConnection: limit})
	c := dialH2(t, n, "alice")
	// Streams 1, 3, 5 stay open; 7 is one too many. It carries a complete
	// request, so if it were served its answer (job not found) would come
	// back instead of a refusal.
	for i := range uint32(limit) {
		c.open(2*i+1, nil)
	}
	over := uint32(2*limit + 1)
	c.open(over, &federav1.WatchJobRequest{Id: "no-such-job"})
	stream, rst, st := c.next()
	if stream != over || rst != http2.ErrCodeRefusedStream {
		t.Fatalf("stream %d ended first (RST_STREAM %s, grpc-status %q); want stream %d, one past limits.max_streams_per_connection %d, refused with REFUSED_STREAM",
			stream, rst, st, over, limit)
	}
	if c.maxStreams != limit {
		t.Errorf("the coordinator announced SETTINGS_MAX_CONCURRENT_STREAMS %d; want %d", c.maxStreams, limit)
	}

	// The client cancels stream 1; the next stream is served.
	if err := c.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	next := over + 2
	c.open(next, &federav1.WatchJobRequest{Id: "no-such-job"})
	if stream, rst, st := c.next(); stream != next || st != "5" {
		t.Fatalf("stream %d ended (RST_STREAM %s, grpc-status %q); want stream %d served once stream 1 was cancelled: NotFound (5)",
			stream, rst, st, next)
	}
}

// TestLimitMaxStreamsPerIdentity: one identity's open calls, across all
// of its connections, stop at limits.max_streams_per_identity with
// ResourceExhausted naming the identity, the limit and the setting; a
// stream that ends makes room again.
func TestLimitMaxStreamsPerIdentity(t *testing.T) {
	const limit = 3
	n, logs := startLimited(t, coordinator.Limits{MaxStreamsPerIdentity: limit})
	// A job that waits for its one site, which is gone: it stays running,
	// and every watch of it gets its state at once, then waits.
	n.StopSite("eu/paris")
	j := demoSpec()
	j.Sites, j.MinSites = []string{"eu/paris"}, 1
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	job, err := federav1.NewJobServiceClient(userConn(t, n, "alice")).SubmitJob(ctx, &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	// Two connections: the limit is the identity's, not a connection's.
	conns := []*grpc.ClientConn{userConn(t, n, "alice"), userConn(t, n, "alice")}
	watch := func(cc *grpc.ClientConn) (context.CancelFunc, error) {
		wctx, wcancel := context.WithCancel(ctx)
		w, err := federav1.NewJobServiceClient(cc).WatchJob(wctx, &federav1.WatchJobRequest{Id: job.GetId()})
		if err == nil {
			_, err = w.Recv()
		}
		if err != nil {
			wcancel()
		}
		return wcancel, err
	}
	var open []context.CancelFunc
	defer func() {
		for _, c := range open {
			c()
		}
	}()
	for i := range limit {
		stop, err := watch(conns[i%2])
		if err != nil {
			t.Fatalf("watch %d of %d: %v", i+1, limit, err)
		}
		open = append(open, stop)
	}

	_, err = watch(conns[limit%2])
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("watch %d with limits.max_streams_per_identity %d: %v; want ResourceExhausted", limit+1, limit, err)
	}
	for _, want := range []string{"spiffe://federa.demo/user/alice", "3 streams", "limits.max_streams_per_identity"} {
		if !strings.Contains(status.Convert(err).Message(), want) {
			t.Errorf("refusal %q does not say %q", status.Convert(err).Message(), want)
		}
	}
	waitLog(t, logs, "too many streams for this identity", "spiffe_id=spiffe://federa.demo/user/alice ",
		"rpc=JobService.WatchJob", "limit=3", "setting=limits.max_streams_per_identity")
	// A unary call is a stream too.
	if err := listJobs(conns[0]); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("ListJobs at the limit: %v; want ResourceExhausted", err)
	}

	open[0]()
	eventually(t, "a watch once one ended", func() error {
		stop, err := watch(conns[0])
		if err == nil {
			open = append(open, stop)
		}
		return err
	})
}

// TestLimitIdleTimeout: a connection with no call open for
// limits.idle_timeout is closed (GOAWAY); a site's connection, whose
// stream never ends, stays.
func TestLimitIdleTimeout(t *testing.T) {
	const idle = time.Second
	n, logs := startLimited(t, coordinator.Limits{IdleTimeout: idle})
	cc := userConn(t, n, "alice")
	if err := listJobs(cc); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for s := cc.GetState(); s == connectivity.Ready; s = cc.GetState() {
		if !cc.WaitForStateChange(ctx, s) {
			t.Fatalf("alice's idle connection still open after %s; want it closed after limits.idle_timeout (%s)", time.Since(start).Round(time.Millisecond), idle)
		}
	}
	if took := time.Since(start); took < idle/2 {
		t.Errorf("idle connection closed after %s, well before limits.idle_timeout %s", took, idle)
	}
	if strings.Contains(logs.String(), "site disconnected") {
		t.Errorf("the site's connection was closed too; its stream keeps it from being idle:\n%s", logs)
	}
}
