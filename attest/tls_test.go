package attest_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/internal/testutil"
)

// syncBuffer is a log sink the test reads while the server writes.
type syncBuffer = testutil.Buffer

// identity issues id from ca into a directory and loads it back, the way
// every federa process gets its identity.
func identity(t *testing.T, ca *attest.CA, id spiffeid.ID, ttl time.Duration) *attest.Identity {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "id")
	if err := ca.IssueToDir(id, ttl, dir); err != nil {
		t.Fatalf("IssueToDir(%s): %v", id, err)
	}
	ident, err := attest.LoadIdentity(dir)
	if err != nil {
		t.Fatalf("LoadIdentity(%s): %v", id, err)
	}
	return ident
}

// testServer is a real gRPC health server on loopback behind
// ServerCredentials. It records the peer ID of every call that gets through.
type testServer struct {
	addr string
	log  *syncBuffer

	mu    sync.Mutex
	calls []spiffeid.ID
}

func (s *testServer) seen() []spiffeid.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]spiffeid.ID(nil), s.calls...)
}

func startServer(t *testing.T, src attest.Source, authorize attest.Authorizer) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: lis.Addr().String(), log: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(ts.log, nil))
	srv := grpc.NewServer(
		grpc.Creds(attest.ServerCredentials(src, authorize, logger)),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			id, err := attest.PeerID(ctx)
			if err != nil {
				return nil, status.Errorf(codes.Unauthenticated, "peer id: %v", err)
			}
			ts.mu.Lock()
			ts.calls = append(ts.calls, id)
			ts.mu.Unlock()
			return h(ctx, req)
		}),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return ts
}

// check makes one health Check call over mTLS as src, accepting only a
// server that expectServer authorizes.
func check(t *testing.T, addr string, src attest.Source, expectServer attest.Authorizer, log *slog.Logger) error {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(attest.ClientCredentials(src, expectServer, log)))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	defer cc.Close()
	// Only bounds a hang: a refused handshake fails the call at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health status = %v, want SERVING", resp.GetStatus())
	}
	return err
}

func TestMTLS(t *testing.T) {
	ca := newCA(t, td)
	coordID := attest.CoordinatorID(td)
	coord := identity(t, ca, coordID, time.Hour)
	expectCoord := attest.AllowIDs(coordID)

	// Same trust domain name, different CA: an impostor.
	impostorCA := newCA(t, td)
	otherCA := newCA(t, otherTD)

	pastCA := newCA(t, td)
	pastCA.Cert, pastCA.Key = ca.Cert, ca.Key
	pastCA.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	futureCA := newCA(t, td)
	futureCA.Cert, futureCA.Key = ca.Cert, ca.Key
	futureCA.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }

	otherParis := spiffeid.RequireFromString("spiffe://other.org/site/eu/paris")

	tests := []struct {
		name   string
		server attest.Source     // nil means the coordinator
		allow  attest.Authorizer // the server's authorizer
		client attest.Source
		expect attest.Authorizer // which server the client accepts
		// wantOK is whether the call gets through; wantLog is the ID the
		// server logs as refused ("" when the server refuses nothing).
		wantOK  bool
		wantLog string
		reason  string // why, as logged by whichever side refused
	}{
		{
			name:   "allowed client",
			allow:  attest.AllowIDs(paris, boston),
			client: identity(t, ca, paris, time.Hour),
			expect: expectCoord,
			wantOK: true,
		},
		{
			name:    "client refused by the authorizer",
			allow:   attest.AllowIDs(paris),
			client:  identity(t, ca, boston, time.Hour),
			expect:  expectCoord,
			wantLog: boston.String(),
			reason:  "is not an allowed peer",
		},
		{
			name:  "client from another trust domain",
			allow: func(spiffeid.ID) error { return nil },
			// It trusts example.org, so the refusal is the server's.
			client:  attest.NewIdentity(mustIssue(t, otherCA, otherParis, time.Hour), otherCA.Bundle(), ca.Bundle()),
			expect:  expectCoord,
			wantLog: otherParis.String(),
			reason:  "no X.509 bundle for trust domain",
		},
		{
			name:    "client from an impostor CA for the same trust domain",
			allow:   func(spiffeid.ID) error { return nil },
			client:  attest.NewIdentity(mustIssue(t, impostorCA, paris, time.Hour), ca.Bundle()),
			expect:  expectCoord,
			wantLog: paris.String(),
			reason:  "signed by unknown authority",
		},
		{
			name:    "client with an expired SVID",
			allow:   attest.AllowIDs(paris),
			client:  attest.NewIdentity(mustIssue(t, pastCA, paris, time.Hour), ca.Bundle()),
			expect:  expectCoord,
			wantLog: paris.String(),
			reason:  "is after",
		},
		{
			name:    "client with a not yet valid SVID",
			allow:   attest.AllowIDs(paris),
			client:  attest.NewIdentity(mustIssue(t, futureCA, paris, time.Hour), ca.Bundle()),
			expect:  expectCoord,
			wantLog: paris.String(),
			reason:  "is before",
		},
		{
			// A site that expects the coordinator must not talk to another
			// site posing as one, even with a valid SVID from the same CA.
			name:   "server is not the expected ID",
			server: identity(t, ca, boston, time.Hour),
			allow:  attest.AllowIDs(paris),
			client: identity(t, ca, paris, time.Hour),
			expect: expectCoord,
			reason: "is not an allowed peer",
		},
		{
			name:   "server from an impostor CA",
			server: attest.NewIdentity(mustIssue(t, impostorCA, coordID, time.Hour), ca.Bundle()),
			allow:  attest.AllowIDs(paris),
			client: identity(t, ca, paris, time.Hour),
			expect: expectCoord,
			reason: "signed by unknown authority",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server := tt.server
			if server == nil {
				server = coord
			}
			ts := startServer(t, server, tt.allow)
			clientLog := &syncBuffer{}
			err := check(t, ts.addr, tt.client, tt.expect, slog.New(slog.NewTextHandler(clientLog, nil)))

			if tt.wantOK {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if got := ts.seen(); len(got) != 1 || got[0] != tt.client.ID() {
					t.Errorf("server saw peers %v, want [%s]", got, tt.client.ID())
				}
				if s := ts.log.String(); strings.Contains(s, "refused peer") {
					t.Errorf("server logged a refusal for an allowed peer:\n%s", s)
				}
				return
			}
			if err == nil {
				t.Fatal("Check succeeded; want the handshake to fail")
			}
			if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
				t.Errorf("Check error code %s (%v), want Unavailable", c, err)
			}
			if got := ts.seen(); len(got) != 0 {
				t.Errorf("the call reached the server as %v", got)
			}
			if tt.wantLog != "" {
				ts.log.WaitFor(t, "refused peer", "spiffe_id="+tt.wantLog, tt.reason)
			} else {
				// The client refused the server; it says so and names it.
				clientLog.WaitFor(t, "refused peer", "spiffe_id="+server.ID().String(), tt.reason)
			}
		})
	}
}

