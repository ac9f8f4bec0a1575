package sim_test

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/federa-dev/federa/cli"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

// TestJobPlotAndTable: after a job, its data scientist can draw its
// learning curves and read them as a table, from a running coordinator.
func TestJobPlotAndTable(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	j := demoSpec()
	j.Rounds = 2
	job := runJob(t, n, j)
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job: %s", job.GetMessage())
	}
	run := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		args = append(args, "--coordinator", n.Addr(), "--identity", n.IdentityDir("alice"))
		code := cli.Execute(context.Background(), args, &out, &errb)
		return out.String(), errb.String(), code
	}
	dir := t.TempDir()

	curve := filepath.Join(dir, "curve.png")
	out, errs, code := run("job", "plot", job.GetId(), "-o", curve, "--width", "640", "--height", "480")
	if code != 0 || !strings.Contains(out, "wrote "+curve) {
		t.Fatalf("job plot: %d %s %s", code, out, errs)
	}
	f, err := os.Open(curve)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("job plot wrote no PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 480 {
		t.Fatalf("plot is %dx%d, want 640x480", b.Dx(), b.Dy())
	}

	out, errs, code = run("job", "get", job.GetId())
	if code != 0 {
		t.Fatalf("job get: %d %s", code, errs)
	}
	for _, h := range []string{"ROUND", "SITES", "TRAIN LOSS", "EVAL ACC", "EVAL LOSS", "DURATION"} {
		if !strings.Contains(out, h) {
			t.Fatalf("job get has no %q column:\n%s", h, out)
		}
	}
	for _, r := range []string{"1", "2"} {
		// round, sites, train loss, accuracy, eval loss, duration
		row := regexp.MustCompile(`(?m)^` + r + `\s+3\s+\d\.\d{4}\s+\d\.\d{4}\s+\d\.\d{4}\s+[0-9.]+m?s\b`)
		if !row.MatchString(out) {
			t.Fatalf("job get lists no round %s with 3 sites:\n%s", r, out)
		}
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown job", []string{"job", "plot", "job-000000000000", "-o", filepath.Join(dir, "x.png")}, "not found"},
		{"unwritable", []string{"job", "plot", job.GetId(), "-o", filepath.Join(dir, "missing", "x.png")}, "write plot " + filepath.Join(dir, "missing", "x.png")},
		{"bad extension", []string{"job", "plot", job.GetId(), "-o", filepath.Join(dir, "x.gif")}, "want a .png, .svg or .pdf file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := run(tc.args...)
			if code == 0 || !strings.Contains(errs, tc.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
				t.Fatalf("want one error line with %q, got %d %q %q", tc.want, code, out, errs)
			}
		})
	}
}
