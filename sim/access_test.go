package sim_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/coordinator"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/site"
	"github.com/federa-dev/federa/spec"
)

// The access-test federation's extra principals (sim's demo users are
// alice, auditor and mallory).
const (
	bobID      = "spiffe://federa.demo/user/bob"
	opsID      = "spiffe://federa.demo/user/ops"
	parisAdmin = "spiffe://federa.demo/user/admin-eu-paris"
	spareSite  = "spiffe://federa.demo/site/eu/spare" // listed, never started
)

// accessNet is a sim whose coordinator also knows bob (a second data
// scientist), ops (operator), admin-eu-paris (site-admin of eu/paris) and
// a listed site that no agent runs, so a test can act as it.
func accessNet(t *testing.T, opts sim.Options) (*sim.Net, *syncBuffer) {
	t.Helper()
	extra := opts.Coordinator
	opts.Coordinator = func(c *coordinator.Config) {
		if extra != nil {
			defer extra(c)
		}
		c.Users[bobID] = []string{"data-scientist"}
		c.Users[opsID] = []string{"operator"}
		c.Users[parisAdmin] = []string{"site-admin:eu/paris"}
		for _, s := range []string{"us/boston", "sg/singapore"} {
			c.Users["spiffe://federa.demo/user/admin-"+strings.ReplaceAll(s, "/", "-")] = []string{"site-admin:" + s}
		}
		c.Sites = append(c.Sites, spiffeid.RequireFromString(spareSite))
	}
	return startNet(t, opts)
}

// rpcCall calls one RPC over cc with a request about job (alice's, ended)
// and site eu/paris, and returns the error: PermissionDenied means the
// access policy refused; anything else means the call got past it.
type rpcCall func(ctx context.Context, cc *grpc.ClientConn, job string) error

func drain[T any](s interface{ Recv() (T, error) }, err error) error {
	if err != nil {
		return err
	}
	for {
		if _, err := s.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

var rpcCalls = map[string]rpcCall{
	"JobService.SubmitJob": func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
		// An empty spec: past the access policy it is refused as invalid,
		// so an allowed caller starts no job.
		_, err := federav1.NewJobServiceClient(cc).SubmitJob(ctx, &federav1.SubmitJobRequest{Spec: &federav1.JobSpec{}})
		return err
	},
	"JobService.GetJob": func(ctx context.Context, cc *grpc.ClientConn, job string) error {
		_, err := federav1.NewJobServiceClient(cc).GetJob(ctx, &federav1.GetJobRequest{Id: job})
		return err
	},
	"JobService.ListJobs": func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
		_, err := federav1.NewJobServiceClient(cc).ListJobs(ctx, &federav1.ListJobsRequest{})
		return err
	},
	"JobService.WatchJob": func(ctx context.Context, cc *grpc.ClientConn, job string) error {
		s, err := federav1.NewJobServiceClient(cc).WatchJob(ctx, &federav1.WatchJobRequest{Id: job})
		return drain[*federav1.JobEvent](s, err)
	},
	"JobService.CancelJob": func(ctx context.Context, cc *grpc.ClientConn, job string) error {
		// The job has ended: past the access policy this is
		// FailedPrecondition, and nothing is cancelled.
		_, err := federav1.NewJobServiceClient(cc).CancelJob(ctx, &federav1.CancelJobRequest{Id: job})
		return err
	},
	"JobService.GetModel": func(ctx context.Context, cc *grpc.ClientConn, job string) error {
		s, err := federav1.NewJobServiceClient(cc).GetModel(ctx, &federav1.GetModelRequest{JobId: job})
		return drain[*federav1.ModelChunk](s, err)
	},
	"JobService.ListDecisions": func(ctx context.Context, cc *grpc.ClientConn, job string) error {
		_, err := federav1.NewJobServiceClient(cc).ListDecisions(ctx, &federav1.ListDecisionsRequest{JobId: job})
		return err
	},
	"JobService.ListRounds": func(ctx context.Context, cc *grpc.ClientConn, job string) error {
		_, err := federav1.NewJobServiceClient(cc).ListRounds(ctx, &federav1.ListRoundsRequest{JobId: job})
		return err
	},
	"JobService.ListJobSites": func(ctx context.Context, cc *grpc.ClientConn, job string) error {
		_, err := federav1.NewJobServiceClient(cc).ListJobSites(ctx, &federav1.ListJobSitesRequest{JobId: job})
		return err
	},
	"JobService.ListFeatures": func(ctx context.Context, cc *grpc.ClientConn, job string) error {
		_, err := federav1.NewJobServiceClient(cc).ListFeatures(ctx, &federav1.ListFeaturesRequest{JobId: job})
		return err
	},
	"AuditService.Checkpoint": func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
		_, err := federav1.NewAuditServiceClient(cc).Checkpoint(ctx, &federav1.AuditCheckpointRequest{})
		return err
	},
	"AuditService.Export": func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
		s, err := federav1.NewAuditServiceClient(cc).Export(ctx, &federav1.AuditExportRequest{})
		return drain[*federav1.AuditLeaf](s, err)
	},
	"AuditService.Proof": func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
		_, err := federav1.NewAuditServiceClient(cc).Proof(ctx, &federav1.AuditProofRequest{})
		return err
	},
	"ApprovalService.ListPending": func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
		_, err := federav1.NewApprovalServiceClient(cc).ListPending(ctx, &federav1.ListPendingRequest{Site: "eu/paris"})
		return err
	},
	"ApprovalService.Decide": func(ctx context.Context, cc *grpc.ClientConn, job string) error {
		// The job has ended: past the access policy this is
		// FailedPrecondition, and nothing is decided.
		_, err := federav1.NewApprovalServiceClient(cc).Decide(ctx, &federav1.DecideRequest{Site: "eu/paris", JobId: job, Approve: true, Reason: "matrix"})
		return err
	},
	"SiteService.Connect": func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
		s, err := federav1.NewSiteServiceClient(cc).Connect(ctx)
		if err != nil {
			return err
		}
		if err := s.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Hello{Hello: &federav1.Hello{}}}); err != nil {
			return err
		}
		m, err := s.Recv()
		if err != nil {
			return err
		}
		if m.GetWelcome() == nil {
			return fmt.Errorf("first message is not a welcome: %v", m)
		}
		return s.CloseSend()
	},
}