func TestClientRefusalReason(t *testing.T) {
	ca := newCA(t, td)
	ts := startServer(t, identity(t, ca, boston, time.Hour), attest.AllowIDs(paris))
	err := check(t, ts.addr, identity(t, ca, paris, time.Hour), attest.AllowIDs(attest.CoordinatorID(td)), nil)
	if err == nil {
		t.Fatal("client accepted a server with the wrong ID")
	}
	// The error a user sees names the server it refused and why.
	for _, w := range []string{boston.String(), "not an allowed peer"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func TestServerRefusesPlaintextClient(t *testing.T) {
	ca := newCA(t, td)
	ts := startServer(t, identity(t, ca, attest.CoordinatorID(td), time.Hour), func(spiffeid.ID) error { return nil })
	cc, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Fatal("plaintext call succeeded")
	}
	if got := ts.seen(); len(got) != 0 {
		t.Errorf("plaintext call reached the server as %v", got)
	}
}

func TestRefusalLogNamesReason(t *testing.T) {
	ca := newCA(t, td)
	ts := startServer(t, identity(t, ca, attest.CoordinatorID(td), time.Hour), func(id spiffeid.ID) error {
		return errors.New("site is on holiday")
	})
	if err := check(t, ts.addr, identity(t, ca, paris, time.Hour), attest.AllowIDs(attest.CoordinatorID(td)), nil); err == nil {
		t.Fatal("refused client got through")
	}
	ts.log.WaitFor(t, "level=WARN", "refused peer", "spiffe_id="+paris.String(), "site is on holiday")
}

func TestNilLoggerRefusesQuietly(t *testing.T) {
	// A nil logger must not disable verification.
	ca := newCA(t, td)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(attest.ServerCredentials(identity(t, ca, attest.CoordinatorID(td), time.Hour), attest.AllowIDs(paris), nil)))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()
	expect := attest.AllowIDs(attest.CoordinatorID(td))
	if err := check(t, lis.Addr().String(), identity(t, ca, boston, time.Hour), expect, nil); err == nil {
		t.Error("refused client got through with a nil logger")
	}
	if err := check(t, lis.Addr().String(), identity(t, ca, paris, time.Hour), expect, nil); err != nil {
		t.Errorf("allowed client with a nil logger: %v", err)
	}
}

func TestAllowIDs(t *testing.T) {
	allow := attest.AllowIDs(paris, attest.CoordinatorID(td))
	tests := []struct {
		id string
		ok bool
	}{
		{"spiffe://example.org/site/eu/paris", true},
		{"spiffe://example.org/coordinator", true},
		{"spiffe://example.org/site/us/boston", false},
		{"spiffe://other.org/site/eu/paris", false},
		{"spiffe://example.org/site/eu/paris/extra", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			err := allow(spiffeid.RequireFromString(tt.id))
			if tt.ok != (err == nil) {
				t.Fatalf("AllowIDs(...)(%s) = %v, want ok=%v", tt.id, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), tt.id) {
				t.Errorf("error %q does not name the refused ID", err)
			}
		})
	}
	if err := attest.AllowIDs()(paris); err == nil {
		t.Error("an empty allow list accepted a peer")
	}
}

func TestPeerIDWithoutTLS(t *testing.T) {
	tests := []struct {
		name string
		ctx  context.Context
	}{
		{"no peer", context.Background()},
		{"peer without auth info", peer.NewContext(context.Background(), &peer.Peer{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := attest.PeerID(tt.ctx); !errors.Is(err, attest.ErrNoPeerID) {
				t.Errorf("PeerID = %v, want ErrNoPeerID", err)
			}
		})
	}
}

func mustIssue(t *testing.T, ca *attest.CA, id spiffeid.ID, ttl time.Duration) *x509svid.SVID {
	t.Helper()
	svid, err := ca.Issue(id, ttl)
	if err != nil {
		t.Fatalf("Issue(%s): %v", id, err)
	}
	return svid
}
