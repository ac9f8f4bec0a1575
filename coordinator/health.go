package coordinator

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/attest"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// The gRPC health service (grpc.health.v1.Health) answers for the whole
// server ("") and for each federa service by its full name. It says
// NOT_SERVING from New until Run has resumed the stored jobs and serves,
// and again from the start of shutdown, so a load balancer or probe never
// sends work to a coordinator that cannot take it. It sits behind the same
// mTLS as every other service: any peer the handshake admits (a listed
// site or a user of the trust domain) may ask, with no access policy call.

// healthServices are the names the health service reports on.
var healthServices = []string{
	"",
	federav1.SiteService_ServiceDesc.ServiceName, federav1.JobService_ServiceDesc.ServiceName,
	federav1.QueryService_ServiceDesc.ServiceName, federav1.AuditService_ServiceDesc.ServiceName,
	federav1.ApprovalService_ServiceDesc.ServiceName,
}

func (c *Coordinator) registerHealth() {
	c.health = health.NewServer()
	for _, s := range healthServices {
		c.health.SetServingStatus(s, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	healthpb.RegisterHealthServer(c.srv, c.health)
}

// setServing marks every service SERVING: Run calls it once the jobs are
// resumed and the server is accepting.
func (c *Coordinator) setServing() {
	for _, s := range healthServices {
		c.health.SetServingStatus(s, healthpb.HealthCheckResponse_SERVING)
	}
}

// isHealthRPC reports whether fullMethod is the health service's.
func isHealthRPC(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/"+healthpb.Health_ServiceDesc.ServiceName+"/")
}

// healthPeer lets an authenticated peer through to the health service
// without the access policy, which describes federa's own RPCs only.
func healthPeer(ctx context.Context) error {
	if _, err := attest.PeerID(ctx); err != nil {
		return status.Error(codes.Unauthenticated, "an mTLS SPIFFE identity is required")
	}
	return nil
}
