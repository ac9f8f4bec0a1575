package site

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/internal/fsutil"
	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/secagg"
	"github.com/federa-dev/federa/secagg/updates"
	"github.com/federa-dev/federa/spec"
)

// A secure-aggregation round at this site (coordinator/secagg.go drives
// it): the TRAIN task trains and keeps the encoded update here, sending
// only signed public keys; the SECAGG tasks that follow check every other
// site's signed keys against this site's trust bundle, send encrypted
// shares, the masked update (the only release of data, judged by the
// egress policy and charged to the DP ledger as an update is), a signature
// on the survivor list, and the shares that unmask the sum. The
// coordinator never sees the update itself.

// secaggRound is one round in progress: the protocol state and the
// release its masked input will be.
type secaggRound struct {
	session []byte
	client  *secagg.Client
	input   []uint64
	// The update's release, moved from the TRAIN task to the MASK task.
	release release
}

// secaggRounds holds the rounds in progress, at most one per job, and the
// survivor set this site unmasked each (job, round) with, kept on disk: a
// coordinator that ran one round twice over different survivors could
// subtract the two sums and learn the difference, so a site unmasks a
// round for one survivor set only, whatever sessions it is asked in.
type secaggRounds struct {
	mu     sync.Mutex
	byJob  map[string]*secaggRound
	path   string            // state_dir/secagg-unmasked.json, or "" (memory only)
	viewed map[string]string // job \x00 round → sorted survivors, comma-joined
	order  []string
}

const maxSecAggViews = 4096

func openSecAggRounds(stateDir string) (*secaggRounds, error) {
	s := &secaggRounds{byJob: map[string]*secaggRound{}, viewed: map[string]string{}}
	if stateDir == "" {
		return s, nil
	}
	s.path = filepath.Join(stateDir, "secagg-unmasked.json")
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", s.path, err)
	}
	var list []struct{ Key, Survivors string }
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("%s: %w (it records which survivor set each secure-aggregation round was unmasked for; restore it from a backup rather than delete it)", s.path, err)
	}
	for _, e := range list {
		s.viewed[e.Key] = e.Survivors
		s.order = append(s.order, e.Key)
	}
	return s, nil
}

// checkView refuses to unmask (job, round) for survivors other than those
// it was unmasked for before; it records a first view durably before
// anything is revealed.
func (s *secaggRounds) checkView(job string, round int32, survivors []string) error {
	key := fmt.Sprintf("%s\x00%d", job, round)
	view := strings.Join(survivors, ",")
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.viewed[key]; ok {
		if old != view {
			return fmt.Errorf("round %d of job %s was unmasked here for survivors [%s]; refusing to unmask it for [%s]: two sums over different sites would reveal their difference", round, job, old, view)
		}
		return nil
	}
	s.viewed[key] = view
	s.order = append(s.order, key)
	if len(s.order) > maxSecAggViews {
		delete(s.viewed, s.order[0])
		s.order = s.order[1:]
	}
	if s.path == "" {
		return nil
	}
	list := make([]struct{ Key, Survivors string }, 0, len(s.order))
	for _, k := range s.order {
		list = append(list, struct{ Key, Survivors string }{k, s.viewed[k]})
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFile(s.path, b, 0o600); err != nil {
		delete(s.viewed, key)
		s.order = s.order[:len(s.order)-1]
		return fmt.Errorf("record the survivors of round %d: %w; nothing was revealed", round, err)
	}
	return nil
}

// maxSecAggRounds bounds the rounds in progress a site holds (each keeps
// its encoded update): a round abandoned by a failed job is dropped when
// newer rounds need the room.
const maxSecAggRounds = 64

func (s *secaggRounds) put(job string, r *secaggRound) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for other := range s.byJob {
		if len(s.byJob) < maxSecAggRounds {
			break
		}
		if other != job {
			delete(s.byJob, other)
		}
	}
	s.byJob[job] = r
}