// TestAccessMatrix asserts, for every RPC the coordinator serves and every
// kind of caller, whether the access policy lets the call through.
func TestAccessMatrix(t *testing.T) {
	n, _ := accessNet(t, sim.Options{})
	job := runJob(t, n, oneRound())
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("alice's job: %s %s", job.GetStatus(), job.GetMessage())
	}
	callers := []string{
		"spiffe://federa.demo/user/alice", bobID, opsID, "spiffe://federa.demo/user/auditor", parisAdmin,
		"spiffe://federa.demo/user/mallory", spareSite,
	}
	// One row per RPC, one column per caller above: Y allowed, - denied.
	matrix := `
JobService.SubmitJob        Y Y - - - - -
JobService.GetJob           Y - Y - - - -
JobService.ListJobs         Y Y Y - - - -
JobService.WatchJob         Y - Y - - - -
JobService.CancelJob        Y - Y - - - -
JobService.GetModel         Y - Y - - - -
JobService.ListDecisions    Y - Y - - - -
JobService.ListRounds       Y - Y - - - -
JobService.ListFeatures     Y - Y - - - -
JobService.ListJobSites     Y - Y - - - -
AuditService.Checkpoint     - - - Y - - -
AuditService.Export         - - - Y - - -
AuditService.Proof          - - - Y - - -
ApprovalService.ListPending - - - - Y - -
ApprovalService.Decide      - - - - Y - -
SiteService.Connect         - - - - - - Y
`
	want := map[string][]bool{}
	for _, line := range strings.Split(strings.TrimSpace(matrix), "\n") {
		f := strings.Fields(line)
		if len(f) != len(callers)+1 {
			t.Fatalf("matrix row %q: %d columns, want %d", line, len(f)-1, len(callers))
		}
		for _, c := range f[1:] {
			want[f[0]] = append(want[f[0]], c == "Y")
		}
	}
	// Every RPC the coordinator serves has a row, and a way to call it.
	for _, sd := range []grpc.ServiceDesc{federav1.JobService_ServiceDesc, federav1.AuditService_ServiceDesc,
		federav1.ApprovalService_ServiceDesc, federav1.SiteService_ServiceDesc} {
		svc := sd.ServiceName[strings.LastIndexByte(sd.ServiceName, '.')+1:]
		var names []string
		for _, m := range sd.Methods {
			names = append(names, m.MethodName)
		}
		for _, s := range sd.Streams {
			names = append(names, s.StreamName)
		}
		for _, m := range names {
			rpc := svc + "." + m
			if _, ok := want[rpc]; !ok {
				t.Errorf("%s has no row in the access matrix", rpc)
			}
			if _, ok := rpcCalls[rpc]; !ok {
				t.Errorf("%s has no call in rpcCalls", rpc)
			}
		}
	}
	ids := map[string]*grpc.ClientConn{}
	for _, c := range callers {
		ids[c] = dialAs(t, n, identityFor(t, n.CA, c))
	}
	rpcs := slices.Sorted(func(yield func(string) bool) {
		for k := range want {
			if !yield(k) {
				return
			}
		}
	})
	for _, rpc := range rpcs {
		for i, c := range callers {
			name := rpc + "/" + c[strings.LastIndexByte(c, '/')+1:]
			t.Run(name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), hangBound)
				defer cancel()
				err := rpcCalls[rpc](ctx, ids[c], job.GetId())
				denied := status.Code(err) == codes.PermissionDenied
				switch {
				case want[rpc][i] && denied:
					t.Errorf("%s calling %s: refused (%v); want allowed", c, rpc, err)
				case !want[rpc][i] && !denied:
					t.Errorf("%s calling %s: %v; want PermissionDenied", c, rpc, err)
				case denied && !strings.Contains(err.Error(), c+" may not call "+rpc+": "):
					t.Errorf("refusal %q does not name the caller and the RPC", err)
				}
			})
		}
	}
}

