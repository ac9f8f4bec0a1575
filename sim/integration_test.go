package sim_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/federa-dev/federa/coordinator"
	"github.com/federa-dev/federa/dataset"
	"github.com/federa-dev/federa/models"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/site"
	"github.com/federa-dev/federa/spec"
)

// downloadModel fetches a job's model over the JobService and writes it.
func downloadModel(t *testing.T, n *sim.Net, id, path string) {
	t.Helper()
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	stream, err := c.GetModel(context.Background(), &federav1.GetModelRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for {
		ch, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("download model: %v", err)
		}
		buf.Write(ch.GetData())
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// accuracyOf scores a model file on a CSV using only the file.
func accuracyOf(t *testing.T, modelPath, csv string) float64 {
	t.Helper()
	m, err := models.LoadModel(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := dataset.LoadCSV(csv, dataset.Options{Label: m.Label, Features: m.Features})
	if err != nil {
		t.Fatal(err)
	}
	y, err := tab.ClassIndex(m.Classes)
	if err != nil {
		t.Fatal(err)
	}
	pred, err := m.Predict(tab.X)
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for i := range y {
		if pred.Classes[i] == y[i] {
			ok++
		}
	}
	return float64(ok) / float64(len(y))
}

// TestFederatedTrainingReachesCentralQuality is the core promise: three
// sites over real mTLS train a model whose exported file scores ≥ 0.94 on
// rows no site had — and no site row ever reaches the coordinator.
func TestFederatedTrainingReachesCentralQuality(t *testing.T) {
	tap := &wireTap{}
	n, logs := startNet(t, sim.Options{Coordinator: withTap(tap)})
	job := runJob(t, n, demoSpec())
	// The operator's log says the job ended well and which model left.
	waitLogLine(t, logs, `msg="job succeeded; model released"`, "job="+job.GetId(), "model_sha256="+job.GetModelSha256())
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job %s: %s", job.GetStatus(), job.GetMessage())
	}
	if job.GetRoundsCompleted() != 10 || len(job.GetRounds()) != 10 {
		t.Fatalf("rounds completed %d, summaries %d, want 10", job.GetRoundsCompleted(), len(job.GetRounds()))
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	downloadModel(t, n, job.GetId(), path)
	acc := accuracyOf(t, path, filepath.Join(shipped, "test.csv"))
	t.Logf("test accuracy of the exported model: %.4f", acc)
	if acc < 0.94 {
		t.Fatalf("test accuracy %.4f < 0.94", acc)
	}
	for _, s := range job.GetSites() {
		if s.GetRawBytes() == 0 || s.GetBytesSent() == 0 || s.GetRoundsParticipated() != 10 {
			t.Errorf("site summary %v: want raw bytes, bytes sent and 10 rounds", s)
		}
	}

	t.Run("no row on the wire", func(t *testing.T) {
		msgs := tap.all()
		if len(msgs) < 30 {
			t.Fatalf("tap saw only %d messages; it is not watching the wire", len(msgs))
		}
		var wire bytes.Buffer
		for _, m := range msgs {
			wire.Write(m)
			wire.WriteByte(0)
		}
		all := wire.Bytes()
		for _, s := range shippedSites {
			rows, err := dataset.RawRows(s.Path)
			if err != nil {
				t.Fatal(err)
			}
			for i, row := range rows {
				cells := strings.Split(row, ",")
				// The row as text, and its first three values as packed
				// float64 and float32: the forms a leak would take.
				needles := map[string][]byte{"text": []byte(row), "first cells": []byte(strings.Join(cells[:3], ","))}
				f64, f32 := make([]byte, 0, 24), make([]byte, 0, 12)
				for _, c := range cells[:3] {
					v, err := strconv.ParseFloat(c, 64)
					if err != nil {
						t.Fatal(err)
					}
					f64 = binary.LittleEndian.AppendUint64(f64, math.Float64bits(v))
					f32 = binary.LittleEndian.AppendUint32(f32, math.Float32bits(float32(v)))
				}
				needles["float64"], needles["float32"] = f64, f32
				for form, needle := range needles {
					if bytes.Contains(all, needle) {
						t.Fatalf("%s row %d (%s) reached the coordinator: %q", s.Name, i+1, form, row)
					}
				}
			}
		}
		// And in every form the coordinator could invert: standardized with
		// the job's own scaler, columns reordered, as numbers in any kind of
		// result (leak_test.go; TestNoRowGuardCatchesEveryForm plants each).
		features, scaler := jobScaler(t, tap.sentAll())
		files := map[string]string{}
		for _, s := range shippedSites {
			files[s.Name] = s.Path
		}
		typed, seen := tap.typedAll(), 0
		for _, m := range typed {
			seen += len(numbers(m.ProtoReflect()))
		}
		if seen < 10*31 {
			t.Fatalf("the guard read only %d numbers from %d messages: it is not reading the updates", seen, len(typed))
		}
		if l := findLeak(indexRows(t, files, features, scaler), typed); l != "" {
			t.Fatalf("a row reached the coordinator: %s", l)
		}
	})
}

// hangAt makes a site's task hang (until its context ends) the first time
// a task of kind and round arrives, and reports that on the channel.
func hangAt(kind federav1.TaskKind, round int32, hit chan<- string) func(string) []site.Option {
	return hangWhen(func(_ string, t *federav1.Task) bool { return t.GetKind() == kind && t.GetRound() == round }, hit)
}

// hangWhen makes the first task that match accepts, at whichever site gets
// it, hang until its context ends, and reports the site on hit.
func hangWhen(match func(site string, t *federav1.Task) bool, hit chan<- string) func(string) []site.Option {
	var once sync.Once
	return func(name string) []site.Option {
		return []site.Option{site.WithBeforeTask(func(ctx context.Context, t *federav1.Task) {
			if !match(name, t) {
				return
			}
			fire := false
			once.Do(func() { fire = true })
			if fire {
				hit <- name
				<-ctx.Done()
			}
		})}
	}
}

// waitHit waits for a hung task's site, failing the test if none hangs.
func waitHit(t *testing.T, hit <-chan string, what string) string {
	t.Helper()
	select {
	case name := <-hit:
		return name
	case <-time.After(hangBound):
		t.Fatalf("%s never happened", what)
		return ""
	}
}

// submit submits j as alice and returns the client (closed at the end of
// the test) and the job's id.
func submit(t *testing.T, n *sim.Net, j *spec.Job) (federav1.JobServiceClient, string) {
	t.Helper()
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeFn)
	job, err := c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		t.Fatal(err)
	}
	return c, job.GetId()
}

// TestSiteDiesMidRound: a site dies in the middle of round 3; the round
// closes on the survivors' quorum within 1 s (measured against the audit
// log's round entry), not at the round deadline, and the job completes.
func TestSiteDiesMidRound(t *testing.T) {
	hit := make(chan string, 1)
	var mu sync.Mutex
	hooks := map[string]func(string) []site.Option{"us/boston": hangAt(federav1.TaskKind_TASK_KIND_TRAIN, 3, hit)}
	n, _ := startNet(t, sim.Options{SiteOptions: func(name string) []site.Option {
		mu.Lock()
		defer mu.Unlock()
		if h := hooks[name]; h != nil {
			return h(name)
		}
		return nil
	}})
	j := demoSpec()
	j.Rounds = 5
	done := make(chan *federav1.Job, 1)
	go func() { done <- runJob(t, n, j) }()
	select {
	case name := <-hit:
		n.StopSite(name) // the process dies in the middle of round 3
	case <-time.After(hangBound):
		t.Fatal("site never reached round 3")
	}
	// The survivors answered before the hung site was stopped (their
	// training takes milliseconds): from here the round has its quorum and
	// nobody left to wait for.
	stopped := time.Now()
	job := <-done
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job %s: %s", job.GetStatus(), job.GetMessage())
	}
	r3 := job.GetRounds()[2]
	if len(r3.GetParticipants()) != 2 || strings.Join(r3.GetMissing(), ",") != "us/boston" {
		t.Fatalf("round 3 participants %v missing %v; want the two survivors", r3.GetParticipants(), r3.GetMissing())
	}
	if last := job.GetRounds()[4]; len(last.GetParticipants()) != 2 || strings.Join(last.GetMissing(), ",") != "us/boston" {
		t.Fatalf("round 5 participants %v missing %v; want us/boston missing though it was not even connected", last.GetParticipants(), last.GetMissing())
	}
	// The audit log says the same: every round entry lists its missing
	// sites, an empty list (not null) when none was.
	var missing []string
	for _, e := range auditEntries(t, n) {
		if e["type"] != "round" || e["job"] != job.GetId() {
			continue
		}
		d := e["data"].(map[string]any)
		if d["round"] == float64(3) {
			// Not stalled: round 3 closes as soon as the dead site's stream
			// ends, not at its 20 s round_timeout.
			at, err := time.Parse(time.RFC3339Nano, e["time"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if lag := at.Sub(stopped); lag > time.Second {
				t.Fatalf("round 3 closed %s after the site died with the quorum already in; want within 1s", lag)
			}
		}
		m, ok := d["missing"].([]any)
		if !ok {
			t.Fatalf("round %v entry: missing is %v, want a list", d["round"], d["missing"])
		}
		missing = append(missing, fmt.Sprint(m))
	}
	if strings.Join(missing, " ") != "[] [] [us/boston] [us/boston] [us/boston]" {
		t.Fatalf("round entries' missing sites: %v", missing)
	}
}

// TestQuorumLostFailsJob: when too few sites remain the job fails with a
// reason naming the missing sites, instead of hanging.
func TestQuorumLostFailsJob(t *testing.T) {
	n, logs := startNet(t, sim.Options{Coordinator: func(c *coordinator.Config) { c.SiteWaitTimeout = 2 * time.Second }})
	for _, s := range []string{"us/boston", "sg/singapore"} {
		n.StopSite(s)
		// The site's end is gone; the coordinator must have seen its stream
		// end too, or the job would find it still connected.
		waitLogLine(t, logs, `msg="site disconnected"`, "site="+s+" ")
	}
	j := demoSpec()
	j.Sites = nil // any connected site; min_sites 2 cannot be met
	job := runJob(t, n, j)
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_FAILED {
		t.Fatalf("job %s, want failed", job.GetStatus())
	}
	if !strings.Contains(job.GetMessage(), "1 connected, 2 needed") {
		t.Fatalf("message %q does not explain the missing quorum", job.GetMessage())
	}
}

// TestCoordinatorCrashResumes stops the coordinator abruptly in the middle
// of round 4 and starts a new one on the same state: the job resumes at
// round 4, keeps rounds 1–3 as they were, and completes.
func TestCoordinatorCrashResumes(t *testing.T) {
	hit := make(chan string, 1)
	n, _ := startNet(t, sim.Options{SiteOptions: hangAt(federav1.TaskKind_TASK_KIND_TRAIN, 4, hit)})
	j := demoSpec()
	j.Rounds = 6
	c, id := submit(t, n, j)
	waitHit(t, hit, "round 4")
	before, err := c.GetJob(context.Background(), &federav1.GetJobRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	c2 := restartCoordinator(t, n)
	final := waitFinal(t, c2, id)
	if final.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("resumed job %s: %s", final.GetStatus(), final.GetMessage())
	}
	if before.GetRoundsCompleted() != 3 {
		t.Fatalf("before the crash %d rounds were complete, want 3", before.GetRoundsCompleted())
	}
	if len(final.GetRounds()) != 6 {
		t.Fatalf("%d round summaries after resume, want 6 (no round lost or repeated)", len(final.GetRounds()))
	}
	for i, r := range final.GetRounds() {
		if int(r.GetRound()) != i+1 {
			t.Fatalf("summary %d is round %d", i, r.GetRound())
		}
		if i < 3 && r.GetDurationMs() != before.GetRounds()[i].GetDurationMs() {
			t.Fatalf("round %d was redone after the restart", i+1)
		}
	}
	list, err := c2.ListJobs(context.Background(), &federav1.ListJobsRequest{})
	if err != nil || len(list.GetJobs()) != 1 {
		t.Fatalf("job history after restart: %v, %v", list, err)
	}
}

// TestRedoneRoundSaysWhichEntryItReplaces: the coordinator stops while
// round 2's sites evaluate — the round is in the audit log, its checkpoint
// is not — and a new one redoes round 2. The log holds both attempts, and
// the second names the first and why, so an auditor does not read two
// round 2s.
func TestRedoneRoundSaysWhichEntryItReplaces(t *testing.T) {
	hit := make(chan string, 1)
	n, _ := startNet(t, sim.Options{SiteOptions: hangAt(federav1.TaskKind_TASK_KIND_EVAL, 2, hit)})
	j := demoSpec()
	j.Rounds = 3
	_, id := submit(t, n, j)
	waitHit(t, hit, "round 2's evaluation")
	// The round's entry is appended while the sites evaluate, and
	// exported only once the round's checkpoint is signed: wait for it in
	// the log's file itself.
	entries := filepath.Join(n.CoordinatorDir(), coordinator.AuditDir, "entries.log")
	waitFor(t, "round 2's entry in the audit log", func() bool {
		b, _ := os.ReadFile(entries)
		return bytes.Contains(b, []byte(`"job":"`+id+`"`)) && bytes.Contains(b, []byte(`"round":2,`))
	})
	c2 := restartCoordinator(t, n)
	if final := waitFinal(t, c2, id); final.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job %s: %s", final.GetStatus(), final.GetMessage())
	}
	var attempts []string
	first := -1
	for i, e := range auditEntries(t, n) {
		if e["type"] != "round" || e["job"] != id {
			continue
		}
		d := e["data"].(map[string]any)
		if fmt.Sprint(d["round"]) == "2" {
			if first < 0 {
				first = i
			}
			attempts = append(attempts, fmt.Sprintf("redo_of=%v reason=%v", d["redo_of"], d["redo_reason"] != nil))
		}
	}
	want := []string{"redo_of=<nil> reason=false", fmt.Sprintf("redo_of=%d reason=true", first)}
	if strings.Join(attempts, "; ") != strings.Join(want, "; ") {
		t.Fatalf("round 2's entries: %v; want %v", attempts, want)
	}
}
