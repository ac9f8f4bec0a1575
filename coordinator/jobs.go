package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/internal/logkeys"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/spec"
	"github.com/federa-dev/federa/store"
)

// jobState is the in-memory side of a job: the latest record (the store
// holds the same), a channel closed at every change, and the runner's
// cancel.
type jobState struct {
	job    *federav1.Job
	events []string // every progress line, in order, so no watcher misses one
	// decisions reported by sites, not yet stored on the job record.
	decisions []*federav1.SiteDecision
	changed   chan struct{}
	cancel    context.CancelFunc
}

func isFinal(s federav1.JobStatus) bool {
	return s == federav1.JobStatus_JOB_STATUS_SUCCEEDED || s == federav1.JobStatus_JOB_STATUS_FAILED || s == federav1.JobStatus_JOB_STATUS_CANCELLED
}

func (c *Coordinator) loadJobs() error {
	jobs, err := c.store.ListJobs()
	if err != nil {
		return fmt.Errorf("load jobs: %w", err)
	}
	for _, j := range jobs {
		// A record written before decisions had their own list: move them.
		if old := j.GetDecisions(); len(old) > 0 {
			if err := c.store.AppendDecisions(j.GetId(), old); err != nil {
				return fmt.Errorf("load jobs: move the decisions of job %s to their own list: %w", j.GetId(), err)
			}
			j.Decisions = nil
			if err := c.store.PutJob(j); err != nil {
				return fmt.Errorf("load jobs: %w", err)
			}
		}
		c.jobs[j.GetId()] = &jobState{job: j, changed: make(chan struct{})}
	}
	return nil
}

// resumeJobs restarts the runner of every job that was pending or running
// when the coordinator stopped.
func (c *Coordinator) resumeJobs() {
	c.mu.Lock()
	var ids []string
	for id, js := range c.jobs {
		if !isFinal(js.job.GetStatus()) && js.cancel == nil {
			ids = append(ids, id)
		}
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.log.Info("resuming job", logkeys.Job, id)
		c.startRunner(id)
	}
}

func (c *Coordinator) startRunner(id string) {
	ctx, cancel := context.WithCancel(c.runCtx)
	c.mu.Lock()
	c.jobs[id].cancel = cancel
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer cancel()
		c.runJob(ctx, id)
	}()
}

// update applies fn to a copy of the job, stores it durably, then
// publishes it. Returns the stored copy.
func (c *Coordinator) update(id, event string, fn func(j *federav1.Job)) (*federav1.Job, error) {
	return c.updateWith(id, event, fn, func(j *federav1.Job) error { return c.store.PutJob(j) })
}

// errJobEnded means a runner tried to update a job that was cancelled (or
// otherwise ended) under it; the runner stops.
var errJobEnded = errors.New("coordinator: job already ended")

func (c *Coordinator) updateWith(id, event string, fn func(j *federav1.Job), persist func(j *federav1.Job) error) (*federav1.Job, error) {
	// One update at a time, held across the write, so a cancel and a
	// runner's progress can never overwrite each other.
	c.updMu.Lock()
	defer c.updMu.Unlock()
	c.mu.Lock()
	js, ok := c.jobs[id]
	if !ok {
		c.mu.Unlock()
		return nil, fmt.Errorf("job %s: %w", id, store.ErrNotFound)
	}
	if isFinal(js.job.GetStatus()) {
		c.mu.Unlock()
		return nil, errJobEnded
	}
	j := proto.Clone(js.job).(*federav1.Job)
	queued := js.decisions
	c.mu.Unlock()
	fn(j)
	j.UpdatedUnixMs = c.cfg.Now().UnixMilli()
	// The decisions go to their own list (ListDecisions), not the record:
	// it is rewritten whole at every update.
	if err := c.store.AppendDecisions(id, queued); err != nil {
		return nil, fmt.Errorf("store decisions of job %s: %w", id, err)
	}
	// Stored: off the queue even if the record's write below fails, so no
	// decision is stored twice. Sites only append to the queue.
	c.mu.Lock()
	js.decisions = js.decisions[len(queued):]
	c.mu.Unlock()
	if err := persist(j); err != nil {
		return nil, fmt.Errorf("store job %s: %w", id, err)
	}
	c.mu.Lock()
	js.job = j
	if event != "" {
		js.events = append(js.events, event)
	}
	close(js.changed)
	js.changed = make(chan struct{})
	c.mu.Unlock()
	return j, nil
}

func (c *Coordinator) snapshot(id string) (*federav1.Job, []string, <-chan struct{}, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	js, ok := c.jobs[id]
	if !ok {
		return nil, nil, nil, false
	}
	return js.job, js.events, js.changed, true
}