// done drops job's round once it has been unmasked.
func (s *secaggRounds) done(job string, session []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.byJob[job]; r != nil && bytes.Equal(r.session, session) {
		delete(s.byJob, job)
	}
}

// get returns job's round in progress if it is session's.
func (s *secaggRounds) get(job string, session []byte) (*secaggRound, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.byJob[job]
	if r == nil || !bytes.Equal(r.session, session) {
		return nil, fmt.Errorf("no secure-aggregation round of job %s in progress here for this session (this site restarted, or the round moved on); this site sits the round out", job)
	}
	return r, nil
}

// roundCodec is how a secure round's input is encoded: an update (the
// plain codec), or under distributed DP noise a share of one DP-SGD step
// (dp).
type roundCodec struct {
	plain updates.Codec
	dp    *updates.DPCodec
}

// secaggParams checks a secure-aggregation task against the job's spec and
// returns the round's protocol parameters and codec; sigma is this site's
// DP plan's noise multiplier under distributed noise (else unused). The
// session must name this job and round; the clip must be the spec's and
// the threshold at least the spec's, so a coordinator cannot weaken either;
// the scale must be the one every party derives.
func (a *Agent) secaggParams(t *federav1.Task, sigma float64) (secagg.Params, roundCodec, error) {
	sa := t.GetSecagg()
	var p secagg.Params
	var rc roundCodec
	prefix := fmt.Sprintf("federa/secagg/v1\x00%s\x00%d\x00", t.GetJobId(), t.GetRound())
	if !bytes.HasPrefix(sa.GetSession(), []byte(prefix)) || len(sa.GetSession()) < len(prefix)+16 {
		return p, rc, fmt.Errorf("secure aggregation: the session does not name job %s round %d", t.GetJobId(), t.GetRound())
	}
	on, threshold, neighbors, clip := spec.SecAggOf(t.GetSpec(), len(sa.GetSites()))
	if !on {
		return p, rc, errors.New("secure aggregation: the job's spec does not ask for it")
	}
	switch {
	case int(sa.GetThreshold()) < threshold:
		return p, rc, fmt.Errorf("secure aggregation: threshold %d is below the job's %d", sa.GetThreshold(), threshold)
	case int(sa.GetNeighbors()) != neighbors:
		return p, rc, fmt.Errorf("secure aggregation: %d neighbours, the job says %d", sa.GetNeighbors(), neighbors)
	case sa.GetClip() != clip:
		return p, rc, fmt.Errorf("secure aggregation: clip %g, the job says %g", sa.GetClip(), clip)
	}
	params := int(paramsFor(t))
	length, scale := 0, 0.0
	if spec.DistributedDP(t.GetSpec()) {
		dp := t.GetSpec().GetPrivacy().GetDp()
		c, err := updates.NewDP(len(sa.GetSites()), int(sa.GetThreshold()), sa.GetMaxWeight(), params, dp.GetSamplingRate(), sigma, dp.GetClipNorm())
		if err != nil {
			return p, rc, err
		}
		rc.dp, length, scale = &c, c.Length(), c.Scale
	} else {
		c, err := updates.New(len(sa.GetSites()), sa.GetMaxWeight(), clip)
		if err != nil {
			return p, rc, err
		}
		rc.plain, length, scale = c, c.Length(params), c.DeltaScale
	}
	if sa.GetScale() != scale {
		return p, rc, fmt.Errorf("secure aggregation: scale %g, but %d sites × %d examples give %g", sa.GetScale(), len(sa.GetSites()), sa.GetMaxWeight(), scale)
	}
	p = secagg.Params{Session: sa.GetSession(), Sites: sa.GetSites(), Threshold: int(sa.GetThreshold()),
		Neighbors: neighbors, Bits: updates.Bits, Length: length}
	return p, rc, p.Validate()
}

