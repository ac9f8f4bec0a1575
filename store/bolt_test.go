package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

func open(t *testing.T, dir string) *Bolt {
	t.Helper()
	b, err := OpenBolt(dir)
	if err != nil {
		t.Fatalf("OpenBolt(%s): %v", dir, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func job(id string, created int64, status federav1.JobStatus) *federav1.Job {
	return &federav1.Job{
		Id:            id,
		Spec:          &federav1.JobSpec{Name: "job " + id, Dataset: "customers", Rounds: 3},
		Status:        status,
		CreatedUnixMs: created,
		UpdatedUnixMs: created,
	}
}

func checkpoint(jobID string, round int32) *federav1.Checkpoint {
	return &federav1.Checkpoint{
		JobId:       jobID,
		Round:       round,
		Features:    []string{"age", "tenure"},
		Classes:     []string{"no", "yes"},
		ScalerMean:  []float64{40, 3.5},
		ScalerScale: []float64{12, 2},
		Weights:     bytes.Repeat([]byte{byte(round)}, 4096),
	}
}

func ids(jobs []*federav1.Job) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.GetId())
	}
	return out
}

func TestOpenBoltCreatesFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "nested")
	b := open(t, dir)
	if want := filepath.Join(dir, "coordinator.db"); b.Path() != want {
		t.Errorf("Path() = %s, want %s", b.Path(), want)
	}
	fi, err := os.Stat(b.Path())
	if err != nil {
		t.Fatalf("database file: %v", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("database file mode %v is readable by others", fi.Mode().Perm())
	}
}

