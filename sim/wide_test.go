package sim_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/spec"
)

// wideName is column c's name, padded to width bytes: long names make a
// statistics answer cross gRPC's 4 MiB at fewer columns, and fewer columns
// keep the policy's work per task (linear in them) short enough for make
// test.
func wideName(c, width int) string {
	s := "f" + strconv.Itoa(c)
	if len(s) < width {
		s = "f" + strings.Repeat("_", width-len(s)) + s[1:]
	}
	return s
}

// wideCSV writes a CSV of rows rows and cols numeric feature columns plus
// a two-class label, different values per seed.
func wideCSV(t testing.TB, dir string, cols, width, rows, seed int) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("wide-%d.csv", seed))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for c := range cols {
		w.WriteString(wideName(c, width) + ",")
	}
	w.WriteString("label\n")
	for r := range rows {
		for c := range cols {
			// Small integers keep the file small; every column varies.
			w.WriteString(strconv.Itoa((r*7+c*3+seed)%10) + ",")
		}
		w.WriteString([]string{"a", "b"}[(r+seed)%2] + "\n")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestWideStatsPhase: a job over more columns than fit one gRPC message
// runs through its statistics phase, trains and ends with every column in
// its record. In make test 40,000 columns with 100-byte names: each
// site's statistics answer is about 4.7 MB, the training task as much,
// both over gRPC's 4 MiB limit (they travel in fragments). With
// FEDERA_WIDE_COLUMNS=500000 (make bench-wide) the same job over 500,000
// short-named columns, the figure docs/scale.md quotes.
func TestWideStatsPhase(t *testing.T) {
	cols, width, wait := 40_000, 100, 4*time.Minute
	if s := os.Getenv("FEDERA_WIDE_COLUMNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("FEDERA_WIDE_COLUMNS=%q: want a positive number of columns", s)
		}
		cols, width, wait = n, 0, 60*time.Minute
	}
	dir := t.TempDir()
	sites := []sim.SiteSpec{
		{Name: "eu/paris", Dataset: "wide", Path: wideCSV(t, dir, cols, width, 24, 1)},
		{Name: "us/boston", Dataset: "wide", Path: wideCSV(t, dir, cols, width, 24, 2)},
	}
	// A slow heartbeat: with two sites and a coordinator in one process
	// holding a few hundred MB of columns, a loaded machine's GC pauses
	// are not a site's death.
	n, _ := startNet(t, sim.Options{Sites: sites, Heartbeat: 10 * time.Second})
	j := &spec.Job{
		Name: "wide", Dataset: "wide", Label: "label", Model: spec.Model{Type: "logreg"},
		Rounds: 1, LocalEpochs: 1, BatchSize: 12, LearningRate: 0.1, MinSites: 2,
		RoundTimeout: spec.Duration(wait), Seed: 1,
	}
	j.ApplyDefaults()
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	start := time.Now()
	job, err := c.SubmitJob(ctx, &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	for !isFinal(job.GetStatus()) {
		select {
		case <-ctx.Done():
			t.Fatalf("job over %d columns did not end in %s: %s: %s", cols, wait, job.GetStatus(), job.GetMessage())
		case <-time.After(200 * time.Millisecond):
		}
		if job, err = c.GetJob(ctx, &federav1.GetJobRequest{Id: job.GetId()}); err != nil {
			t.Fatalf("get job: %v", err)
		}
	}
	elapsed := time.Since(start)
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job over %d columns: %s: %s", cols, job.GetStatus(), job.GetMessage())
	}
	if n := proto.Size(job); n > 2<<20 {
		t.Errorf("GetJob sent %d bytes", n)
	}
	// Every column is in the record: the view's first ones, the rest page
	// by page.
	var features []string
	for token := ""; ; {
		resp, err := c.ListFeatures(ctx, &federav1.ListFeaturesRequest{JobId: job.GetId(), PageToken: token})
		if err != nil {
			t.Fatalf("list features: %v", err)
		}
		features = append(features, resp.GetFeatures()...)
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(features) != cols || len(job.GetFeatures())+int(job.GetFeaturesOmitted()) != cols {
		t.Fatalf("the job has %d features (GetJob: %d + %d omitted); want %d", len(features), len(job.GetFeatures()), job.GetFeaturesOmitted(), cols)
	}
	for i, f := range features {
		if f != wideName(i, width) {
			t.Fatalf("feature %d is %q, want %q", i, f, wideName(i, width))
		}
	}
	t.Logf("%d columns (%d-byte names): submit to succeeded in %s", cols, len(wideName(cols-1, width)), elapsed.Round(time.Second))
}

func isFinal(s federav1.JobStatus) bool {
	switch s {
	case federav1.JobStatus_JOB_STATUS_SUCCEEDED, federav1.JobStatus_JOB_STATUS_FAILED, federav1.JobStatus_JOB_STATUS_CANCELLED:
		return true
	}
	return false
}
