package web

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// fakeSource is a fixed set of jobs.
type fakeSource struct{ jobs []*federav1.Job }

func (f fakeSource) Jobs() []*federav1.Job { return f.jobs }
func (f fakeSource) Job(id string) (*federav1.Job, bool) {
	for _, j := range f.jobs {
		if j.GetId() == id {
			return j, true
		}
	}
	return nil, false
}
func (f fakeSource) Audit() Audit { return Audit{Entries: 12, Bytes: 4096} }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

// TestJobPage: a round a site missed reads "missing" in its cell, a
// regressor's chart is of RMSE, a job name is escaped, an unknown job is
// a 404, and the footer says how the page is served.
func TestJobPage(t *testing.T) {
	nan := math.NaN()
	j := &federav1.Job{Id: "job-1", Status: federav1.JobStatus_JOB_STATUS_RUNNING, RoundsCompleted: 2,
		Spec:  &federav1.JobSpec{Name: "<script>alert(1)</script>", Rounds: 5, Dataset: "diabetes"},
		Sites: []*federav1.SiteSummary{{Site: "eu/paris"}, {Site: "us/boston"}},
		Rounds: []*federav1.RoundSummary{
			{Round: 1, Participants: []string{"eu/paris", "us/boston"}, TrainLoss: 3, EvalLoss: 4, EvalAccuracy: nan, EvalRmse: 2, EvalExamples: 10},
			{Round: 2, Participants: []string{"eu/paris"}, Missing: []string{"us/boston"}, TrainLoss: 2, EvalLoss: 3, EvalAccuracy: nan, EvalRmse: 1.7, EvalExamples: 10},
		}}
	for _, dev := range []bool{true, false} {
		mux := http.NewServeMux()
		if err := Register(mux, fakeSource{[]*federav1.Job{j}}, Options{Dev: dev}); err != nil {
			t.Fatal(err)
		}
		code, body := get(t, mux, "/jobs/job-1")
		if code != http.StatusOK {
			t.Fatalf("GET /jobs/job-1: %d", code)
		}
		for _, want := range []string{
			`<td class="p out" data-site="us/boston">missing</td>`,
			`<td class="p in" data-site="eu/paris">took part</td>`,
			`eval RMSE per round`,
			`&lt;script&gt;alert(1)&lt;/script&gt;`,
			`2 of 5`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("dev=%v: the job page lacks %q", dev, want)
			}
		}
		if strings.Contains(body, "<script>") {
			t.Errorf("dev=%v: the job name reached the page unescaped", dev)
		}
		if got := strings.Contains(body, "<strong>Dev mode</strong>"); got != dev {
			t.Errorf("dev=%v: footer says dev mode: %v", dev, got)
		}
		if code, _ := get(t, mux, "/jobs/job-2"); code != http.StatusNotFound {
			t.Errorf("GET an unknown job: %d, want 404", code)
		}
		if code, body := get(t, mux, "/"); code != http.StatusOK || !strings.Contains(body, `data-job="job-1"`) || !strings.Contains(body, "RUNNING") {
			t.Errorf("GET /: %d; want the job listed as RUNNING", code)
		}
		if code, body := get(t, mux, "/static/style.css"); code != http.StatusOK || !strings.Contains(body, "body {") {
			t.Errorf("GET /static/style.css: %d", code)
		}
	}
}
