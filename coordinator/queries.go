package coordinator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/analytics"
	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/internal/logkeys"
	"github.com/federa-dev/federa/policy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// A query runs as the same task path as a job (task ids, admission,
// egress, decision records, audit) with its own record: the sites that
// serve its dataset are asked for admission (job.type "query"), then the
// planner's stages (package analytics) go to the sites that admitted it,
// each site answering with disclosure-controlled partials, until the
// planner has the result. Every site that answered stage 1 must answer
// every later stage (an exact quantile's bisection needs the same rows).

// queryStageTimeout bounds one stage (admission included) at the sites.
const queryStageTimeout = 2 * time.Minute

// loadQueries reads every query record. A query that was pending or
// running when the coordinator stopped is failed: its stages are not
// resumable (a stage's counts must come from the same sites in one run),
// and a private one was charged at the sites already.
func (c *Coordinator) loadQueries() error {
	qs, err := c.store.ListQueries()
	if err != nil {
		return fmt.Errorf("load queries: %w", err)
	}
	for _, q := range qs {
		if !isFinal(q.GetStatus()) {
			q.Status = federav1.JobStatus_JOB_STATUS_FAILED
			q.Message = "the coordinator stopped while the query ran; submit it again"
			q.UpdatedUnixMs = c.cfg.Now().UnixMilli()
			if err := c.audit(false, queryEndEntry(q)); err != nil {
				return fmt.Errorf("load queries: %w", err)
			}
			if err := c.store.PutQuery(q); err != nil {
				return fmt.Errorf("load queries: %w", err)
			}
		}
		c.queries[q.GetId()] = q
	}
	return nil
}

func (c *Coordinator) queryRecord(id string) (*federav1.Query, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q, ok := c.queries[id]
	return q, ok
}

// updateQuery applies fn to a copy of the query's record, stores it, then
// publishes it.
func (c *Coordinator) updateQuery(id string, fn func(q *federav1.Query)) (*federav1.Query, error) {
	c.updMu.Lock()
	defer c.updMu.Unlock()
	c.mu.Lock()
	cur, ok := c.queries[id]
	c.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("query %s: not found", id)
	}
	q := proto.Clone(cur).(*federav1.Query)
	fn(q)
	q.UpdatedUnixMs = c.cfg.Now().UnixMilli()
	if isFinal(q.GetStatus()) {
		// The end is in the audit log before it is stored or reported.
		if err := c.audit(true, queryEndEntry(q)); err != nil {
			return nil, err
		}
	}
	if err := c.store.PutQuery(q); err != nil {
		return nil, fmt.Errorf("store query %s: %w", id, err)
	}
	c.mu.Lock()
	c.queries[id] = q
	c.mu.Unlock()
	return q, nil
}

// SubmitQuery validates a query spec (YAML or JSON) and starts running
// it. Exposed for embedding; the gRPC API calls it too.
func (c *Coordinator) SubmitQuery(requester string, specText []byte, source string) (*federav1.Query, error) {
	if len(specText) > federav1.MaxQuerySpecBytes {
		return nil, status.Errorf(codes.InvalidArgument, "field spec: %d bytes; a query spec is at most %d", len(specText), federav1.MaxQuerySpecBytes)
	}
	source = federav1.TrimText(strings.TrimSpace(source), 256)
	if source == "" {
		source = "(submitted)"
	}
	q, err := analytics.ParseQuery(source, specText)
	if err == nil {
		if verr := q.Validate(analytics.ValidateOptions{RequireDataset: true}); verr != nil {
			err = fmt.Errorf("query spec %s: %w", source, verr)
		}
	}
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid query: %v", err)
	}
	specJSON, err := json.Marshal(q)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid query: %v", err)
	}
	now := c.cfg.Now().UnixMilli()
	rec := &federav1.Query{
		Id: newQueryID(), Name: q.Name, Dataset: q.Dataset,
		Status: federav1.JobStatus_JOB_STATUS_PENDING, Message: "waiting for sites",
		Requester: requester, RequesterRole: c.roleOf(requester),
		CreatedUnixMs: now, UpdatedUnixMs: now, SpecJson: specJSON,
	}
	if err := c.audit(true, auditlog.Entry{Type: auditlog.TypeQuerySubmitted, Job: rec.GetId(), Actor: requester, Data: map[string]any{
		"spec_digest": "sha256:" + q.Digest(), "name": q.Name, "dataset": q.Dataset, "role": rec.GetRequesterRole(),
	}}); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if err := c.store.PutQuery(rec); err != nil {
		return nil, status.Errorf(codes.Internal, "store query: %v", err)
	}
	c.mu.Lock()
	c.queries[rec.GetId()] = rec
	c.mu.Unlock()
	c.log.Info("query submitted", logkeys.Job, rec.GetId(), "requester", requester, "name", q.Name)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.runQuery(c.runCtx, rec, q)
	}()
	return rec, nil
}

func newQueryID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "qry-" + hex.EncodeToString(b[:])
}

