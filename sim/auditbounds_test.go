package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/cli"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

// auditEntries reads the coordinator's audit log as the auditor does.
func auditEntries(t *testing.T, n *sim.Net) []map[string]any {
	t.Helper()
	var out, errb bytes.Buffer
	if code := cli.Execute(context.Background(), []string{"audit", "export", "--coordinator", n.Addr(), "--identity", n.IdentityDir("auditor")}, &out, &errb); code != 0 {
		t.Fatalf("audit export: %s", errb.String())
	}
	var entries []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var l struct{ Entry map[string]any }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, l.Entry)
	}
	return entries
}

// spareStream opens a site stream as eu/spare (listed, no agent runs it)
// serving breast-cancer, and returns it after the welcome.
func spareStream(t *testing.T, n *sim.Net) federav1.SiteService_ConnectClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	t.Cleanup(cancel)
	s, err := federav1.NewSiteServiceClient(dialAs(t, n, identityFor(t, n.CA, spareSite))).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Hello{Hello: &federav1.Hello{Site: "eu/spare", Datasets: []string{"breast-cancer"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatalf("welcome: %v", err)
	}
	return s
}

// closedWith sends m and reads until the coordinator ends the stream.
func closedWith(s federav1.SiteService_ConnectClient, m *federav1.DecisionRecord) error {
	_ = s.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Decision{Decision: m}})
	for {
		if _, err := s.Recv(); err != nil {
			return err
		}
	}
}

