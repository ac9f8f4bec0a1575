package sim_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/coordinator"
	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/secagg"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/spec"
)

// maskingAt matches site's MASK task of round: a site held there has
// shared its secrets and not yet sent its masked input.
func maskingAt(site string, round int32) func(string, *federav1.Task) bool {
	return func(name string, t *federav1.Task) bool {
		return name == site && t.GetSecagg().GetPhase() == federav1.SecAggTask_PHASE_MASK && t.GetRound() == round
	}
}

func secAggSpec() *spec.Job {
	j := demoSpec()
	j.Privacy.SecureAggregation = spec.SecureAggregation{On: true}
	return j
}

// maskedInputs gathers, from what the coordinator received, each site's
// masked input of each round (the ring transfers), keyed "site round".
func maskedInputs(t *testing.T, tap *wireTap) map[string][]uint32 {
	t.Helper()
	out := map[string][]uint32{}
	rounds := map[string]int32{} // transfer id → round
	for _, m := range tap.typedAll() {
		sm, ok := m.(*federav1.SiteMessage)
		if !ok {
			continue
		}
		if r := sm.GetResult(); r.GetSecagg().GetPhase() == federav1.SecAggTask_PHASE_MASK && r.GetWeightsFollow() {
			rounds[r.GetTaskId()] = r.GetRound()
		}
		c := sm.GetChunk()
		if !c.GetRing() {
			continue
		}
		// The task id names the site: job/rN/secagg/<site>/nonce.seal.
		parts := strings.Split(c.GetTransferId(), "/")
		key := strings.Join(parts[3:5], "/") + " " + parts[1]
		for i := 0; i+4 <= len(c.GetData()); i += 4 {
			out[key] = append(out[key], binary.LittleEndian.Uint32(c.GetData()[i:]))
		}
	}
	if len(out) == 0 {
		t.Fatal("the tap saw no masked input")
	}
	return out
}

// chiSquareTop4 is the chi-square statistic of the top 4 bits of v
// against the uniform distribution over 16 bins (15 degrees of freedom:
// mean 15, sd ≈ 5.5; above 60 happens to uniform data with p < 1e-6).
func chiSquareTop4(v []uint32) float64 {
	var bins [16]float64
	for _, x := range v {
		bins[x>>28]++
	}
	want := float64(len(v)) / 16
	var chi float64
	for _, b := range bins {
		chi += (b - want) * (b - want) / want
	}
	return chi
}

