package site

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/spec"
)

// FuzzTask is a hostile coordinator: it sends the site arbitrary tasks
// (any kind, spec, features, query, secure-aggregation phase) with
// arbitrary weights, and the site runs them as it runs every task —
// admission, compute, egress check. Nothing may panic. A task the site's
// policy does not admit releases nothing; a training release is an update
// of the weights' shape with finite values; whatever the egress check
// refuses leaves as one error result and nothing else.
func FuzzTask(f *testing.F) {
	dir := f.TempDir()
	devIdentity(f, filepath.Join(dir, "id"))
	id, err := attest.LoadIdentity(filepath.Join(dir, "id"))
	if err != nil {
		f.Fatal(err)
	}
	data, err := filepath.Abs("../testdata/breast-cancer/eu-paris.csv")
	if err != nil {
		f.Fatal(err)
	}
	a, err := New(Config{Identity: id, CoordinatorAddr: "127.0.0.1:1", CoordinatorID: spiffeid.RequireFromString("spiffe://example.org/coordinator"),
		CoordinatorJurisdiction: "eu", StateDir: filepath.Join(dir, "state"),
		Datasets: []Dataset{{Name: "breast-cancer", Path: data}}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close() })
	header, err := dataset.ReadHeader(data)
	if err != nil {
		f.Fatal(err)
	}
	features := slicesWithout(header, "label")
	j := &spec.Job{Name: "fuzz", Dataset: "breast-cancer", Label: "label", Model: spec.Model{Type: "logreg"},
		Rounds: 2, LocalEpochs: 1, BatchSize: 16, LearningRate: 0.1, MinSites: 1, RoundTimeout: spec.Duration(20 * time.Second), Seed: 1}
	j.ApplyDefaults()
	sp := j.Proto()
	task := func(kind federav1.TaskKind) *federav1.Task {
		return &federav1.Task{TaskId: "job-1/r1/x/eu/paris/00", JobId: "job-1", Round: 1, Kind: kind, Spec: sp,
			Requester: "spiffe://example.org/user/alice", RequesterRole: "data-scientist"}
	}
	w := models.NewLogReg(len(features), 2)
	wb, err := models.EncodeWeights(w)
	if err != nil {
		f.Fatal(err)
	}
	mustMarshal := func(t *federav1.Task) []byte {
		b, err := proto.Marshal(t)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	for _, k := range []federav1.TaskKind{federav1.TaskKind_TASK_KIND_ADMIT, federav1.TaskKind_TASK_KIND_STATS, federav1.TaskKind_TASK_KIND_QUERY} {
		f.Add(mustMarshal(task(k)), []byte(nil))
	}
	train := task(federav1.TaskKind_TASK_KIND_TRAIN)
	train.Features, train.Classes = features, []string{"benign", "malignant"}
	train.ScalerMean, train.ScalerScale = make([]float64, len(features)), make([]float64, len(features))
	for i := range train.ScalerScale {
		train.ScalerScale[i] = 1
	}
	f.Add(mustMarshal(train), wb)
	eval := proto.Clone(train).(*federav1.Task)
	eval.Kind = federav1.TaskKind_TASK_KIND_EVAL
	f.Add(mustMarshal(eval), wb)
	other := proto.Clone(train).(*federav1.Task)
	other.Spec.Dataset = "not-here"
	f.Add(mustMarshal(other), wb)

	// The honest training task trains: the checks below are not vacuous.
	if r := a.execute(context.Background(), train, w, nil); r.res.GetError() != "" || r.weights == nil {
		f.Fatalf("the honest training task: %q, weights %v", r.res.GetError(), r.weights != nil)
	}
	f.Fuzz(func(t *testing.T, tb, wbytes []byte) {
		tk := &federav1.Task{}
		if proto.Unmarshal(tb, tk) != nil {
			return
		}
		// Bound the work a task may ask for, so the fuzzer explores
		// shapes rather than waits on long training.
		if sp := tk.GetSpec(); sp != nil && (sp.GetLocalEpochs() > 2 || sp.GetRounds() > 100) {
			return
		}
		var w models.Weights
		if len(wbytes) > 0 {
			var err error
			if w, err = models.DecodeWeights(wbytes); err != nil {
				return // the stream's assembler refuses what does not decode
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		r := a.execute(ctx, tk, w, nil)
		if r == nil || r.res == nil {
			t.Fatal("no release")
		}
		admitted := r.admitted.answer.GetOutcome() == federav1.Admission_OUTCOME_ALLOW
		if !admitted && (r.kind != "" || r.weights != nil || r.ring != nil) {
			t.Fatalf("a task not admitted (%v) releases %q", r.admitted.answer.GetOutcome(), r.kind)
		}
		if r.res.GetError() == "" && r.weights != nil && tk.GetKind() == federav1.TaskKind_TASK_KIND_TRAIN {
			if err := r.weights.Validate(w); err != nil {
				t.Fatalf("the update does not fit the weights the task was sent: %v", err)
			}
		}
		msgs, allowed := a.checkEgress(ctx, tk, r, r.messages())
		if !allowed {
			if len(msgs) != 1 || msgs[0].GetResult().GetError() == "" || msgs[0].GetResult().GetWeightsFollow() {
				t.Fatalf("a refused release sends %d messages, not one error", len(msgs))
			}
		}
	})
}

func slicesWithout(s []string, drop string) []string {
	var out []string
	for _, x := range s {
		if x != drop {
			out = append(out, x)
		}
	}
	return out
}