// Submit validates and stores a job and starts running it. Exposed for
// embedding; the gRPC API calls it too.
func (c *Coordinator) Submit(ctx context.Context, requester string, s *federav1.JobSpec) (*federav1.Job, error) {
	checked, err := spec.CheckProto(s)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid job spec: %v", err)
	}
	for _, site := range checked.GetSites() {
		if !c.knownSite(site) {
			return nil, c.unknownSite("invalid job spec: field sites", site)
		}
	}
	if err := c.siteView().unreachable(checked); err != nil {
		c.log.Info("job refused at submit", "requester", requester, logkeys.Reason, err)
		return nil, status.Errorf(codes.FailedPrecondition, "job cannot start: %v", err)
	}
	now := c.cfg.Now().UnixMilli()
	j := &federav1.Job{
		Id:            newJobID(),
		Spec:          checked,
		Status:        federav1.JobStatus_JOB_STATUS_PENDING,
		Message:       "waiting for sites",
		Requester:     requester,
		RequesterRole: c.roleOf(requester),
		CreatedUnixMs: now,
		UpdatedUnixMs: now,
	}
	if err := c.preCheck(ctx, j); err != nil {
		c.log.Info("job refused at submit", "requester", requester, logkeys.Reason, err)
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	if err := c.audit(true, submittedEntry(j)); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if err := c.store.PutJob(j); err != nil {
		return nil, status.Errorf(codes.Internal, "store job: %v", err)
	}
	c.mu.Lock()
	c.jobs[j.GetId()] = &jobState{job: j, events: []string{"submitted"}, changed: make(chan struct{})}
	c.mu.Unlock()
	c.log.Info("job submitted", logkeys.Job, j.GetId(), "requester", requester, "name", checked.GetName())
	c.startRunner(j.GetId())
	return j, nil
}

// unknownSite is the InvalidArgument error for a request field naming a
// site this coordinator does not know, listing the ones it does.
func (c *Coordinator) unknownSite(field, name string) error {
	return status.Errorf(codes.InvalidArgument, "%s: %q is not a site this coordinator knows (known: %s)", field, name, strings.Join(c.siteNames(), ", "))
}

func (c *Coordinator) knownSite(name string) bool {
	for _, n := range c.sites {
		if n == name {
			return true
		}
	}
	return false
}

func (c *Coordinator) siteNames() []string {
	var out []string
	for _, n := range c.sites {
		out = append(out, n)
	}
	return sortStrings(out)
}

func newJobID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "job-" + hex.EncodeToString(b[:])
}

type jobService struct {
	federav1.UnimplementedJobServiceServer
	c *Coordinator
}

// Every JobService call has passed the access policy (access.go) before
// its handler runs; handlers only need the caller's ID.

// callerID is the verified SPIFFE ID of a call's peer.
func callerID(ctx context.Context) string {
	id, err := attest.PeerID(ctx)
	if err != nil {
		return "" // unreachable: the access interceptor refused the call
	}
	return id.String()
}

func (s *jobService) SubmitJob(ctx context.Context, req *federav1.SubmitJobRequest) (*federav1.Job, error) {
	return s.c.Submit(ctx, callerID(ctx), req.GetSpec())
}

func (s *jobService) GetJob(ctx context.Context, req *federav1.GetJobRequest) (*federav1.Job, error) {
	j, _, _, ok := s.c.snapshot(req.GetId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "job %q not found", req.GetId())
	}
	return jobView(j), nil
}

func (s *jobService) WatchJob(req *federav1.WatchJobRequest, stream federav1.JobService_WatchJobServer) error {
	var last *federav1.Job
	seen := 0
	for {
		j, events, changed, ok := s.c.snapshot(req.GetId())
		if !ok {
			return status.Errorf(codes.NotFound, "job %q not found", req.GetId())
		}
		for ; seen < len(events); seen++ {
			if err := stream.Send(&federav1.JobEvent{Job: jobView(j), Message: events[seen]}); err != nil {
				return err
			}
			last = j
		}
		if j != last {
			if err := stream.Send(&federav1.JobEvent{Job: jobView(j)}); err != nil {
				return err
			}
			last = j
		}
		if isFinal(j.GetStatus()) {
			return nil
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-s.c.runCtx.Done():
			return status.Error(codes.Unavailable, "coordinator shutting down")
		case <-changed:
		}
	}
}