// secaggAdmitted is the admission a secure round's later phases run
// under: the one its TRAIN task was admitted with, while the policy in
// force is the revision that decided it. The phases are one release of
// one round; deciding the job again for each would record five decisions
// per round for one. After a policy reload they are decided afresh.
func (a *Agent) secaggAdmitted(t *federav1.Task) (admitted, bool) {
	if t.GetKind() != federav1.TaskKind_TASK_KIND_SECAGG {
		return admitted{}, false
	}
	st, err := a.secagg.get(t.GetJobId(), t.GetSecagg().GetSession())
	if err != nil || st.release.admitted.answer == nil || st.release.admitted.revision != a.policy.Current().Revision() {
		return admitted{}, false
	}
	return st.release.admitted, true
}

// secaggKeys turns a trained release into the round's first phase: the
// update is encoded and kept here, and what leaves is two signed public
// keys.
func (a *Agent) secaggKeys(t *federav1.Task, global models.Weights, r *release) error {
	if t.GetSecagg().GetPhase() != federav1.SecAggTask_PHASE_KEYS {
		return fmt.Errorf("secure aggregation: a TRAIN task in phase %s", t.GetSecagg().GetPhase())
	}
	var sigma float64
	if r.dp != nil {
		sigma = r.dp.plan.Sigma
	}
	p, codec, err := a.secaggParams(t, sigma)
	if err != nil {
		return err
	}
	x := r.share
	if codec.dp == nil {
		if x, err = codec.plain.Encode(global, r.weights, r.res.GetExamples(), r.res.GetTrainLoss()); err != nil {
			return err
		}
	} else if len(x) != p.Length {
		return fmt.Errorf("distributed DP: the share has %d values, the round %d", len(x), p.Length)
	}
	client, err := secagg.NewClient(p, a.siteName(), rand.Reader)
	if err != nil {
		return err
	}
	keys := client.Advertise()
	sig, chain, err := attest.SignAsSVID(a.cfg.Identity, secagg.KeysMessage(p.Session, keys))
	if err != nil {
		return err
	}
	kept := *r
	kept.res = &federav1.TaskResult{Examples: r.res.GetExamples(), NoiseSigma: r.res.GetNoiseSigma(), ObligationsEnforced: r.res.GetObligationsEnforced()}
	kept.weights = nil
	kept.maxBytes = boundFor(egressModelUpdate, 0, 0, int64(p.Length))
	a.secagg.put(t.GetJobId(), &secaggRound{session: p.Session, client: client, input: x, release: kept})
	r.res.Examples, r.res.TrainLoss, r.res.NoiseSigma = 0, 0, 0
	r.res.Secagg = &federav1.SecAggResult{Phase: federav1.SecAggTask_PHASE_KEYS, Keys: &federav1.SecAggKeys{
		Site: a.siteName(), CPublic: keys.CPK, SPublic: keys.SPK, Signature: sig, CertChain: chain}}
	r.weights, r.share, r.kind, r.dp, r.noise, r.records = nil, nil, "", nil, nil, 0
	return nil
}

