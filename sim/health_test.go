package sim_test

import (
	"context"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/federa-dev/federa/attest"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

// dialHealth is a health client over mTLS as user.
func dialHealth(t *testing.T, n *sim.Net, user string) healthpb.HealthClient {
	t.Helper()
	id, err := attest.LoadIdentity(n.IdentityDir(user))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(n.Addr(), grpc.WithTransportCredentials(attest.ClientCredentials(id, attest.AllowIDs(attest.CoordinatorID(spiffeid.RequireTrustDomainFromString(sim.DefaultTrustDomain))), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

// TestHealthServing: the coordinator answers the standard gRPC health
// service over its mTLS port, SERVING for the server and each federa
// service once it runs, for any identity the handshake admits (mallory
// has no role and is still told).
func TestHealthServing(t *testing.T) {
	n, _ := startNet(t, sim.Options{Sites: shippedSites[:1]})
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	for _, user := range []string{"alice", "mallory"} {
		h := dialHealth(t, n, user)
		for _, svc := range []string{"", federav1.JobService_ServiceDesc.ServiceName, federav1.SiteService_ServiceDesc.ServiceName} {
			resp, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil {
				t.Fatalf("%s: health check %q: %v", user, svc, err)
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("%s: health of %q is %s, want SERVING", user, svc, resp.GetStatus())
			}
		}
	}
}
