package coordinator

import (
	"context"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/internal/logkeys"
	"github.com/federa-dev/federa/policy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// SiteAdminRole is the prefix of the role that makes a user the
// administrator of one site: "site-admin:eu/paris".
const SiteAdminRole = "site-admin:"

// Every RPC passes through the access policy (policy/access, or the
// config's access_policy folder) before its handler runs: unary calls in
// accessUnary, streams at their first message in accessStream. The
// resource an RPC acts on comes from its request (resourceOf); an RPC
// without an entry there is refused, so a new RPC is closed until it is
// given one.

// rpcName turns "/federa.v1.JobService/SubmitJob" into "JobService.SubmitJob".
func rpcName(fullMethod string) string {
	svc, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if i := strings.LastIndexByte(svc, '.'); i >= 0 {
		svc = svc[i+1:]
	}
	return svc + "." + method
}

// callerOf describes a verified peer to the access policy.
func (c *Coordinator) callerOf(id spiffeid.ID) policy.Caller {
	cl := policy.Caller{ID: id.String(), Kind: "other"}
	switch {
	case id == attest.CoordinatorID(c.cfg.Identity.ID().TrustDomain()):
		cl.Kind = "coordinator"
	case attest.IsUser(id):
		cl.Kind = "user"
		cl.Roles = c.cfg.Users[id.String()]
		cl.AdminOf = adminOf(cl.Roles)
	default:
		if name, ok := attest.SiteName(id); ok {
			cl.Kind, cl.Site = "site", name
			_, cl.Listed = c.sites[id]
		}
	}
	return cl
}

// adminOf lists the sites the site-admin roles name.
func adminOf(roles []string) []string {
	var out []string
	for _, r := range roles {
		if site, ok := strings.CutPrefix(r, SiteAdminRole); ok {
			out = append(out, site)
		}
	}
	return out
}

// authorizeID asks the access policy whether id may call rpc on res. A
// refusal is logged and returned as PermissionDenied naming the caller, the
// RPC and what is missing.
func (c *Coordinator) authorizeID(ctx context.Context, id spiffeid.ID, rpc string, res policy.Resource) error {
	d := c.access.Decide(ctx, policy.AccessRequest{Caller: c.callerOf(id), RPC: rpc, Resource: res})
	c.metrics.access(d.Allow)
	if d.Allow {
		return nil
	}
	err := d.Error(id.String(), rpc)
	c.log.Warn("access denied", logkeys.SpiffeID, id.String(), "rpc", rpc, logkeys.Reason, strings.Join(d.Reasons, "; "))
	return status.Error(codes.PermissionDenied, err.Error())
}

// resourceOf is what a request of peer acts on, for the access policy. A
// message type the coordinator does not know how to describe is refused.
func (c *Coordinator) resourceOf(ctx context.Context, peer spiffeid.ID, rpc string, req any) (policy.Resource, error) {
	jobOwner := func(id string) (policy.Resource, error) {
		j, _, _, found := c.snapshot(id)
		if found {
			return policy.Resource{JobOwner: j.GetRequester()}, nil
		}
		// Would the caller be allowed if the job were theirs? Then it is
		// simply not found; otherwise the refusal, so that probing job IDs
		// tells a caller without the role nothing.
		if err := c.authorizeID(ctx, peer, rpc, policy.Resource{JobOwner: peer.String()}); err != nil {
			return policy.Resource{}, err
		}
		return policy.Resource{}, status.Errorf(codes.NotFound, "job %q not found", id)
	}
	switch r := req.(type) {
	case *federav1.SubmitJobRequest, *federav1.ListJobsRequest, *federav1.SubmitQueryRequest, *federav1.ListQueriesRequest,
		*federav1.AuditCheckpointRequest, *federav1.AuditExportRequest, *federav1.AuditProofRequest:
		return policy.Resource{}, nil
	case *federav1.GetJobRequest:
		return jobOwner(r.GetId())
	case *federav1.GetQueryRequest:
		q, found := c.queryRecord(r.GetId())
		if found {
			return policy.Resource{JobOwner: q.GetRequester()}, nil
		}
		if err := c.authorizeID(ctx, peer, rpc, policy.Resource{JobOwner: peer.String()}); err != nil {
			return policy.Resource{}, err
		}
		return policy.Resource{}, status.Errorf(codes.NotFound, "query %q not found", r.GetId())
	case *federav1.WatchJobRequest:
		return jobOwner(r.GetId())
	case *federav1.CancelJobRequest:
		return jobOwner(r.GetId())
	case *federav1.GetModelRequest:
		return jobOwner(r.GetJobId())
	case *federav1.ListDecisionsRequest:
		return jobOwner(r.GetJobId())
	case *federav1.ListRoundsRequest:
		return jobOwner(r.GetJobId())
	case *federav1.ListFeaturesRequest:
		return jobOwner(r.GetJobId())
	case *federav1.ListJobSitesRequest:
		return jobOwner(r.GetJobId())
	case *federav1.ListPendingRequest:
		return policy.Resource{Site: r.GetSite()}, nil
	case *federav1.DecideRequest:
		return policy.Resource{Site: r.GetSite()}, nil
	case *federav1.SiteMessage:
		// The first message of a site stream: the site it claims to be.
		site := r.GetHello().GetSite()
		if site == "" {
			site, _ = attest.SiteName(peer)
		}
		return policy.Resource{Site: site}, nil
	}
	return policy.Resource{}, status.Errorf(codes.PermissionDenied, "%s: the coordinator has no access rule for request type %T", rpc, req)
}

// check authorizes one request message of rpc.
func (c *Coordinator) check(ctx context.Context, rpc string, req any) error {
	peer, err := attest.PeerID(ctx)
	if err != nil {
		return status.Error(codes.Unauthenticated, "an mTLS SPIFFE identity is required")
	}
	res, err := c.resourceOf(ctx, peer, rpc, req)
	if err != nil {
		return err
	}
	return c.authorizeID(ctx, peer, rpc, res)
}

func (c *Coordinator) accessUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if isHealthRPC(info.FullMethod) {
		if err := healthPeer(ctx); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
	if err := c.check(ctx, rpcName(info.FullMethod), req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (c *Coordinator) accessStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if isHealthRPC(info.FullMethod) {
		if err := healthPeer(ss.Context()); err != nil {
			return err
		}
		return handler(srv, ss)
	}
	return handler(srv, &checkedStream{ServerStream: ss, c: c, rpc: rpcName(info.FullMethod)})
}

// checkedStream authorizes a stream at its first message, which carries
// what the stream is about (the job to watch, the site a stream is for).
// Every RPC's handler reads that message before it does anything.
type checkedStream struct {
	grpc.ServerStream
	c       *Coordinator
	rpc     string
	checked bool
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if !s.checked {
		if err := s.c.check(s.Context(), s.rpc, m); err != nil {
			return err
		}
		s.checked = true
	}
	return nil
}