// secaggPhase answers one SECAGG task.
func (a *Agent) secaggPhase(t *federav1.Task, r *release) error {
	sa := t.GetSecagg()
	if sa == nil {
		return errors.New("secure aggregation: a SECAGG task without its phase")
	}
	st, err := a.secagg.get(t.GetJobId(), sa.GetSession())
	if err != nil {
		return err
	}
	res := &federav1.SecAggResult{Phase: sa.GetPhase()}
	r.res.Secagg = res
	now := a.opts.now()
	switch sa.GetPhase() {
	case federav1.SecAggTask_PHASE_SHARE:
		var u1 []secagg.Keys
		for _, k := range sa.GetKeys() {
			// Every key set must be its site's own: the coordinator relays
			// them and could otherwise put its own in a site's place.
			ks := secagg.Keys{Site: k.GetSite(), CPK: k.GetCPublic(), SPK: k.GetSPublic()}
			if err := attest.VerifySiteSignature(a.cfg.Identity, k.GetSite(), k.GetCertChain(), secagg.KeysMessage(sa.GetSession(), ks), k.GetSignature(), now); err != nil {
				return fmt.Errorf("secure aggregation: the keys relayed for %s: %w; refusing the round", k.GetSite(), err)
			}
			u1 = append(u1, ks)
		}
		shares, err := st.client.ShareKeys(u1)
		if err != nil {
			return fmt.Errorf("secure aggregation: %w", err)
		}
		for _, s := range shares {
			res.Shares = append(res.Shares, &federav1.SecAggShare{From: s.From, To: s.To, Ciphertext: s.Ciphertext})
		}
	case federav1.SecAggTask_PHASE_MASK:
		var in []secagg.Share
		for _, s := range sa.GetShares() {
			in = append(in, secagg.Share{From: s.GetFrom(), To: s.GetTo(), Ciphertext: s.GetCiphertext()})
		}
		y, err := st.client.MaskedInput(st.input, in)
		if err != nil {
			return fmt.Errorf("secure aggregation: %w", err)
		}
		ring, err := secagg.Pack(updates.Bits, y)
		if err != nil {
			return fmt.Errorf("secure aggregation: %w", err)
		}
		// The masked update is the round's release of data: the egress
		// policy judges it, and a DP update is charged now, as it leaves.
		// Its weight travels only inside the masked sum.
		rel := st.release
		rel.res, rel.ring = r.res, ring
		rel.res.NoiseSigma = st.release.res.GetNoiseSigma()
		rel.res.ObligationsEnforced = append(slices.Clone(st.release.res.GetObligationsEnforced()),
			fmt.Sprintf("secure aggregation: masked among %d sites, threshold %d", len(sa.GetSites()), sa.GetThreshold()))
		*r = rel
	case federav1.SecAggTask_PHASE_CONFIRM:
		msg, err := st.client.Consistency(sa.GetSurvivors())
		if err != nil {
			return fmt.Errorf("secure aggregation: %w", err)
		}
		sig, chain, err := attest.SignAsSVID(a.cfg.Identity, msg)
		if err != nil {
			return err
		}
		res.Confirmation = &federav1.SecAggSignature{Site: a.siteName(), Signature: sig, CertChain: chain}
	case federav1.SecAggTask_PHASE_UNMASK:
		survivors := sa.GetSurvivors()
		msg := secagg.ConsistencyMessage(sa.GetSession(), survivors)
		var signers []string
		for _, c := range sa.GetConfirmations() {
			if !slices.Contains(survivors, c.GetSite()) {
				return fmt.Errorf("secure aggregation: a confirmation from %s, which is not a survivor; refusing the round", c.GetSite())
			}
			if err := attest.VerifySiteSignature(a.cfg.Identity, c.GetSite(), c.GetCertChain(), msg, c.GetSignature(), now); err != nil {
				return fmt.Errorf("secure aggregation: the confirmation relayed for %s: %w; refusing the round", c.GetSite(), err)
			}
			signers = append(signers, c.GetSite())
		}
		if err := a.secagg.checkView(t.GetJobId(), t.GetRound(), slices.Sorted(slices.Values(survivors))); err != nil {
			return fmt.Errorf("secure aggregation: %w", err)
		}
		reveals, err := st.client.Unmask(survivors, signers)
		if err != nil {
			return fmt.Errorf("secure aggregation: %w", err)
		}
		for _, v := range reveals {
			res.Reveals = append(res.Reveals, &federav1.SecAggReveal{Of: v.Of, Kind: int32(v.Kind), Share: v.Share})
		}
		a.secagg.done(t.GetJobId(), sa.GetSession())
	default:
		return fmt.Errorf("secure aggregation: unknown phase %s", sa.GetPhase())
	}
	return nil
}