// TestSitesReportOnlyOnTheirOwnTasks: a site's decision records reach the
// audit log and the job record only for tasks the coordinator gave that
// site, once each, within the bounds of an entry. The pen-test's forged
// records (another site's task, a made-up task, 500 KB reasons, a second
// decision for one task) each end the sender's stream with InvalidArgument
// naming the field, and leave nothing behind: the job still succeeds and
// is readable, and the log holds only the honest decision.
func TestSitesReportOnlyOnTheirOwnTasks(t *testing.T) {
	n, _ := accessNet(t, sim.Options{})
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()

	// eu/spare gets a task of its own: the submit-time dry run of a job
	// that names it.
	s := spareStream(t, n)
	j := demoSpec()
	j.Rounds, j.Sites, j.MinSites = 1, []string{"eu/spare"}, 1
	submitted := make(chan error, 1)
	var spareJob *federav1.Job
	go func() {
		var err error
		spareJob, err = c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
		submitted <- err
	}()
	m, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	task := m.GetTask()
	if task == nil || !task.GetDryRun() {
		t.Fatalf("eu/spare expected its dry-run admission task, got %v", m)
	}
	own := &federav1.DecisionRecord{Seq: 1, Kind: "admission-dry-run", JobId: task.GetJobId(), TaskId: task.GetTaskId(), InputDigest: "sha256:1", Allow: true}
	for range 2 { // the second is a resend: ignored, not an error
		if err := s.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Decision{Decision: own}}); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Result{Result: &federav1.TaskResult{TaskId: task.GetTaskId(), JobId: task.GetJobId(),
		Kind: task.GetKind(), Admission: &federav1.Admission{Outcome: federav1.Admission_OUTCOME_DENY, Reasons: []string{"test site"}}}}})
	if err := <-submitted; status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("submit refused by eu/spare's dry run: %v (%v)", err, spareJob)
	}
	second := &federav1.DecisionRecord{Seq: 2, Kind: "admission-dry-run", JobId: task.GetJobId(), TaskId: task.GetTaskId(), InputDigest: "sha256:2", Allow: true}
	if err := closedWith(s, second); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "a second admission-dry-run decision for task") {
		t.Fatalf("a second decision for one task: %v", err)
	}

	// A running job of the three demo sites, whose tasks eu/spare never got.
	j = demoSpec()
	j.Rounds = 1
	job := runJob(t, n, j)
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job: %s", job.GetMessage())
	}
	var parisTask string
	for _, d := range jobDecisions(t, n, job.GetId()) {
		if d.GetSite() == "eu/paris" {
			parisTask = d.GetRecord().GetTaskId()
		}
	}
	if parisTask == "" {
		t.Fatal("the job record holds no decision of eu/paris")
	}
	huge := strings.Repeat("x", 500<<10)
	for _, tt := range []struct {
		name string
		r    *federav1.DecisionRecord
		want string
	}{
		{"another site's task", &federav1.DecisionRecord{Seq: 3, Kind: "egress", JobId: job.GetId(), TaskId: parisTask}, "is not a task this coordinator gave site eu/spare"},
		{"a made-up task", &federav1.DecisionRecord{Seq: 3, Kind: "egress", JobId: job.GetId(), TaskId: job.GetId() + "/r1/train/eu/spare/00000000.0123456789abcdef0123456789abcdef"}, "is not a task this coordinator gave site eu/spare"},
		{"a task of another job", &federav1.DecisionRecord{Seq: 3, Kind: "admission-dry-run", JobId: job.GetId(), TaskId: own.GetTaskId()}, "field job_id"},
		{"500 KB reasons", &federav1.DecisionRecord{Seq: 3, Kind: "egress", JobId: job.GetId(), TaskId: parisTask, Reasons: []string{huge, huge}}, "field reasons[0]: 512000 bytes; at most 4096"},
		{"10k reasons", &federav1.DecisionRecord{Seq: 3, Kind: "egress", JobId: job.GetId(), TaskId: parisTask, Reasons: make([]string, 10000)}, "field reasons: 10000 reasons; at most 64"},
		{"no number", &federav1.DecisionRecord{Kind: "admission-dry-run", JobId: own.GetJobId(), TaskId: own.GetTaskId()}, "field seq: required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := closedWith(spareStream(t, n), tt.r)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want InvalidArgument with %q", err, tt.want)
			}
		})
	}
	// Nothing of it stuck: the job and the list read fine, eu/spare's only
	// entry in the log is its one honest decision.
	if _, err := c.GetJob(context.Background(), &federav1.GetJobRequest{Id: job.GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListJobs(context.Background(), &federav1.ListJobsRequest{}); err != nil {
		t.Fatal(err)
	}
	var spare []map[string]any
	for _, e := range auditEntries(t, n) {
		if e["site"] == "eu/spare" {
			spare = append(spare, e)
		}
	}
	if len(spare) != 1 || spare[0]["data"].(map[string]any)["task"] != own.GetTaskId() {
		t.Fatalf("eu/spare's entries in the audit log: %v", spare)
	}
}

// TestOversizedFieldsAreRefusedWhereTheyEnter: every human-written field
// that reaches the audit log is bounded at the RPC that brings it, so a
// 1 MB job name, cancel reason or approval reason is InvalidArgument
// naming the field and the limit, and nothing is half-done: the job is not
// stored, not cancelled, not decided, and the log verifies and keeps
// growing with the next job.
func TestOversizedFieldsAreRefusedWhereTheyEnter(t *testing.T) {
	n, _ := accessNet(t, sim.Options{PolicyDir: approvalPolicy(t)})
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	ctx := context.Background()
	mb := strings.Repeat("x", 1<<20)
	j := demoSpec()
	j.Name = mb
	_, err = c.SubmitJob(ctx, &federav1.SubmitJobRequest{Spec: j.Proto()})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "field name: 1048576 bytes; at most 200") {
		t.Fatalf("a 1 MB job name: %v", err)
	}

	j = demoSpec()
	j.Rounds = 1
	held, err := c.SubmitJob(ctx, &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job held for approval", func() bool {
		got, err := c.GetJob(ctx, &federav1.GetJobRequest{Id: held.GetId()})
		return err == nil && strings.Contains(got.GetMessage(), "waiting for approval")
	})
	admin := federav1.NewApprovalServiceClient(dialAs(t, n, identityFor(t, n.CA, parisAdmin)))
	_, err = admin.Decide(ctx, &federav1.DecideRequest{Site: "eu/paris", JobId: held.GetId(), Approve: true, Reason: mb})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "field reason: 1048576 bytes; at most 4096") {
		t.Fatalf("a 1 MB approval reason: %v", err)
	}
	_, err = c.CancelJob(ctx, &federav1.CancelJobRequest{Id: held.GetId(), Reason: mb})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "field reason: 1048576 bytes; at most 4096") {
		t.Fatalf("a 1 MB cancel reason: %v", err)
	}
	got, err := c.GetJob(ctx, &federav1.GetJobRequest{Id: held.GetId()})
	if err != nil || got.GetStatus() != federav1.JobStatus_JOB_STATUS_RUNNING {
		t.Fatalf("after refused decide and cancel the job is %v (%v); want it still running, held", got.GetStatus(), err)
	}
	if _, err := c.CancelJob(ctx, &federav1.CancelJobRequest{Id: held.GetId(), Reason: "done testing"}); err != nil {
		t.Fatal(err)
	}
	ended := false
	for _, e := range auditEntries(t, n) {
		if b, _ := json.Marshal(e); len(b) > 64<<10 {
			t.Errorf("an entry of %d bytes reached the log: %.200s", len(b), b)
		}
		ended = ended || e["type"] == "job_end" && e["job"] == held.GetId() && strings.Contains(string(mustJSON(t, e)), "done testing")
	}
	if !ended {
		t.Fatal("the cancel that followed the refusals is not in the log")
	}
	var out, errb bytes.Buffer
	if code := cli.Execute(ctx, []string{"audit", "verify", "--coordinator", n.Addr(), "--identity", n.IdentityDir("auditor")}, &out, &errb); code != 0 {
		t.Fatalf("audit verify: %s %s", out.String(), errb.String())
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSiteTensorsAreBoundedByTheirTask: a site may send back no more
// values than the weights its task was sent, and none for a task sent
// without weights. The pen-test's site that claimed a 1 GiB tensor and
// never finished it is refused at its first chunk, before anything is
// allocated, and the coordinator says why.
func TestSiteTensorsAreBoundedByTheirTask(t *testing.T) {
	n, _ := accessNet(t, sim.Options{})
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	huge := func(id string) *federav1.SiteMessage {
		return &federav1.SiteMessage{Body: &federav1.SiteMessage_Chunk{Chunk: &federav1.TensorChunk{
			TransferId: id, Name: "weight", Shape: []int64{1 << 14, 1 << 14}, Data: make([]byte, 4096)}}}
	}
	for _, tt := range []struct {
		name   string
		attack federav1.TaskKind // the task whose answer claims the huge tensor
		want   string
	}{
		{"a task sent no weights", federav1.TaskKind_TASK_KIND_STATS, "announced weights for a task that was sent none"},
		{"a training update", federav1.TaskKind_TASK_KIND_TRAIN, "sent malformed weights: tensor transfer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := spareStream(t, n)
			var sendMu sync.Mutex
			send := func(m *federav1.SiteMessage) error {
				sendMu.Lock()
				defer sendMu.Unlock()
				return s.Send(m)
			}
			beat, stop := time.NewTicker(200*time.Millisecond), make(chan struct{})
			var beating sync.WaitGroup
			beating.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-beat.C:
						if send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Heartbeat{Heartbeat: &federav1.Heartbeat{}}}) != nil {
							return
						}
					}
				}
			})
			defer func() {
				beat.Stop()
				close(stop)
				beating.Wait()
			}()
			j := demoSpec()
			j.Rounds, j.Sites, j.MinSites, j.Features = 1, []string{"eu/spare"}, 1, []string{"a", "b"}
			submitted := make(chan *federav1.Job, 1)
			go func() {
				job, err := c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
				if err != nil {
					t.Error(err)
				}
				submitted <- job
			}()
			for {
				m, err := s.Recv()
				if err != nil {
					t.Fatalf("eu/spare's stream: %v", err)
				}
				task := m.GetTask()
				if task == nil {
					continue // weights chunks, audit syncs
				}
				res := &federav1.TaskResult{TaskId: task.GetTaskId(), JobId: task.GetJobId(), Kind: task.GetKind(), Round: task.GetRound()}
				msgs := []*federav1.SiteMessage{{Body: &federav1.SiteMessage_Result{Result: res}}}
				switch {
				case task.GetKind() == tt.attack:
					// A plausible header, so what is refused is the tensor.
					res.WeightsFollow, res.Examples = true, 20
					msgs = append(msgs, huge(task.GetTaskId()))
				case task.GetKind() == federav1.TaskKind_TASK_KIND_ADMIT:
					res.Admission = &federav1.Admission{Outcome: federav1.Admission_OUTCOME_ALLOW}
				case task.GetKind() == federav1.TaskKind_TASK_KIND_STATS:
					res.Features, res.Classes = []string{"a", "b"}, []string{"x", "y"}
					res.Count, res.Sum, res.SumSq = 20, []float64{1, 2}, []float64{30, 40}
					res.TrainRows = 20
				default:
					t.Fatalf("unexpected %v task", task.GetKind())
				}
				for _, m := range msgs {
					if err := send(m); err != nil {
						t.Fatal(err)
					}
				}
				if task.GetKind() == tt.attack {
					break
				}
			}
			job := <-submitted
			if job == nil {
				t.FailNow()
			}
			final := waitFinal(t, c, job.GetId())
			if final.GetStatus() != federav1.JobStatus_JOB_STATUS_FAILED || !strings.Contains(final.GetMessage(), tt.want) {
				t.Fatalf("job %s: %q; want failed with %q", final.GetStatus(), final.GetMessage(), tt.want)
			}
		})
	}
}