// TestSecureAggregationHidesEachUpdate runs the demo job twice over real
// mTLS, in the clear and with secure aggregation, and looks at everything
// the coordinator received. With secure aggregation every masked input is
// indistinguishable from uniform noise, no site's update (which the clear
// run shows, bit for bit the same training) appears in any form, and the
// model is the clear run's to the fixed-point encoding's precision.
func TestSecureAggregationHidesEachUpdate(t *testing.T) {
	plainTap, secTap := &wireTap{}, &wireTap{}
	run := func(tap *wireTap, j *spec.Job) (*federav1.Job, models.Weights, float64) {
		n, _ := startNet(t, sim.Options{Coordinator: withTap(tap)})
		job := runJob(t, n, j)
		if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
			t.Fatalf("job %s: %s", job.GetStatus(), job.GetMessage())
		}
		path := filepath.Join(t.TempDir(), "model.safetensors")
		downloadModel(t, n, job.GetId(), path)
		m, err := models.LoadModel(path)
		if err != nil {
			t.Fatal(err)
		}
		return job, m.Weights, accuracyOf(t, path, filepath.Join(shipped, "test.csv"))
	}
	// An MLP with 4226 parameters: enough values per vector for the
	// uniformity test to mean something.
	j := demoSpec()
	j.Rounds, j.Model = 5, spec.Model{Type: "mlp", Hidden: []int{128}}
	_, plainW, plainAcc := run(plainTap, j)
	j.Privacy.SecureAggregation = spec.SecureAggregation{On: true}
	job, secW, secAcc := run(secTap, j)
	t.Logf("test accuracy: clear %.4f, secure aggregation %.4f", plainAcc, secAcc)

	masked := maskedInputs(t, secTap)
	if len(masked) != 3*5 {
		t.Fatalf("masked inputs seen: %d, want 3 sites × 5 rounds", len(masked))
	}
	for key, y := range masked {
		if chi := chiSquareTop4(y); chi > 60 {
			t.Errorf("%s: masked input is not uniform: chi-square %.0f over 16 bins", key, chi)
		}
	}
	// What an unmasked input looks like, to show the test can tell:
	// the clear run's round-1 update of one site, encoded the same way.
	var plainUpdate *federav1.SiteMessage
	for _, m := range fromSite(plainTap, "eu/paris") {
		if m.GetChunk() != nil && strings.Contains(m.GetChunk().GetTransferId(), "/r1/train/") {
			plainUpdate = m
			break
		}
	}
	if plainUpdate == nil {
		t.Fatal("the clear run's tap holds no update from eu/paris")
	}
	var code []uint32
	for i := 0; i+4 <= len(plainUpdate.GetChunk().GetData()); i += 4 {
		code = append(code, binary.LittleEndian.Uint32(plainUpdate.GetChunk().GetData()[i:]))
	}
	if chi := chiSquareTop4(code); chi < 60 {
		t.Fatalf("the chi-square test cannot tell a clear update from noise (%.0f)", chi)
	}
	// No clear update reaches the coordinator: not the first weights of
	// any site's update from the clear run, in the bytes it received.
	var wire []byte
	for _, b := range secTap.all() {
		wire = append(wire, b...)
	}
	for _, s := range []string{"eu/paris", "sg/singapore", "us/boston"} {
		for _, m := range fromSite(plainTap, s) {
			if c := m.GetChunk(); c != nil && strings.Contains(c.GetTransferId(), "/r1/train/") && len(c.GetData()) >= 24 {
				if containsBytes(wire, c.GetData()[:24]) {
					t.Fatalf("%s's clear round-1 update reached the coordinator under secure aggregation", s)
				}
			}
		}
	}
	// The model: each round's sum decodes to within sites/scale of the
	// clear FedAvg; five rounds of training carry that along.
	var worst float64
	for name, tt := range plainW {
		for i, v := range tt.Data {
			worst = max(worst, math.Abs(float64(v)-float64(secW[name].Data[i])))
		}
	}
	t.Logf("largest weight difference from the clear run: %.3g", worst)
	if worst > 1e-4 || math.Abs(plainAcc-secAcc) > 0.005 {
		t.Fatalf("secure aggregation's model differs from the clear run's: weights by %.3g, accuracy %.4f vs %.4f", worst, secAcc, plainAcc)
	}
	for _, r := range job.GetRounds() {
		sa := r.GetSecagg()
		if sa == nil || sa.GetThreshold() != 2 || len(sa.GetMasked()) != 3 || len(sa.GetRevealed()) != 3 || len(sa.GetReconstructed()) != 0 {
			t.Fatalf("round %d's secure-aggregation record %v: want threshold 2 and all three sites through every phase", r.GetRound(), sa)
		}
	}

}

// fromSite returns the messages the coordinator received from site.
func fromSite(tap *wireTap, site string) []*federav1.SiteMessage {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	var out []*federav1.SiteMessage
	for i, m := range tap.typed {
		if sm, ok := m.(*federav1.SiteMessage); ok && strings.HasSuffix(tap.peers[i], "/site/"+site) {
			out = append(out, sm)
		}
	}
	return out
}

func containsBytes(hay, needle []byte) bool { return bytes.Contains(hay, needle) }

// TestSecureAggregationSurvivesADropout kills a site after it shared its
// secrets but before it sent its masked input, the hardest place to drop:
// the others have already masked against it. The survivors reveal its mask
// key, the coordinator removes its pairwise masks, and the round completes
// with the survivors' exact sum; the job finishes with a good model.
func TestSecureAggregationSurvivesADropout(t *testing.T) {
	hit := make(chan string, 1)
	n, _ := startNet(t, sim.Options{SiteOptions: hangWhen(maskingAt("us/boston", 2), hit)})
	j := secAggSpec()
	j.Rounds = 4
	done := make(chan *federav1.Job, 1)
	go func() { done <- runJob(t, n, j) }()
	n.StopSite(waitHit(t, hit, "masking at round 2")) // dies holding its shares, its masked input unsent
	job := <-done
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job %s: %s", job.GetStatus(), job.GetMessage())
	}
	r2 := job.GetRounds()[1].GetSecagg()
	if !slices.Equal(r2.GetShared(), []string{"eu/paris", "sg/singapore", "us/boston"}) ||
		!slices.Equal(r2.GetMasked(), []string{"eu/paris", "sg/singapore"}) ||
		!slices.Equal(r2.GetReconstructed(), []string{"us/boston"}) || r2.GetReconstructedReason() == "" {
		t.Fatalf("round 2's record %v: want us/boston shared, not masked, and its mask key reconstructed", r2)
	}
	if p := job.GetRounds()[1].GetParticipants(); !slices.Equal(p, []string{"eu/paris", "sg/singapore"}) {
		t.Fatalf("round 2 participants %v", p)
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	downloadModel(t, n, job.GetId(), path)
	if acc := accuracyOf(t, path, filepath.Join(shipped, "test.csv")); acc < 0.93 {
		t.Fatalf("test accuracy %.4f after the dropout", acc)
	}
}

