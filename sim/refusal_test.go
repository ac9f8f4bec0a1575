package sim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/attest"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

// dialAs connects to the coordinator with an arbitrary identity that trusts
// the demo CA for the server.
func dialAs(t *testing.T, n *sim.Net, id *attest.Identity) *grpc.ClientConn {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString(sim.DefaultTrustDomain)
	cc, err := grpc.NewClient(n.Addr(), grpc.WithTransportCredentials(attest.ClientCredentials(id, attest.AllowIDs(attest.CoordinatorID(td)), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func identityFor(t *testing.T, ca *attest.CA, id string, trust ...*attest.CA) *attest.Identity {
	t.Helper()
	svid, err := ca.Issue(spiffeid.RequireFromString(id), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bundles := []*x509bundle.Bundle{ca.Bundle()}
	for _, o := range trust {
		bundles = append(bundles, o.Bundle())
	}
	return attest.NewIdentity(svid, bundles...)
}

func TestHandshakeRefusals(t *testing.T) {
	n, logs := startNet(t, sim.Options{})
	evil, err := attest.NewCA(spiffeid.RequireTrustDomainFromString("evil.example"))
	if err != nil {
		t.Fatal(err)
	}
	// Only bounds a hang: a refused handshake fails a call at once.
	ctx := func() context.Context {
		c, cancel := context.WithTimeout(context.Background(), hangBound)
		t.Cleanup(cancel)
		return c
	}
	tests := []struct {
		name    string
		id      *attest.Identity
		wantLog string
	}{
		{"site not listed in the coordinator config", identityFor(t, n.CA, "spiffe://federa.demo/site/eu/rogue"),
			"spiffe://federa.demo/site/eu/rogue is not listed"},
		{"certificate from another trust domain", identityFor(t, evil, "spiffe://evil.example/user/alice", n.CA),
			"spiffe://evil.example/user/alice"},
		{"workload that is neither site nor user", identityFor(t, n.CA, "spiffe://federa.demo/payments"),
			"spiffe://federa.demo/payments is neither a listed site nor a user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := dialAs(t, n, tt.id)
			_, err := federav1.NewJobServiceClient(cc).ListJobs(ctx(), &federav1.ListJobsRequest{})
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("ListJobs as %s: %v; want refused at the handshake", tt.id.ID(), err)
			}
			stream, err := federav1.NewSiteServiceClient(cc).Connect(ctx())
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("site stream as %s: %v; want refused at the handshake", tt.id.ID(), err)
			}
			waitLogLine(t, logs, `msg="refused peer"`, tt.wantLog)
		})
	}
}

func TestRefusedAtTheRPC(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()

	t.Run("a site may not use the job API", func(t *testing.T) {
		cc := dialAs(t, n, identityFor(t, n.CA, "spiffe://federa.demo/site/eu/paris"))
		_, err := federav1.NewJobServiceClient(cc).ListJobs(ctx, &federav1.ListJobsRequest{})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "site/eu/paris may not call JobService.ListJobs") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a user may not open a site stream", func(t *testing.T) {
		cc := dialAs(t, n, identityFor(t, n.CA, "spiffe://federa.demo/user/alice"))
		stream, err := federav1.NewSiteServiceClient(cc).Connect(ctx)
		if err == nil {
			_ = stream.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Hello{Hello: &federav1.Hello{}}})
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "user/alice may not call SiteService.Connect: only a site listed") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a site stream must start with hello", func(t *testing.T) {
		cc := dialAs(t, n, identityFor(t, n.CA, "spiffe://federa.demo/site/eu/paris"))
		stream, err := federav1.NewSiteServiceClient(cc).Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = stream.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Heartbeat{Heartbeat: &federav1.Heartbeat{}}})
		_, err = stream.Recv()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "must be a hello") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a site refuses a coordinator with the wrong ID", func(t *testing.T) {
		// The site expects another ID than the coordinator presents.
		td := spiffeid.RequireTrustDomainFromString(sim.DefaultTrustDomain)
		wrong := spiffeid.RequireFromPath(td, "/not-the-coordinator")
		id := identityFor(t, n.CA, "spiffe://federa.demo/site/eu/paris")
		cc, err := grpc.NewClient(n.Addr(), grpc.WithTransportCredentials(attest.ClientCredentials(id, attest.AllowIDs(wrong), nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		_, err = federav1.NewJobServiceClient(cc).ListJobs(ctx, &federav1.ListJobsRequest{})
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "not an allowed peer") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestSubmitNeedsTheDataScientistRole: a valid user SVID without the role
// is refused at the RPC, naming the caller, the RPC and the missing role.
func TestSubmitNeedsTheDataScientistRole(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	for _, user := range []string{"mallory", "auditor"} {
		c, closeFn, err := n.Dial(user)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.SubmitJob(t.Context(), &federav1.SubmitJobRequest{Spec: demoSpec().Proto()})
		closeFn()
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "user/"+user+" may not call JobService.SubmitJob: it needs the data-scientist role") {
			t.Fatalf("%s submitting: %v", user, err)
		}
	}
}
