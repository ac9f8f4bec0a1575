package sim_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/coordinator"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/spec"
)

// siteFiles copies the shipped site files into a temp dir, lets edit change
// them, and returns site specs pointing at the copies.
func siteFiles(t *testing.T, edit func(name string, data string) string) []sim.SiteSpec {
	t.Helper()
	dir := t.TempDir()
	var out []sim.SiteSpec
	for _, s := range shippedSites {
		b, err := os.ReadFile(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		data := string(b)
		if edit != nil {
			data = edit(s.Name, data)
		}
		p := filepath.Join(dir, filepath.Base(s.Path))
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, sim.SiteSpec{Name: s.Name, Dataset: s.Dataset, Path: p})
	}
	return out
}

// replaceCell replaces the first cell of data line `line` (1-based, header
// is line 1).
func replaceCell(data string, line int, value string) string {
	lines := strings.Split(data, "\n")
	cells := strings.SplitN(lines[line-1], ",", 2)
	lines[line-1] = value + "," + cells[1]
	return strings.Join(lines, "\n")
}

// TestBadInputFailsTheJobCleanly: each bad input fails the job with one
// error naming the site, the file, the line or field and what is wrong; the
// coordinator and the sites stay up and serve the next job.
func TestBadInputFailsTheJobCleanly(t *testing.T) {
	tests := []struct {
		name string
		edit func(site, data string) string
		job  func(j *spec.Job)
		want []string
	}{
		{name: "dataset a site lacks", job: func(j *spec.Job) { j.Dataset = "heart-disease" },
			want: []string{`dataset "heart-disease"`, "site eu/paris does not serve it", "breast-cancer"}},
		{name: "label not in the CSV", job: func(j *spec.Job) { j.Label = "diagnosis" },
			want: []string{"site ", `label "diagnosis" is not a column of dataset`}},
		{name: "feature not in the CSV", job: func(j *spec.Job) { j.Features = []string{"mean_radius", "mean_colour"} },
			want: []string{`feature "mean_colour" is not a column of dataset`}},
		{name: "non-numeric cell",
			edit: func(site, d string) string {
				if site == "sg/singapore" {
					return replaceCell(d, 5, "abc")
				}
				return d
			},
			want: []string{"site sg/singapore", "sg-singapore.csv:5", `column "mean_radius"`, "the value (withheld; it stays at the site) is not a number"}},
		{name: "NaN cell",
			edit: func(site, d string) string {
				if site == "eu/paris" {
					return replaceCell(d, 3, "NaN")
				}
				return d
			},
			want: []string{"site eu/paris", "eu-paris.csv:3", "NaN"}},
		{name: "Inf cell",
			edit: func(site, d string) string {
				if site == "eu/paris" {
					return replaceCell(d, 4, "+Inf")
				}
				return d
			},
			want: []string{"eu-paris.csv:4", "Inf"}},
		{name: "empty file",
			edit: func(site, d string) string {
				if site == "us/boston" {
					return ""
				}
				return d
			},
			want: []string{"site us/boston", "us-boston.csv", "empty"}},
		{name: "feature columns differ between sites",
			edit: func(site, d string) string {
				if site != "us/boston" {
					return d
				}
				lines := strings.Split(strings.TrimRight(d, "\n"), "\n")
				lines[0] = "extra," + lines[0]
				for i := 1; i < len(lines); i++ {
					lines[i] = "1," + lines[i]
				}
				return strings.Join(lines, "\n") + "\n"
			},
			want: []string{"feature columns differ between sites", "us/boston has [extra] that eu/paris lacks"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, _ := startNet(t, sim.Options{
				Sites:       siteFiles(t, tt.edit),
				Coordinator: func(c *coordinator.Config) { c.SiteWaitTimeout = 5 * time.Second },
			})
			j := demoSpec()
			j.Rounds = 2
			if tt.job != nil {
				tt.job(j)
			}
			// Either the submit-time dry run catches it (the job is never
			// stored) or the job fails when the site reads the data.
			msg := ""
			c, closeFn, err := n.Dial("alice")
			if err != nil {
				t.Fatal(err)
			}
			defer closeFn()
			submitted, err := c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
			if err != nil {
				msg = status.Convert(err).Message()
			} else {
				job := waitFinal(t, c, submitted.GetId())
				if job.GetStatus() != federav1.JobStatus_JOB_STATUS_FAILED {
					t.Fatalf("job %s (%s), want failed", job.GetStatus(), job.GetMessage())
				}
				// Nothing half-done: no model, no rounds.
				if job.GetModelSha256() != "" || job.GetRoundsCompleted() != 0 {
					t.Errorf("failed job left a model or rounds behind: %v", job)
				}
				msg = job.GetMessage()
			}
			t.Logf("error: %s", msg)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Count(msg, "\n") > 0 {
				t.Errorf("error spans several lines: %q", msg)
			}
			if n.Coordinator() == nil {
				t.Fatal("coordinator went away")
			}
			good := demoSpec()
			good.Rounds = 1
			if tt.edit != nil {
				return // the data is still bad; the next job would fail the same way
			}
			if job := runJob(t, n, good); job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
				t.Fatalf("the next good job %s: %s", job.GetStatus(), job.GetMessage())
			}
		})
	}
}

func TestBadSpecRefusedAtSubmit(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	j := demoSpec()
	j.Sites = []string{"eu/paris", "mars/olympus"}
	_, err = c.SubmitJob(t.Context(), &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err == nil || !strings.Contains(err.Error(), `"mars/olympus" is not a site this coordinator knows`) {
		t.Fatalf("got %v", err)
	}
	p := demoSpec().Proto()
	p.Rounds = -3
	_, err = c.SubmitJob(t.Context(), &federav1.SubmitJobRequest{Spec: p})
	if err == nil || !strings.Contains(err.Error(), "field rounds: -3 is out of range") {
		t.Fatalf("got %v", err)
	}
	list, err := c.ListJobs(t.Context(), &federav1.ListJobsRequest{})
	if err != nil || len(list.GetJobs()) != 0 {
		t.Fatalf("a refused spec left a job behind: %v %v", list, err)
	}
}