// TestAccessOnResources: the resource-level rules, through the real RPCs.
func TestAccessOnResources(t *testing.T) {
	n, logs := accessNet(t, sim.Options{})
	j := demoSpec()
	j.Rounds = 1
	job := runJob(t, n, j)
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	as := func(id string) *grpc.ClientConn { return dialAs(t, n, identityFor(t, n.CA, id)) }

	t.Run("a data scientist lists only their own jobs; an operator all", func(t *testing.T) {
		for who, want := range map[string]int{"spiffe://federa.demo/user/alice": 1, bobID: 0, opsID: 1} {
			l, err := federav1.NewJobServiceClient(as(who)).ListJobs(ctx, &federav1.ListJobsRequest{})
			if err != nil || len(l.GetJobs()) != want {
				t.Errorf("%s lists %d jobs (%v), want %d", who, len(l.GetJobs()), err, want)
			}
		}
	})
	t.Run("another data scientist's job", func(t *testing.T) {
		_, err := federav1.NewJobServiceClient(as(bobID)).GetJob(ctx, &federav1.GetJobRequest{Id: job.GetId()})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "job belongs to spiffe://federa.demo/user/alice") {
			t.Errorf("bob reading alice's job: %v", err)
		}
	})
	t.Run("a job that does not exist", func(t *testing.T) {
		_, err := federav1.NewJobServiceClient(as(bobID)).GetJob(ctx, &federav1.GetJobRequest{Id: "job-nope"})
		if status.Code(err) != codes.NotFound {
			t.Errorf("bob reading a job that does not exist: %v, want NotFound", err)
		}
		_, err = federav1.NewJobServiceClient(as("spiffe://federa.demo/user/mallory")).GetJob(ctx, &federav1.GetJobRequest{Id: "job-nope"})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("mallory probing a job ID: %v, want PermissionDenied (no existence oracle)", err)
		}
	})
	t.Run("a site-admin at another site", func(t *testing.T) {
		_, err := federav1.NewApprovalServiceClient(as(parisAdmin)).Decide(ctx, &federav1.DecideRequest{Site: "us/boston", JobId: job.GetId(), Approve: true, Reason: "x"})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "it needs the role site-admin:us/boston") || !strings.Contains(err.Error(), "site-admin of eu/paris only") {
			t.Errorf("paris admin deciding at boston: %v", err)
		}
	})
	t.Run("a site opening another site's stream", func(t *testing.T) {
		s, err := federav1.NewSiteServiceClient(as(spareSite)).Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Hello{Hello: &federav1.Hello{Site: "eu/paris"}}})
		_, err = s.Recv()
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "site/eu/spare may not call SiteService.Connect: a site may open only its own stream; this one is for eu/paris") {
			t.Errorf("eu/spare claiming eu/paris's stream: %v", err)
		}
	})
	if !strings.Contains(logs.String(), "access denied") {
		t.Error("refusals are not logged as access denied")
	}
}

// TestSiteAnswersOnlyItsOwnTasks: a site that answers a task sent to
// another site is refused by the access policy and its stream closed; the
// task's own site still answers it.
func TestSiteAnswersOnlyItsOwnTasks(t *testing.T) {
	taskIDs := make(chan string, 16)
	release := make(chan struct{})
	n, _ := accessNet(t, sim.Options{SiteOptions: func(name string) []site.Option {
		if name != "eu/paris" {
			return nil
		}
		return []site.Option{site.WithBeforeTask(func(ctx context.Context, task *federav1.Task) {
			if task.GetKind() == federav1.TaskKind_TASK_KIND_STATS {
				taskIDs <- task.GetTaskId()
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
		})}
	}})
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	j := demoSpec()
	j.Rounds = 1
	job, err := c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		t.Fatal(err)
	}
	var parisTask string
	select {
	case parisTask = <-taskIDs:
	case <-time.After(hangBound):
		t.Fatal("eu/paris never got its stats task")
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	s, err := federav1.NewSiteServiceClient(dialAs(t, n, identityFor(t, n.CA, spareSite))).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Hello{Hello: &federav1.Hello{Site: "eu/spare"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatalf("welcome: %v", err)
	}
	_ = s.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Result{Result: &federav1.TaskResult{TaskId: parisTask, JobId: job.GetId(), Error: "forged"}}})
	for {
		if _, err = s.Recv(); err != nil {
			break
		}
	}
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "site/eu/spare may not call SiteService.AnswerTask: task was sent to eu/paris") {
		t.Fatalf("eu/spare answering eu/paris's task: %v", err)
	}
	close(release)
	final := waitFinal(t, c, job.GetId())
	if final.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job after a forged answer: %s %s", final.GetStatus(), final.GetMessage())
	}
}

