package coordinator

import (
	"context"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/internal/logkeys"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/spec"
)

// approvalService relays site-admins' decisions on jobs held for approval.
// The access policy has already checked that the caller is site-admin of
// the site the request names; the site checks the admin again against its
// own config before it records anything (site.Config.RemoteApprovers).
type approvalService struct {
	federav1.UnimplementedApprovalServiceServer
	c *Coordinator
}

// ListPending is the coordinator's view of what waits at a site: running
// jobs whose latest admission answer from that site is "pending approval".
func (s *approvalService) ListPending(ctx context.Context, req *federav1.ListPendingRequest) (*federav1.ListPendingResponse, error) {
	if !s.c.knownSite(req.GetSite()) {
		return nil, s.c.unknownSite("field site", req.GetSite())
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	out := &federav1.ListPendingResponse{}
	for _, js := range s.c.jobs {
		j := js.job
		if isFinal(j.GetStatus()) {
			continue
		}
		for _, sum := range j.GetSites() {
			a := sum.GetAdmission()
			if sum.GetSite() != req.GetSite() || a.GetOutcome() != federav1.Admission_OUTCOME_PENDING_APPROVAL {
				continue
			}
			out.Pending = append(out.Pending, &federav1.PendingApproval{
				JobId: j.GetId(), JobName: j.GetSpec().GetName(), Requester: j.GetRequester(),
				Dataset: j.GetSpec().GetDataset(), Reasons: a.GetReasons(), PolicyRevision: a.GetPolicyRevision(),
				CreatedUnixMs: j.GetCreatedUnixMs(),
			})
		}
	}
	sort.Slice(out.Pending, func(a, b int) bool {
		pa, pb := out.Pending[a], out.Pending[b]
		return pa.GetCreatedUnixMs() < pb.GetCreatedUnixMs() || pa.GetCreatedUnixMs() == pb.GetCreatedUnixMs() && pa.GetJobId() < pb.GetJobId()
	})
	return out, nil
}

// Decide sends the decision to the site as a DECIDE task and waits for the
// site's answer: the decision counts only once the site recorded it.
func (s *approvalService) Decide(ctx context.Context, req *federav1.DecideRequest) (*federav1.DecideResponse, error) {
	c := s.c
	who := callerID(ctx)
	site := req.GetSite()
	if !c.knownSite(site) {
		return nil, c.unknownSite("field site", site)
	}
	if strings.TrimSpace(req.GetReason()) == "" {
		return nil, status.Error(codes.InvalidArgument, "field reason: required; it is recorded with the decision at the site and in the audit log")
	}
	if err := spec.CheckReason(req.GetReason()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "field reason: %v", err)
	}
	j, _, _, ok := c.snapshot(req.GetJobId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "job %q not found", req.GetJobId())
	}
	if isFinal(j.GetStatus()) {
		return nil, status.Errorf(codes.FailedPrecondition, "job %s already ended (%s)", j.GetId(), j.GetStatus().Name())
	}
	col, err := c.fanOut(ctx, fan{job: j, kind: federav1.TaskKind_TASK_KIND_DECIDE, sites: []string{site}, minSites: 1, timeout: dryRunTimeout,
		decision: &federav1.ApprovalDecision{Approve: req.GetApprove(), Reason: req.GetReason(), DecidedBy: who}})
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "relay decision to %s: %v", site, err)
	}
	if col.Outcome() != Done {
		return nil, status.Errorf(codes.FailedPrecondition, "site %s did not record the decision: %s", site, col.Reason())
	}
	st := col.Answers()[site].result.GetApprovalStatus()
	e, err := auditlog.NewEntry(j.GetId(), site, who, auditlog.Approval{Decision: st, Reason: req.GetReason()})
	if err == nil {
		err = c.audit(true, e)
	}
	if err != nil {
		// The site holds the decision; the log must too before anyone is
		// told it happened. Deciding again is idempotent at the site.
		return nil, status.Errorf(codes.Internal, "site %s recorded the decision but the audit log did not: %v; decide again once the log is writable", site, err)
	}
	c.log.Info("approval relayed", logkeys.Job, j.GetId(), logkeys.Site, site, "status", st, "by", who)
	return &federav1.DecideResponse{Site: site, JobId: j.GetId(), Status: st, DecidedBy: who}, nil
}