// keySwap is a coordinator that relays secure-aggregation keys dishonestly:
// it puts its own key in eu/paris's place, signed with its own SVID (or,
// with keepSig, eu/paris's signature over the real keys).
type keySwap struct {
	signer  attest.Source
	keepSig bool
}

func (k *keySwap) option() grpc.ServerOption {
	return grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return h(srv, &swapStream{ServerStream: ss, k: k})
	})
}

type swapStream struct {
	grpc.ServerStream
	k *keySwap
}

func (s *swapStream) SendMsg(m any) error {
	cm, ok := m.(*federav1.CoordinatorMessage)
	if sa := cm.GetTask().GetSecagg(); ok && sa.GetPhase() == federav1.SecAggTask_PHASE_SHARE {
		cm = proto.Clone(cm).(*federav1.CoordinatorMessage)
		for _, k := range cm.GetTask().GetSecagg().GetKeys() {
			if k.GetSite() != "eu/paris" {
				continue
			}
			sk, _ := ecdh.X25519().GenerateKey(rand.Reader)
			k.CPublic = sk.PublicKey().Bytes()
			if !s.k.keepSig {
				sig, chain, err := attest.SignAsSVID(s.k.signer, secagg.KeysMessage(sa.GetSession(), secagg.Keys{Site: k.GetSite(), CPK: k.GetCPublic(), SPK: k.GetSPublic()}))
				if err != nil {
					return err
				}
				k.Signature, k.CertChain = sig, chain
			}
		}
		m = cm
	}
	return s.ServerStream.SendMsg(m)
}

// TestSecureAggregationRefusesSubstitutedKeys: the coordinator relays the
// keys, so it could hand the sites its own key for eu/paris and decrypt
// the shares meant for it. Every site checks each key set's signature
// against its own trust bundle and the signer's SPIFFE ID against the site
// named, refuses the round, and nothing is masked or revealed.
func TestSecureAggregationRefusesSubstitutedKeys(t *testing.T) {
	for _, tc := range []struct {
		name    string
		keepSig bool
		want    string
	}{
		{"signed by the coordinator", false, "which is not that site"},
		{"with eu/paris's signature on other keys", true, "does not match the message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			swap := &keySwap{keepSig: tc.keepSig}
			tap := &wireTap{}
			n, _ := startNet(t, sim.Options{Coordinator: func(c *coordinator.Config) {
				swap.signer = c.Identity
				// The tap sits outside the swap: it records what the sites
				// sent back.
				c.ServerOptions = append(c.ServerOptions, tap.option(), swap.option())
			}})
			j := secAggSpec()
			j.Rounds = 1
			job := runJob(t, n, j)
			if job.GetStatus() != federav1.JobStatus_JOB_STATUS_FAILED || !strings.Contains(job.GetMessage(), tc.want) ||
				!strings.Contains(job.GetMessage(), "keys relayed for eu/paris") {
				t.Fatalf("job %s: %q; want it failed because the sites refused the substituted keys (%q)", job.GetStatus(), job.GetMessage(), tc.want)
			}
			for _, m := range tap.typedAll() {
				if sm, ok := m.(*federav1.SiteMessage); ok {
					if p := sm.GetResult().GetSecagg().GetPhase(); p != federav1.SecAggTask_PHASE_UNSPECIFIED && p != federav1.SecAggTask_PHASE_KEYS {
						if len(sm.GetResult().GetSecagg().GetShares()) > 0 {
							t.Fatalf("a site sent shares after the keys were substituted")
						}
					}
					if sm.GetChunk().GetRing() {
						t.Fatal("a site sent a masked input after the keys were substituted")
					}
				}
			}
		})
	}
}