// runQuery drives one query to a final state.
func (c *Coordinator) runQuery(ctx context.Context, rec *federav1.Query, q *analytics.Query) {
	id := rec.GetId()
	log := c.log.With(logkeys.Job, id)
	out, err := c.executeQuery(ctx, rec, q)
	if err != nil {
		if c.runCtx.Err() != nil {
			err = errors.New("the coordinator stopped while the query ran; submit it again")
		}
		log.Warn("query failed", logkeys.Err, err)
		if _, uerr := c.updateQuery(id, func(r *federav1.Query) {
			r.Status, r.Message = federav1.JobStatus_JOB_STATUS_FAILED, err.Error()
		}); uerr != nil {
			log.Error("record the query's failure", logkeys.Err, uerr)
		}
		return
	}
	if _, err := c.updateQuery(id, func(r *federav1.Query) {
		r.Status, r.Message = federav1.JobStatus_JOB_STATUS_SUCCEEDED, out.message
		r.ResultJson, r.ResultSha256 = out.json, out.sha
		r.Sites, r.EpsilonSpent, r.Stages = out.sites, out.epsilon, int32(out.stages)
	}); err != nil {
		log.Error("record the query's result", logkeys.Err, err)
		return
	}
	log.Info("query succeeded", "sites", out.sites, "stages", out.stages, "result_sha256", out.sha)
}

// queryOutcome is a finished query's result and how it was reached.
type queryOutcome struct {
	json    []byte
	sha     string
	sites   []string
	epsilon float64
	stages  int
	message string
}

func (c *Coordinator) executeQuery(ctx context.Context, rec *federav1.Query, q *analytics.Query) (*queryOutcome, error) {
	id := rec.GetId()
	// The task path carries a job; a query's is its id, requester and
	// dataset (the site reads the query itself from query_request).
	job := &federav1.Job{
		Id: id, Requester: rec.GetRequester(), RequesterRole: rec.GetRequesterRole(),
		Spec: &federav1.JobSpec{Name: q.Name, Dataset: q.Dataset, MinSites: 1, RoundTimeoutMs: queryStageTimeout.Milliseconds()},
	}
	sites, err := c.querySites(ctx, q.Dataset)
	if err != nil {
		return nil, err
	}
	planner := analytics.NewPlanner(q)
	req, done, err := planner.Next(nil)
	if err != nil || done {
		return nil, fmt.Errorf("plan the query: %v", err)
	}
	first, err := encodeRequest(req)
	if err != nil {
		return nil, err
	}
	if _, err := c.updateQuery(id, func(r *federav1.Query) {
		r.Status = federav1.JobStatus_JOB_STATUS_RUNNING
		r.Message = "asking " + strings.Join(sites, ", ") + " for admission"
	}); err != nil {
		return nil, err
	}
	if sites, err = c.queryAdmission(ctx, job, sites, first); err != nil {
		return nil, err
	}
	var (
		notIncluded string
		epsilon     float64
		stages      int
	)
	for !done {
		stages++
		body, err := encodeRequest(req)
		if err != nil {
			return nil, err
		}
		need := 1
		if req.Stage > 1 {
			need = len(sites)
		}
		col, err := c.fanOut(ctx, fan{job: job, round: req.Stage, kind: federav1.TaskKind_TASK_KIND_QUERY, sites: sites, minSites: need, queryRequest: body})
		if err != nil {
			return nil, err
		}
		if col.Outcome() != Done {
			return nil, fmt.Errorf("stage %d: %s", req.Stage, col.Reason())
		}
		if req.Stage == 1 {
			if len(col.Missing()) > 0 {
				// The result is over the sites that answered; it says so.
				notIncluded = col.Reason()
			}
			sites = col.Answered()
		}
		var parts []*analytics.Partials
		for _, s := range col.Answered() {
			r := col.Answers()[s].result
			if len(r.GetQueryPartials()) > federav1.MaxQueryWireBytes {
				return nil, fmt.Errorf("stage %d: site %s sent %d bytes of partials; at most %d", req.Stage, s, len(r.GetQueryPartials()), federav1.MaxQueryWireBytes)
			}
			p, err := analytics.DecodePartials(r.GetQueryPartials())
			if err != nil {
				return nil, fmt.Errorf("stage %d: site %s: %w", req.Stage, s, err)
			}
			parts = append(parts, p)
			epsilon = max(epsilon, r.GetEpsilonSpent())
		}
		if req, done, err = planner.Next(parts); err != nil {
			return nil, fmt.Errorf("stage %d: %w", stages, err)
		}
	}
	res, err := planner.Result()
	if err != nil {
		return nil, err
	}
	res.QueryID, res.Status, res.EpsilonSpent, res.Sites = id, "succeeded", epsilon, sites
	b, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encode the result: %w", err)
	}
	sum := sha256.Sum256(b)
	msg := fmt.Sprintf("%d sites, %d stages", len(sites), stages)
	if notIncluded != "" {
		msg += "; not every site answered: " + notIncluded
	}
	return &queryOutcome{json: b, sha: hex.EncodeToString(sum[:]), sites: sites, epsilon: epsilon, stages: stages, message: msg}, nil
}

