package site

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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

// messages is the release as it will cross the wire. An update's chunks
// share its memory (transfer.ShareWeights): r.weights must not change
// until they are encoded.
func (r *release) messages() []*federav1.SiteMessage {
	r.res.WeightsFollow = (r.weights != nil || r.ring != nil) && r.res.GetError() == ""
	msgs := []*federav1.SiteMessage{{Body: &federav1.SiteMessage_Result{Result: r.res}}}
	if !r.res.WeightsFollow {
		return msgs
	}
	var chunks []*federav1.TensorChunk
	if r.ring != nil {
		chunks = federav1.ChunkRing(r.res.GetTaskId(), r.ring)
	} else {
		// Views of the update's memory, not a copy: nothing writes to
		// it before the messages are encoded to be journalled and sent.
		chunks = transfer.ShareWeights(r.res.GetTaskId(), r.weights, 0)
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
	// The time a decision takes includes deriving its input's digest: a
	// reused decision is found by it.
	evalStart := time.Now()
	var dec policy.EgressDecision
	var digest string
	p, err := a.prepared(t.GetJobId(), in)
	if err == nil {
		dec, digest, err = a.egressDecision(ctx, eng, p, in)
	} else {
		digest = policy.InputDigest(in)
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
		InputDigest: digest, Allow: dec.Allow, Reasons: dec.Reasons, PolicyRevision: eng.Revision(),
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

// egressDecision is eng's egress decision on in, prepared as p, and the
// input's digest. A deterministic policy decides the same on the same
// input, so the decision a policy revision made for an input is kept, with
// its digest, and reused for the next message with the same input — a
// job's update of the same size from the same number of records, round
// after round — instead of being evaluated again (0.2–1 ms each, most of a
// site's policy time per round; docs/scale.md). Any change to the input
// (size, records, noise, privacy spend, the admission summary, the job or
// site part that p matched) is another key, and a reload another revision,
// so either is decided afresh; a policy that reads the clock or draws
// random numbers is asked every time. Failed evaluations are not kept.
func (a *Agent) egressDecision(ctx context.Context, eng *policy.Engine, p *policy.Prepared, in policy.Input) (policy.EgressDecision, string, error) {
	det, _ := eng.Deterministic()
	key, keyed := egressKey{revision: eng.Revision(), base: p}, false
	if det {
		// The message part is its JSON: every field, exactly (a NaN has
		// none, and is decided afresh — and denied, for want of a digest).
		eg, err1 := json.Marshal(in.Egress)
		adm, err2 := json.Marshal(in.Admission)
		key.message, keyed = string(eg)+"\x00"+string(adm), err1 == nil && err2 == nil
	}
	if keyed {
		a.admitMu.Lock()
		kept, ok := a.egressCache[key]
		a.admitMu.Unlock()
		if ok {
			// Records trim their reasons in place: each gets its own.
			d := kept.decision
			d.Reasons = slices.Clone(d.Reasons)
			return d, kept.digest, nil
		}
	}
	digest := p.Digest(in.Egress, in.Admission)
	dec, err := eng.EgressPrepared(ctx, p, in.Egress, in.Admission)
	if err != nil || !keyed || digest == "" {
		return dec, digest, err
	}
	a.admitMu.Lock()
	// Bounded like prepCache: a key holds its Prepared input alive.
	if a.egressCache == nil || len(a.egressCache) >= 256 {
		a.egressCache = map[egressKey]keptEgress{}
	}
	kept := keptEgress{decision: dec, digest: digest}
	kept.decision.Reasons = slices.Clone(dec.Reasons)
	a.egressCache[key] = kept
	a.admitMu.Unlock()
	return dec, digest, nil
}

// egressKey identifies an egress input under a policy revision: the
// prepared job, site and destination (a Prepared is kept while a key
// holds it, so its address is never another's) and the message's JSON.
type egressKey struct {
	revision string
	base     *policy.Prepared
	message  string
}

// keptEgress is a reused egress decision and its input's digest.
type keptEgress struct {
	decision policy.EgressDecision
	digest   string
}

// prepared converts a job's policy input once for its many egress checks.
// The key holds the job and the features, which fix the rest of the base
// input for an honest coordinator; a kept input that does not match in
// (another spec sent under the same job id) is prepared again.
func (a *Agent) prepared(job string, in policy.Input) (*policy.Prepared, error) {
	key := job + "\x00" + strings.Join(in.Job.Features, ",")
	a.admitMu.Lock()
	p, ok := a.prepCache[key]
	a.admitMu.Unlock()
	if ok && p.Matches(in) {
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
