package attest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/federa-dev/federa/attest"
)

// TestClockSkew: a client whose clock is off from the CA's (which issued
// the server's SVID just now) and the server's, over a real mTLS
// handshake. Within attest.MaxClockSkew behind, and ahead by less than the
// SVID's remaining life, the handshake succeeds; beyond, the client's
// error names the certificate, the gap and clock skew — not only Go's
// "certificate has expired or is not yet valid".
func TestClockSkew(t *testing.T) {
	ca := newCA(t, td)
	coordID := attest.CoordinatorID(td)
	srv := startServer(t, identity(t, ca, coordID, time.Hour), attest.AllowIDs(paris))
	client := identity(t, ca, paris, time.Hour)
	cases := []struct {
		skew time.Duration
		want []string // in the error; nil: the call succeeds
	}{
		{0, nil},
		{-5 * time.Minute, nil},
		{+5 * time.Minute, nil},
		{+50 * time.Minute, nil}, // the SVID still has 10 min left by this clock
		{-7 * time.Minute, []string{"not yet valid", "is valid only from", "after this machine's clock", "clock skew", "behind"}},
		{-30 * time.Minute, []string{"is valid only from", "clock skew"}},
		{+90 * time.Minute, []string{"expired at", "before this machine's clock", "clock skew", "ahead"}},
	}
	for _, tc := range cases {
		t.Run(tc.skew.String(), func(t *testing.T) {
			skew := tc.skew
			now := func() time.Time { return time.Now().Add(skew) }
			cc, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(attest.ClientCredentials(client, attest.AllowIDs(coordID), nil, attest.WithClock(now))))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			if tc.want == nil {
				if err != nil {
					t.Fatalf("clock %s off: %v", skew, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("clock %s off: the handshake succeeded", skew)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("clock %s off: error %q does not say %q", skew, err, w)
				}
			}
			t.Logf("clock %s off: %v", skew, err)
		})
	}
}

// TestServerClockSkew: the same slack on the server's side, for a client
// whose SVID comes from a CA whose clock is ahead (what a server behind
// sees), and the server's log names clock skew beyond it.
func TestServerClockSkew(t *testing.T) {
	ca := newCA(t, td)
	coordID := attest.CoordinatorID(td)
	srv := startServer(t, identity(t, ca, coordID, time.Hour), attest.AllowIDs(paris))
	for _, tc := range []struct {
		ahead time.Duration
		ok    bool
	}{{4 * time.Minute, true}, {10 * time.Minute, false}} {
		ahead := tc.ahead
		skewed := newCA(t, td)
		skewed.Cert, skewed.Key = ca.Cert, ca.Key
		skewed.Now = func() time.Time { return time.Now().Add(ahead) }
		err := check(t, srv.addr, identity(t, skewed, paris, time.Hour), attest.AllowIDs(coordID), nil)
		if tc.ok != (err == nil) {
			t.Fatalf("client SVID issued %s ahead: %v", ahead, err)
		}
	}
	if log := srv.log.String(); !strings.Contains(log, "clock skew") || !strings.Contains(log, "is valid only from") {
		t.Fatalf("the server's refusal does not name clock skew:\n%s", log)
	}
}