func (s *jobService) CancelJob(ctx context.Context, req *federav1.CancelJobRequest) (*federav1.Job, error) {
	who := callerID(ctx)
	c := s.c
	c.mu.Lock()
	js, ok := c.jobs[req.GetId()]
	var cancel context.CancelFunc
	var final bool
	if ok {
		cancel, final = js.cancel, isFinal(js.job.GetStatus())
	}
	c.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "job %q not found", req.GetId())
	}
	if final {
		j, _, _, _ := c.snapshot(req.GetId())
		return nil, status.Errorf(codes.FailedPrecondition, "job %s already ended (%s)", req.GetId(), j.GetStatus().Name())
	}
	reason := req.GetReason()
	if err := spec.CheckReason(reason); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "field reason: %v", err)
	}
	if reason == "" {
		reason = "cancelled by " + who
	}
	// The end is in the audit log before it is stored or reported; if it
	// cannot be logged the job is not cancelled.
	j, err := c.updateWith(req.GetId(), "cancelled: "+reason, func(j *federav1.Job) {
		j.Status = federav1.JobStatus_JOB_STATUS_CANCELLED
		j.Message = reason
	}, c.auditThenPut)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if cancel != nil {
		cancel()
	}
	c.log.Info("job cancelled", logkeys.Job, req.GetId(), logkeys.Reason, reason)
	return j, nil
}

func (s *jobService) GetModel(req *federav1.GetModelRequest, stream federav1.JobService_GetModelServer) error {
	j, _, _, ok := s.c.snapshot(req.GetJobId())
	if !ok {
		return status.Errorf(codes.NotFound, "job %q not found", req.GetJobId())
	}
	var data []byte
	var err error
	if req.GetArtifact() == ArtifactCheckpoint {
		if data, err = s.c.checkpointModel(j, callerID(stream.Context())); err != nil {
			return err
		}
		return sendChunks(stream, data)
	}
	if j.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		hint := ""
		if !isFinal(j.GetStatus()) && j.GetRoundsCompleted() > 0 {
			hint = fmt.Sprintf("; the model of its last completed round (%d) is the artifact checkpoint (federa model get --checkpoint)", j.GetRoundsCompleted())
		}
		return status.Errorf(codes.FailedPrecondition, "job %s has no model: it is %s%s", j.GetId(), j.GetStatus().Name(), hint)
	}
	switch req.GetArtifact() {
	case "", "model":
		data, err = s.c.store.GetModel(j.GetId())
	case ArtifactBundle, ArtifactProvenance:
		data, err = s.c.store.GetArtifact(j.GetId(), req.GetArtifact())
	case "signing_key":
		data = s.c.SigningKeyPEM()
	default:
		return status.Errorf(codes.InvalidArgument, "artifact %q: valid: model, bundle, provenance, signing_key, checkpoint", req.GetArtifact())
	}
	if errors.Is(err, store.ErrNotFound) {
		return status.Errorf(codes.NotFound, "%s of job %s not found", req.GetArtifact(), j.GetId())
	} else if err != nil {
		return status.Errorf(codes.Internal, "read %s: %v", req.GetArtifact(), err)
	}
	return sendChunks(stream, data)
}

func sendChunks(stream federav1.JobService_GetModelServer, data []byte) error {
	for off := 0; off < len(data); off += federav1.MaxChunkBytes {
		end := min(off+federav1.MaxChunkBytes, len(data))
		if err := stream.Send(&federav1.ModelChunk{Data: data[off:end]}); err != nil {
			return err
		}
	}
	return nil
}

// Page sizes of ListDecisions. A page also stops short of
// maxDecisionPageBytes, well under gRPC's 4 MiB message limit, since one
// decision's reasons may run to tens of kilobytes.
const (
	defaultDecisionPage  = 100
	maxDecisionPage      = 1000
	maxDecisionPageBytes = 2 << 20
)

// ListDecisions pages through a job's policy decisions, oldest first. The
// page token is the position of the last decision returned.
func (s *jobService) ListDecisions(ctx context.Context, req *federav1.ListDecisionsRequest) (*federav1.ListDecisionsResponse, error) {
	if _, _, _, ok := s.c.snapshot(req.GetJobId()); !ok {
		return nil, status.Errorf(codes.NotFound, "job %q not found", req.GetJobId())
	}
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = defaultDecisionPage
	case size < 0 || size > maxDecisionPage:
		return nil, status.Errorf(codes.InvalidArgument, "field page_size: %d; valid: 1 to %d, or 0 for %d", size, maxDecisionPage, defaultDecisionPage)
	}
	var after uint64
	if t := req.GetPageToken(); t != "" {
		n, err := strconv.ParseUint(t, 10, 64)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "field page_token: %q is not a token this coordinator gave; pass next_page_token from the previous page, or \"\" for the first", t)
		}
		after = n
	}
	ds, last, total, err := s.c.store.ListDecisions(req.GetJobId(), after, size, maxDecisionPageBytes)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list decisions: %v", err)
	}
	resp := &federav1.ListDecisionsResponse{Decisions: ds, Total: total}
	if len(ds) > 0 && int64(last) < total {
		resp.NextPageToken = strconv.FormatUint(last, 10)
	}
	return resp, nil
}

// auditThenPut logs a job's end, then stores the job: the persist step of
// an update that ends a job.
func (c *Coordinator) auditThenPut(j *federav1.Job) error {
	if err := c.audit(true, endEntry(j)); err != nil {
		return err
	}
	return c.store.PutJob(j)
}
