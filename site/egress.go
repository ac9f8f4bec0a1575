package site

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/models"
	"github.com/federa-dev/federa/policy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/spec"
	"github.com/federa-dev/federa/transfer"
)

// Egress kinds, as the policy sees them.
const (
	egressStatistics  = "statistics"
	egressModelUpdate = "model_update"
	egressMetrics     = "metrics"
)

// release is what a task wants to send, with what the egress policy needs
// to judge it.
type release struct {
	res     *federav1.TaskResult
	weights models.Weights
	ring    []byte // a secure-aggregation masked input, packed, sent instead of weights
	// share is a distributed-DP round's noisy share: the secure round's
	// input, kept here (secaggKeys), never sent as it is.
	share    []uint64
	kind     string // empty: no data leaves (an admission answer or an error)
	records  int64
	maxBytes int64
	noise    *policy.Noise
	dp       *dpRelease // a differentially private release: charged to the ledger
	// The spend with this release, from the ledger: the job's ε and the
	// dataset's lifetime ε.
	epsilonJob, epsilonDataset float64
	input                      policy.Input
	dataset                    string
	admitted                   admitted // the admission the task ran under
}

// messages is the release as it will cross the wire.
func (r *release) messages() []*federav1.SiteMessage {
	r.res.WeightsFollow = (r.weights != nil || r.ring != nil) && r.res.GetError() == ""
	msgs := []*federav1.SiteMessage{{Body: &federav1.SiteMessage_Result{Result: r.res}}}
	if !r.res.WeightsFollow {
		return msgs
	}
	chunks := transfer.ChunkWeights(r.res.GetTaskId(), r.weights, 0)
	if r.ring != nil {
		chunks = federav1.ChunkRing(r.res.GetTaskId(), r.ring)
	}
	for _, ch := range chunks {
		msgs = append(msgs, &federav1.SiteMessage{Body: &federav1.SiteMessage_Chunk{Chunk: ch}})
	}
	return msgs
}

func size(msgs []*federav1.SiteMessage) int64 {
	var n int64
	for _, m := range msgs {
		n += int64(proto.Size(m))
	}
	return n
}

// boundFor is the most bytes a release of this kind may take for the
// declared model (params: its parameter count, from its architecture): 4
// bytes a parameter plus a fixed envelope, and for an update a small
// allowance per chunk it travels in (each has its own headers: task id,
// tensor name, shape, offset), so a task cannot smuggle out more than the
// model it claims to send. (A 100M-parameter update is 382 chunks, whose
// headers alone outgrew the fixed envelope.)
func boundFor(kind string, features, classes int, params int64) int64 {
	const envelope = 16 << 10
	const perChunk = 1 << 10
	switch kind {
	case egressModelUpdate:
		return 4*params + envelope + perChunk*(4*params/federav1.MaxChunkBytes+1)
	case egressStatistics:
		return int64(8*(2*features+1)) + int64(64*(features+classes)) + envelope
	default:
		return envelope
	}
}

// paramsFor is how many values the weights of task t hold, by its job's
// model architecture: all the agent accepts from the coordinator for it,
// so a coordinator cannot make a site allocate more than the model needs.
// A task whose model this agent does not know may send none.
func paramsFor(t *federav1.Task) int64 {
	arch, err := spec.ArchOf(t.GetSpec())
	if err != nil {
		return 0
	}
	return arch.NumParams(len(t.GetFeatures()), len(t.GetClasses()))
}

// checkEgress asks the policy whether exactly these bytes may leave, and
// records the decision. A denied release is replaced by an error result
// that carries the reasons and nothing else.
func (a *Agent) checkEgress(ctx context.Context, t *federav1.Task, r *release, msgs []*federav1.SiteMessage) ([]*federav1.SiteMessage, bool) {
	if r.kind == "" {
		return msgs, true
	}
	in := r.input
	in.Egress = &policy.Egress{
		Kind: r.kind, Bytes: size(msgs), MaxBytes: r.maxBytes, Records: r.records, Noise: r.noise,
		EpsilonSpent: r.epsilonJob, DatasetEpsilonSpent: r.epsilonDataset,
	}
	eng := a.policy.Current()
	if r.admitted.revision == eng.Revision() {
		// Same policy revision: egress rules reuse its admission instead of
		// deriving it again. After a reload they derive it afresh.
		in.Admission = r.admitted.decision.Summary()
	}
	evalStart := time.Now()
	var dec policy.EgressDecision
	p, err := a.prepared(t.GetJobId(), in)
	if err == nil {
		dec, err = eng.EgressPrepared(ctx, p, in.Egress, in.Admission)
	}
	evalUs := float64(time.Since(evalStart)) / float64(time.Microsecond)
	if err != nil {
		dec = policy.EgressDecision{Reasons: []string{"policy evaluation failed: " + err.Error()}}
	}
	if !dec.Allow && len(dec.Reasons) == 0 {
		dec.Reasons = []string{"the egress policy denied the release without a reason"}
	}
	a.record(&federav1.DecisionRecord{
		UnixMs: time.Now().UnixMilli(), Kind: "egress", JobId: t.GetJobId(), TaskId: t.GetTaskId(),
		InputDigest: policy.InputDigest(in), Allow: dec.Allow, Reasons: dec.Reasons, PolicyRevision: eng.Revision(),
		EgressKind: r.kind, Bytes: in.Egress.Bytes, EvalUs: evalUs,
	})
	if dec.Allow {
		return msgs, true
	}
	denied := &federav1.TaskResult{
		TaskId: t.GetTaskId(), JobId: t.GetJobId(), Round: t.GetRound(), Kind: t.GetKind(),
		Error: fmt.Sprintf("egress denied at %s: %s", a.siteName(), strings.Join(dec.Reasons, "; ")),
	}
	return []*federav1.SiteMessage{{Body: &federav1.SiteMessage_Result{Result: denied}}}, false
}

// prepared converts a job's policy input once for its many egress checks.
// The key holds the job and the features: everything else in the base
// input is fixed for the life of the agent.
func (a *Agent) prepared(job string, in policy.Input) (*policy.Prepared, error) {
	key := job + "\x00" + strings.Join(in.Job.Features, ",")
	a.admitMu.Lock()
	p, ok := a.prepCache[key]
	a.admitMu.Unlock()
	if ok {
		return p, nil
	}
	p, err := policy.Prepare(in)
	if err != nil {
		return nil, err
	}
	a.admitMu.Lock()
	if a.prepCache == nil || len(a.prepCache) >= 256 {
		a.prepCache = map[string]*policy.Prepared{}
	}
	a.prepCache[key] = p
	a.admitMu.Unlock()
	return p, nil
}

// redact makes an error fit to leave the site: a data error keeps its
// file name, line and column but loses directories and cell values.
func redact(err error) error {
	var de *dataset.Error
	if errors.As(err, &de) {
		return de.Redacted()
	}
	return err
}