func TestPutGetJob(t *testing.T) {
	b := open(t, t.TempDir())
	want := job("j1", 1000, federav1.JobStatus_JOB_STATUS_PENDING)
	if err := b.PutJob(want); err != nil {
		t.Fatalf("PutJob: %v", err)
	}
	got, err := b.GetJob("j1")
	if err != nil {
		t.Fatalf("GetJob: %v", err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("GetJob = %v, want %v", got, want)
	}

	// PutJob replaces.
	want.Status = federav1.JobStatus_JOB_STATUS_RUNNING
	want.RoundsCompleted = 2
	if err := b.PutJob(want); err != nil {
		t.Fatalf("PutJob replace: %v", err)
	}
	got, err = b.GetJob("j1")
	if err != nil || !proto.Equal(got, want) {
		t.Errorf("GetJob after replace = %v, %v; want %v", got, err, want)
	}
	if all, _ := b.ListJobs(); len(all) != 1 {
		t.Errorf("ListJobs after replace has %d jobs, want 1", len(all))
	}
}

func TestNotFound(t *testing.T) {
	b := open(t, t.TempDir())
	if err := b.PutJob(job("j1", 1, federav1.JobStatus_JOB_STATUS_RUNNING)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"GetJob", func() error { _, err := b.GetJob("missing"); return err }},
		{"GetJob empty id", func() error { _, err := b.GetJob(""); return err }},
		{"LoadCheckpoint of unknown job", func() error { _, err := b.LoadCheckpoint("missing"); return err }},
		{"LoadCheckpoint of job without one", func() error { _, err := b.LoadCheckpoint("j1"); return err }},
		{"GetModel of unknown job", func() error { _, err := b.GetModel("missing"); return err }},
		{"GetModel of unfinished job", func() error { _, err := b.GetModel("j1"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrNotFound) {
				t.Errorf("error = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestListJobsOldestFirst(t *testing.T) {
	b := open(t, t.TempDir())
	// Inserted in an order that is neither key order nor creation order.
	for _, j := range []*federav1.Job{
		job("a-late", 3000, federav1.JobStatus_JOB_STATUS_PENDING),
		job("z-early", 1000, federav1.JobStatus_JOB_STATUS_SUCCEEDED),
		job("m-tie-2", 2000, federav1.JobStatus_JOB_STATUS_RUNNING),
		job("b-tie-1", 2000, federav1.JobStatus_JOB_STATUS_FAILED),
	} {
		if err := b.PutJob(j); err != nil {
			t.Fatalf("PutJob: %v", err)
		}
	}
	jobs, err := b.ListJobs()
	if err != nil {
		t.Fatalf("ListJobs: %v", err)
	}
	// Equal creation times fall back to the id, so the order is stable.
	want := []string{"z-early", "b-tie-1", "m-tie-2", "a-late"}
	if got := ids(jobs); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("ListJobs order = %v, want %v", got, want)
	}
	if jobs[0].GetSpec().GetName() != "job z-early" {
		t.Errorf("ListJobs lost the spec: %v", jobs[0])
	}
}

func TestListJobsEmpty(t *testing.T) {
	b := open(t, t.TempDir())
	jobs, err := b.ListJobs()
	if err != nil || len(jobs) != 0 {
		t.Errorf("ListJobs on an empty store = %v, %v", jobs, err)
	}
}

func TestInvalidWrites(t *testing.T) {
	b := open(t, t.TempDir())
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"PutJob without id", func() error { return b.PutJob(&federav1.Job{Status: federav1.JobStatus_JOB_STATUS_RUNNING}) }, "no id"},
		{"PutJob nil", func() error { return b.PutJob(nil) }, "no id"},
		{"SaveRound with another job's checkpoint", func() error { return b.SaveRound(job("j1", 1, 0), checkpoint("j2", 1)) }, `"j2" does not match job "j1"`},
		{"SaveRound checkpoint without job id", func() error { return b.SaveRound(job("j1", 1, 0), checkpoint("", 1)) }, "does not match"},
		{"SaveRound job without id", func() error { return b.SaveRound(job("", 1, 0), checkpoint("", 1)) }, "does not match"},
		{"SaveRound nil checkpoint", func() error { return b.SaveRound(job("j1", 1, 0), nil) }, "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	// None of the refused writes left anything behind.
	if jobs, _ := b.ListJobs(); len(jobs) != 0 {
		t.Errorf("refused writes stored jobs %v", ids(jobs))
	}
	if _, err := b.LoadCheckpoint("j1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused SaveRound stored a checkpoint: %v", err)
	}
}

func TestSaveRoundSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	j := job("j1", 1000, federav1.JobStatus_JOB_STATUS_RUNNING)
	for r := int32(1); r <= 3; r++ {
		j.RoundsCompleted = r
		j.Rounds = append(j.Rounds, &federav1.RoundSummary{})
		if err := b.SaveRound(j, checkpoint("j1", r)); err != nil {
			t.Fatalf("SaveRound %d: %v", r, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	b2 := open(t, dir)
	gotJob, err := b2.GetJob("j1")
	if err != nil {
		t.Fatalf("GetJob after reopen: %v", err)
	}
	if !proto.Equal(gotJob, j) {
		t.Errorf("job after reopen = %v, want %v", gotJob, j)
	}
	cp, err := b2.LoadCheckpoint("j1")
	if err != nil {
		t.Fatalf("LoadCheckpoint after reopen: %v", err)
	}
	if want := checkpoint("j1", 3); !proto.Equal(cp, want) {
		t.Errorf("checkpoint after reopen is round %d, want the last saved round 3", cp.GetRound())
	}
	// The job record and its checkpoint agree on the round: the pair was
	// written together.
	if cp.GetRound() != gotJob.GetRoundsCompleted() {
		t.Errorf("checkpoint round %d, job says %d rounds completed", cp.GetRound(), gotJob.GetRoundsCompleted())
	}
}

func TestLoadedCheckpointOutlivesLaterWrites(t *testing.T) {
	// Values read from bbolt live in its mmap; the store must hand out
	// copies that stay valid after the file grows and is remapped.
	b := open(t, t.TempDir())
	if err := b.SaveRound(job("j1", 1, 0), checkpoint("j1", 7)); err != nil {
		t.Fatal(err)
	}
	cp, err := b.LoadCheckpoint("j1")
	if err != nil {
		t.Fatal(err)
	}
	model := bytes.Repeat([]byte("m"), 1000)
	if err := b.FinishJob(job("j0", 1, 0), model); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetModel("j0")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		id := "grow" + strings.Repeat("x", i)
		if err := b.SaveRound(job(id, 1, 0), &federav1.Checkpoint{JobId: id, Weights: make([]byte, 512<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	if want := checkpoint("j1", 7); !proto.Equal(cp, want) {
		t.Errorf("checkpoint read earlier changed after later writes")
	}
	if !bytes.Equal(got, model) {
		t.Errorf("model read earlier changed after later writes")
	}
}

func TestFinishJob(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	j := job("j1", 1000, federav1.JobStatus_JOB_STATUS_RUNNING)
	if err := b.SaveRound(j, checkpoint("j1", 3)); err != nil {
		t.Fatal(err)
	}
	other := job("j2", 2000, federav1.JobStatus_JOB_STATUS_RUNNING)
	if err := b.SaveRound(other, checkpoint("j2", 1)); err != nil {
		t.Fatal(err)
	}

	j.Status = federav1.JobStatus_JOB_STATUS_SUCCEEDED
	j.ModelSha256 = "abc123"
	model := []byte("safetensors bytes")
	if err := b.FinishJob(j, model); err != nil {
		t.Fatalf("FinishJob: %v", err)
	}
	model[0] = 'X' // the store must have kept its own copy

	check := func(t *testing.T, b *Bolt) {
		t.Helper()
		got, err := b.GetModel("j1")
		if err != nil || string(got) != "safetensors bytes" {
			t.Errorf("GetModel = %q, %v", got, err)
		}
		if _, err := b.LoadCheckpoint("j1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("checkpoint of finished job: %v, want ErrNotFound", err)
		}
		gotJob, err := b.GetJob("j1")
		if err != nil || gotJob.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED || gotJob.GetModelSha256() != "abc123" {
			t.Errorf("finished job = %v, %v", gotJob, err)
		}
		if _, err := b.LoadCheckpoint("j2"); err != nil {
			t.Errorf("finishing j1 touched j2's checkpoint: %v", err)
		}
	}
	t.Run("before reopen", func(t *testing.T) { check(t, b) })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("after reopen", func(t *testing.T) { check(t, open(t, dir)) })
}

func TestFinishJobWithoutModel(t *testing.T) {
	// A failed or cancelled job has no model; its checkpoint still goes.
	b := open(t, t.TempDir())
	j := job("j1", 1, federav1.JobStatus_JOB_STATUS_RUNNING)
	if err := b.SaveRound(j, checkpoint("j1", 2)); err != nil {
		t.Fatal(err)
	}
	j.Status = federav1.JobStatus_JOB_STATUS_FAILED
	j.Message = "site eu/paris left"
	if err := b.FinishJob(j, nil); err != nil {
		t.Fatalf("FinishJob: %v", err)
	}
	if _, err := b.GetModel("j1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetModel of failed job: %v, want ErrNotFound", err)
	}
	if _, err := b.LoadCheckpoint("j1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoadCheckpoint of failed job: %v, want ErrNotFound", err)
	}
	if got, _ := b.GetJob("j1"); got.GetMessage() != "site eu/paris left" {
		t.Errorf("failed job = %v", got)
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	want := map[string]*federav1.Job{}
	for cycle := range 3 {
		b := open(t, dir)
		// Everything written in earlier cycles is still there.
		jobs, err := b.ListJobs()
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != len(want) {
			t.Fatalf("cycle %d: %d jobs after reopen, want %d", cycle, len(jobs), len(want))
		}
		for _, j := range jobs {
			if !proto.Equal(j, want[j.GetId()]) {
				t.Errorf("cycle %d: job %s = %v, want %v", cycle, j.GetId(), j, want[j.GetId()])
			}
		}
		j := job(string(rune('a'+cycle)), int64(cycle), federav1.JobStatus_JOB_STATUS_PENDING)
		if err := b.PutJob(j); err != nil {
			t.Fatal(err)
		}
		want[j.GetId()] = j
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func TestSecondOpenFails(t *testing.T) {
	dir := t.TempDir()
	first := open(t, dir)
	if err := first.PutJob(job("j1", 1, 0)); err != nil {
		t.Fatal(err)
	}

	// The second open gives up after its lock timeout (2s) instead of
	// waiting for the first holder forever. The minute only bounds that
	// wait: how long within it says how loaded the machine is.
	type result struct {
		s   *Bolt
		err error
	}
	opened := make(chan result, 1)
	go func() {
		s, err := OpenBolt(dir)
		opened <- result{s, err}
	}()
	var err error
	select {
	case r := <-opened:
		if r.err == nil {
			r.s.Close()
			t.Fatal("a second OpenBolt of a store in use succeeded")
		}
		err = r.err
	case <-time.After(time.Minute):
		t.Fatal("a second OpenBolt of a store in use still waits after a minute; want it to give up (after about 2s)")
	}
	for _, w := range []string{first.Path(), "another coordinator holds it open"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	// The first holder is unaffected, and once it closes the store opens.
	if _, err := first.GetJob("j1"); err != nil {
		t.Errorf("first store after refused second open: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, dir).GetJob("j1"); err != nil {
		t.Errorf("GetJob after the first holder closed: %v", err)
	}
}

func TestOpenBoltErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) string
	}{
		{"dir is a file", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"corrupt database", func(t *testing.T) string {
			dir := t.TempDir()
			junk := bytes.Repeat([]byte("not a bolt database "), 1024)
			if err := os.WriteFile(filepath.Join(dir, "coordinator.db"), junk, 0o600); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.setup(t)
			b, err := OpenBolt(dir)
			if err == nil {
				b.Close()
				t.Fatal("OpenBolt succeeded")
			}
			if !strings.Contains(err.Error(), "open store") || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not say which store failed to open", err)
			}
		})
	}
}

func TestCloseIdempotent(t *testing.T) {
	b, err := OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := b.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
}

func TestUseAfterCloseErrors(t *testing.T) {
	// A straggling goroutine that writes after shutdown must get an error,
	// not crash the coordinator.
	b, err := OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"PutJob", func() error { return b.PutJob(job("j1", 1, 0)) }},
		{"GetJob", func() error { _, err := b.GetJob("j1"); return err }},
		{"ListJobs", func() error { _, err := b.ListJobs(); return err }},
		{"SaveRound", func() error { return b.SaveRound(job("j1", 1, 0), checkpoint("j1", 1)) }},
		{"LoadCheckpoint", func() error { _, err := b.LoadCheckpoint("j1"); return err }},
		{"FinishJob", func() error { return b.FinishJob(job("j1", 1, 0), []byte("m")) }},
		{"GetModel", func() error { _, err := b.GetModel("j1"); return err }},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err == nil {
				t.Error("succeeded on a closed store")
			}
		})
	}
}
