package sim_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/site"
	"github.com/federa-dev/federa/spec"
)

// TestLargeModelTravelsInChunks trains a model of 1.1M parameters (4.4 MB
// of weights, beyond gRPC's 4 MiB message limit) end to end: every message
// on the wire stays small, whatever the model size.
func TestLargeModelTravelsInChunks(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a 5 MB model; skipped with -short")
	}
	const features, classes, rows = 5000, 220, 110
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var sites []sim.SiteSpec
	for si, name := range []string{"eu-paris", "us-boston"} {
		var b strings.Builder
		for f := 0; f < features; f++ {
			fmt.Fprintf(&b, "f%d,", f)
		}
		b.WriteString("label\n")
		for r := 0; r < rows; r++ {
			for f := 0; f < features; f++ {
				fmt.Fprintf(&b, "%.3f,", rng.NormFloat64())
			}
			// Every class appears somewhere, so the model has all of them.
			fmt.Fprintf(&b, "c%03d\n", (2*r+si)%classes)
		}
		p := filepath.Join(dir, name+".csv")
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		sites = append(sites, sim.SiteSpec{Name: strings.Replace(name, "-", "/", 1), Dataset: "wide", Path: p})
	}
	// 220 classes of one or two rows each: a site policy that lets such a
	// label leave (the default caps classes at 20 of 10 rows or more).
	pol := copyDefaultPolicy(t)
	setPolicyLimits(t, pol, map[string]any{"max_classes": classes, "min_records": 0})
	tap := &wireTap{}
	n, _ := startNet(t, sim.Options{Sites: sites, Coordinator: withTap(tap), PolicyDir: pol})
	j := demoSpec()
	j.Dataset, j.Sites, j.Rounds, j.LocalEpochs, j.MinSites = "wide", []string{"eu/paris", "us/boston"}, 2, 1, 2
	j.RoundTimeout = spec.Duration(5 * time.Minute) // the race detector slows training tenfold
	job := runJob(t, n, j)
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job %s: %s", job.GetStatus(), job.GetMessage())
	}
	if job.GetModelBytes() < 4<<20 {
		t.Fatalf("model is only %d bytes; the test needs one above 4 MiB", job.GetModelBytes())
	}
	biggest, total := 0, 0
	for _, m := range tap.all() {
		biggest = max(biggest, len(m))
		total += len(m)
	}
	t.Logf("model %d bytes; %d bytes received in messages of at most %d bytes", job.GetModelBytes(), total, biggest)
	if biggest > federav1.MaxChunkBytes+64<<10 {
		t.Fatalf("a message of %d bytes crossed the wire", biggest)
	}
	if total < 2*2*4*features*classes {
		t.Fatalf("only %d bytes received; the updates did not travel", total)
	}
}

// TestMalformedSiteMessages: a listed site that breaks the protocol has its
// stream closed with a reason; the coordinator carries on.
func TestMalformedSiteMessages(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	n.StopSite("us/boston")
	id := identityFor(t, n.CA, "spiffe://federa.demo/site/us/boston")
	hello := &federav1.SiteMessage{Body: &federav1.SiteMessage_Hello{Hello: &federav1.Hello{Datasets: []string{"breast-cancer"}}}}
	tests := []struct {
		name string
		msgs []*federav1.SiteMessage
		want string
	}{
		{"hello twice", []*federav1.SiteMessage{hello, hello}, "hello sent twice"},
		{"empty message", []*federav1.SiteMessage{hello, {}}, "empty or unknown site message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := dialAs(t, n, id)
			ctx, cancel := context.WithTimeout(context.Background(), hangBound)
			defer cancel()
			stream, err := federav1.NewSiteServiceClient(cc).Connect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tt.msgs {
				if err := stream.Send(proto.Clone(m).(*federav1.SiteMessage)); err != nil {
					break
				}
			}
			for {
				_, err = stream.Recv()
				if err != nil {
					break
				}
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v", err)
			}
		})
	}
	// Unanswerable chunks and answers to tasks nobody sent are ignored, and
	// the real sites still train.
	cc := dialAs(t, n, id)
	stream, err := federav1.NewSiteServiceClient(cc).Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(hello)
	_ = stream.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Result{Result: &federav1.TaskResult{TaskId: "job-x/r1/train/eu/paris/00"}}})
	_ = stream.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Chunk{Chunk: &federav1.TensorChunk{TransferId: "nobody", Name: "w", Shape: []int64{1 << 40}}}})
	_ = stream.CloseSend()
	j := demoSpec()
	j.Sites, j.Rounds = []string{"eu/paris", "sg/singapore"}, 2
	if job := runJob(t, n, j); job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("after a misbehaving site: %s %s", job.GetStatus(), job.GetMessage())
	}
}

// TestCancelRunningJob: a cancelled job stops, says who cancelled it, and
// keeps its state; the sites are free for the next job.
func TestCancelRunningJob(t *testing.T) {
	hit := make(chan string, 1)
	n, logs := startNet(t, sim.Options{SiteOptions: func(name string) []site.Option {
		if name == "eu/paris" {
			return hangAt(federav1.TaskKind_TASK_KIND_TRAIN, 2, hit)(name)
		}
		return nil
	}})
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	j := demoSpec()
	j.Rounds = 3
	// Far beyond every wait below: only the cancel, never the round's
	// deadline, can end the task eu/paris hangs in.
	j.RoundTimeout = spec.Duration(10 * hangBound)
	job, err := c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-hit:
	case <-time.After(hangBound):
		t.Fatal("eu/paris never got its round 2 training task")
	}
	got, err := c.CancelJob(context.Background(), &federav1.CancelJobRequest{Id: job.GetId(), Reason: "wrong dataset"})
	if err != nil || got.GetStatus() != federav1.JobStatus_JOB_STATUS_CANCELLED || got.GetMessage() != "wrong dataset" {
		t.Fatalf("cancel: %v %v", got, err)
	}
	if _, err := c.CancelJob(context.Background(), &federav1.CancelJobRequest{Id: job.GetId()}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("second cancel: %v", err)
	}
	stream, _ := c.GetModel(context.Background(), &federav1.GetModelRequest{JobId: job.GetId()})
	if _, err := stream.Recv(); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("model of a cancelled job: %v", err)
	}
	// The job stops: its runner calls off the task eu/paris hangs in.
	waitLogLine(t, logs, "spiffe_id=spiffe://federa.demo/site/eu/paris ", `msg="task cancelled"`, "job="+job.GetId()+" ")
	final := waitFinal(t, c, job.GetId())
	next := demoSpec()
	next.Rounds = 1
	if r := runJob(t, n, next); r.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("next job after a cancel: %s", r.GetMessage())
	}
	// Stopping the coordinator waits for every job runner to return, the
	// cancelled job's too: whatever it was still going to write is stored
	// by then, and a restart reads what is stored.
	c2 := restartCoordinator(t, n)
	again, err := c2.GetJob(context.Background(), &federav1.GetJobRequest{Id: job.GetId()})
	if err != nil || again.GetStatus() != federav1.JobStatus_JOB_STATUS_CANCELLED || again.GetMessage() != "wrong dataset" || final.GetRoundsCompleted() != again.GetRoundsCompleted() {
		t.Fatalf("cancelled job changed afterwards: %s %q, %d rounds (%v)", again.GetStatus(), again.GetMessage(), again.GetRoundsCompleted(), err)
	}
}