func encodeRequest(req *analytics.Request) ([]byte, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode stage %d: %w", req.Stage, err)
	}
	if len(b) > federav1.MaxQueryWireBytes {
		return nil, fmt.Errorf("stage %d's request is %d bytes; a stage is at most %d (fewer quantile aggregates or groups)", req.Stage, len(b), federav1.MaxQueryWireBytes)
	}
	return b, nil
}

// querySites waits up to SiteWaitTimeout for a connected site serving
// dataset, then returns every one connected.
func (c *Coordinator) querySites(ctx context.Context, dataset string) ([]string, error) {
	deadline := c.cfg.Now().Add(c.cfg.SiteWaitTimeout)
	for {
		connected, changed := c.connectedSites(dataset)
		if len(connected) > 0 {
			return connected, nil
		}
		if !c.cfg.Now().Before(deadline) {
			return nil, fmt.Errorf("no connected site serves dataset %q (waited %s)", dataset, c.cfg.SiteWaitTimeout)
		}
		waitChanged(ctx, changed, 200*time.Millisecond)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// queryAdmission asks every site whether the query may run there. A site
// that refuses, or holds the query for its operator's approval (a query
// does not wait), fails the query with the site named and its reasons: a
// result silently missing a site's rows would be a different statistic
// from the one asked for.
func (c *Coordinator) queryAdmission(ctx context.Context, job *federav1.Job, sites []string, req []byte) ([]string, error) {
	col, err := c.fanOut(ctx, fan{job: job, kind: federav1.TaskKind_TASK_KIND_ADMIT, sites: sites, minSites: len(sites), queryRequest: req})
	if err != nil {
		return nil, err
	}
	if col.Outcome() != Done {
		return nil, fmt.Errorf("admission: %s", col.Reason())
	}
	var refused []string
	for _, s := range col.Answered() {
		a := col.Answers()[s].result.GetAdmission()
		switch a.GetOutcome() {
		case federav1.Admission_OUTCOME_ALLOW:
		case federav1.Admission_OUTCOME_PENDING_APPROVAL:
			refused = append(refused, fmt.Sprintf("site %s holds it for operator approval (a query does not wait; ask the site to approve it, then submit again)", s))
		default:
			refused = append(refused, fmt.Sprintf("site %s: %s", s, strings.Join(a.GetReasons(), "; ")))
		}
	}
	sort.Strings(refused)
	if len(refused) > 0 {
		return nil, fmt.Errorf("refused by %s", strings.Join(refused, " | "))
	}
	return col.Answered(), nil
}

func queryEndEntry(q *federav1.Query) auditlog.Entry {
	data := map[string]any{
		"status": q.GetStatus().Name(), "message": federav1.TrimText(q.GetMessage(), maxEndMessageBytes),
		"sites": q.GetSites(), "stages": q.GetStages(), "epsilon_spent": q.GetEpsilonSpent(),
	}
	if q.GetResultSha256() != "" {
		data["result_sha256"] = q.GetResultSha256()
	}
	return auditlog.Entry{Type: auditlog.TypeQueryEnd, Job: q.GetId(), Actor: "coordinator", Data: data}
}

type queryService struct {
	federav1.UnimplementedQueryServiceServer
	c *Coordinator
}

// Every QueryService call has passed the access policy (access.go).

func (s *queryService) SubmitQuery(ctx context.Context, req *federav1.SubmitQueryRequest) (*federav1.Query, error) {
	return s.c.SubmitQuery(callerID(ctx), req.GetSpec(), req.GetSource())
}

func (s *queryService) GetQuery(_ context.Context, req *federav1.GetQueryRequest) (*federav1.Query, error) {
	q, ok := s.c.queryRecord(req.GetId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "query %q not found", req.GetId())
	}
	return q, nil
}

// ListQueries pages through the queries the caller may read (those the
// access policy lets them GetQuery), oldest first. Results are left out
// of the list (get one query for its result), so a page stays small.
func (s *queryService) ListQueries(ctx context.Context, req *federav1.ListQueriesRequest) (*federav1.ListQueriesResponse, error) {
	peer, err := attest.PeerID(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "an mTLS SPIFFE identity is required")
	}
	qs, err := s.c.store.ListQueries()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list queries: %v", err)
	}
	caller := s.c.callerOf(peer)
	page, next, err := pageByCreation(qs, req.GetPageToken(), req.GetPageSize(), func(q *federav1.Query) (*federav1.Query, bool) {
		d := s.c.access.Decide(ctx, policy.AccessRequest{Caller: caller, RPC: "QueryService.GetQuery", Resource: policy.Resource{JobOwner: q.GetRequester()}})
		if !d.Allow {
			return nil, false
		}
		q.ResultJson = nil
		return q, true
	})
	if err != nil {
		return nil, err
	}
	return &federav1.ListQueriesResponse{Queries: page, NextPageToken: next}, nil
}