// TestSecureAggregationWithDP: each site still runs DP-SGD with its full
// noise and is charged once per round, when its masked update leaves; its
// egress journal records what it sent in every phase of every round.
func TestSecureAggregationWithDP(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	j := secAggSpec()
	j.Rounds = 4
	noEval := 0.0
	j.EvalFraction = &noEval
	j.Privacy.DP = &spec.DP{Epsilon: 3, Delta: 1e-5, ClipNorm: 1}
	job := runJob(t, n, j)
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job %s: %s", job.GetStatus(), job.GetMessage())
	}
	for _, s := range job.GetSites() {
		if got := paidRounds(t, n, s.GetSite(), job.GetId()); !slices.Equal(got, []int32{1, 2, 3, 4}) {
			t.Errorf("%s paid for rounds %v, want 1..4 once each", s.GetSite(), got)
		}
		if e := s.GetEpsilonSpent(); e > 3 || e < 3*(1-1e-4) {
			t.Errorf("%s spent ε %v, want just under 3", s.GetSite(), e)
		}
		b, err := os.ReadFile(filepath.Join(n.SiteDir(s.GetSite()), "egress.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		phases := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e struct {
				Job     string `json:"job"`
				Phase   string `json:"secagg_phase"`
				Allowed bool   `json:"egress_allowed"`
			}
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatal(err)
			}
			if e.Job == job.GetId() && e.Phase != "" && e.Allowed {
				phases[e.Phase]++
			}
		}
		for _, p := range []string{"keys", "share", "mask", "confirm", "unmask"} {
			if phases[p] != 4 {
				t.Errorf("%s's egress journal holds %d %q entries for the job, want one a round: %v", s.GetSite(), phases[p], p, phases)
			}
		}
	}
}

// TestSecureAggregationFailsBelowTheThreshold: with threshold 3 of 3, a
// site that dies after sharing leaves too few to unmask; the round fails
// saying so, instead of hanging or returning a partial sum.
func TestSecureAggregationFailsBelowTheThreshold(t *testing.T) {
	hit := make(chan string, 1)
	n, _ := startNet(t, sim.Options{SiteOptions: hangWhen(maskingAt("us/boston", 2), hit)})
	j := demoSpec()
	j.Rounds = 3
	j.Privacy.SecureAggregation = spec.SecureAggregation{On: true, Threshold: new(3)}
	done := make(chan *federav1.Job, 1)
	go func() { done <- runJob(t, n, j) }()
	n.StopSite(waitHit(t, hit, "masking at round 2")) // dies holding its shares, its masked input unsent
	job := <-done
	// The quorum is out of reach as soon as us/boston is gone: the round
	// fails then, without waiting for the others.
	for _, want := range []string{"round 2: secure aggregation, masked inputs: ", "the secure round's quorum (threshold 3, min_sites 2) is 3", "us/boston: disconnected"} {
		if job.GetStatus() != federav1.JobStatus_JOB_STATUS_FAILED || !strings.Contains(job.GetMessage(), want) {
			t.Fatalf("job %s: %q; want it failed with %q", job.GetStatus(), job.GetMessage(), want)
		}
	}
	if job.GetRoundsCompleted() != 1 {
		t.Fatalf("rounds completed %d, want round 1 kept", job.GetRoundsCompleted())
	}
}

// TestSecAggPlusOverTheWire: five sites, each pairing with two neighbours
// only (SecAgg+), one of them dropping after it shared: the round is
// unmasked from its neighbourhood's shares and the job reaches the demo's
// quality.
func TestSecAggPlusOverTheWire(t *testing.T) {
	specs := dealSites(t, 5)
	hit := make(chan string, 1)
	n, _ := startNet(t, sim.Options{Sites: specs, SiteOptions: hangWhen(maskingAt("eu/site-3", 2), hit)})
	j := demoSpec()
	j.Rounds, j.MinSites, j.Sites = 4, 3, nil
	for _, s := range specs {
		j.Sites = append(j.Sites, s.Name)
	}
	j.Privacy.SecureAggregation = spec.SecureAggregation{On: true, Neighbors: new(2)}
	done := make(chan *federav1.Job, 1)
	go func() { done <- runJob(t, n, j) }()
	n.StopSite(waitHit(t, hit, "masking at round 2")) // dies holding its shares, its masked input unsent
	job := <-done
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job %s: %s", job.GetStatus(), job.GetMessage())
	}
	r2 := job.GetRounds()[1].GetSecagg()
	if r2.GetNeighbors() != 2 || r2.GetThreshold() != 2 || len(r2.GetMasked()) != 4 || !slices.Equal(r2.GetReconstructed(), []string{"eu/site-3"}) {
		t.Fatalf("round 2's record %v: want 2 neighbours, threshold 2 of a neighbourhood, 4 masked and eu/site-3 reconstructed", r2)
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	downloadModel(t, n, job.GetId(), path)
	if acc := accuracyOf(t, path, filepath.Join(shipped, "test.csv")); acc < 0.93 {
		t.Fatalf("test accuracy %.4f", acc)
	}
}