// TestRemoteApproval: site-admins approve and reject through the
// coordinator; each site records only the admins its config lists.
func TestRemoteApproval(t *testing.T) {
	n, _ := accessNet(t, sim.Options{PolicyDir: approvalPolicy(t), Site: func(name string, cfg *site.Config) {
		if name == "sg/singapore" {
			return // accepts local approvals only
		}
		cfg.RemoteApprovers = []spiffeid.ID{spiffeid.RequireFromString("spiffe://federa.demo/user/admin-" + strings.ReplaceAll(name, "/", "-"))}
	}})
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	j := demoSpec()
	j.Rounds = 1
	job, err := c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	admin := func(s string) federav1.ApprovalServiceClient {
		return federav1.NewApprovalServiceClient(dialAs(t, n, identityFor(t, n.CA, "spiffe://federa.demo/user/admin-"+strings.ReplaceAll(s, "/", "-"))))
	}
	// Every site holds the job before anyone decides: a decision for a job
	// a site has not yet held would be refused.
	for _, s := range []string{"eu/paris", "sg/singapore", "us/boston"} {
		cl := admin(s)
		waitFor(t, s+"'s pending list to show the job", func() bool {
			l, err := cl.ListPending(ctx, &federav1.ListPendingRequest{Site: s})
			if err != nil {
				t.Fatal(err)
			}
			return len(l.GetPending()) == 1 && l.GetPending()[0].GetJobId() == job.GetId() && l.GetPending()[0].GetRequester() == "spiffe://federa.demo/user/alice"
		})
	}
	for _, s := range []string{"eu/paris", "us/boston"} {
		resp, err := admin(s).Decide(ctx, &federav1.DecideRequest{Site: s, JobId: job.GetId(), Approve: true, Reason: "IRB 2026-114"})
		if err != nil || resp.GetStatus() != site.ApprovalApproved || resp.GetDecidedBy() != "spiffe://federa.demo/user/admin-"+strings.ReplaceAll(s, "/", "-") {
			t.Fatalf("%s admin approving: %v %v", s, resp, err)
		}
		ap, ok, err := site.OpenApprovals(n.SiteDir(s)).Get(job.GetId())
		if err != nil || !ok || ap.Status != site.ApprovalApproved || !strings.Contains(ap.DecidedBy, "admin-") {
			t.Fatalf("%s's own record: %+v %v", s, ap, err)
		}
	}
	// sg/singapore lists no remote approvers: the coordinator relays, the
	// site refuses, nothing is recorded.
	_, err = admin("sg/singapore").Decide(ctx, &federav1.DecideRequest{Site: "sg/singapore", JobId: job.GetId(), Approve: true, Reason: "x"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "does not accept approvals from spiffe://federa.demo/user/admin-sg-singapore") {
		t.Fatalf("sg admin approving remotely: %v", err)
	}
	q := site.OpenApprovals(n.SiteDir("sg/singapore"))
	if ap, _, _ := q.Get(job.GetId()); ap == nil || ap.Status != site.ApprovalPending {
		t.Fatalf("sg record after a refused remote approval: %+v", ap)
	}
	if _, err := q.Decide(job.GetId(), true, "local", "dpo@sg"); err != nil {
		t.Fatal(err)
	}
	final := waitFinal(t, c, job.GetId())
	if final.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("approved job: %s %s", final.GetStatus(), final.GetMessage())
	}
	// The decisions are in the audit log, by whom.
	exp, err := federav1.NewAuditServiceClient(dialAs(t, n, identityFor(t, n.CA, "spiffe://federa.demo/user/auditor"))).Export(ctx, &federav1.AuditExportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var approvals int
	for {
		leaf, err := exp.Recv()
		if err != nil {
			break
		}
		if strings.Contains(string(leaf.GetLeaf()), `"type":"approval"`) && strings.Contains(string(leaf.GetLeaf()), "admin-") {
			approvals++
		}
	}
	if approvals != 2 {
		t.Errorf("audit log holds %d remote approval entries, want 2", approvals)
	}
}

func oneRound() *spec.Job {
	j := demoSpec()
	j.Rounds = 1
	return j
}
