package sim_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/site"
)

// TestSiteSurvivesATaskThatPanics: a bug that panics in one task fails
// that task at its site, not the site: the site logs the panic, tells the
// coordinator only that an internal error happened (a panic's value may
// quote the data; here it carries a marker that must not leave), and
// answers the next query with the others.
func TestSiteSurvivesATaskThatPanics(t *testing.T) {
	const buggy, secret = "us/boston", "row 17 holds 4242.4242"
	var once sync.Once
	n, logs := startNet(t, sim.Options{SiteOptions: func(name string) []site.Option {
		if name != buggy {
			return nil
		}
		return []site.Option{site.WithBeforeTask(func(_ context.Context, task *federav1.Task) {
			if task.GetKind() != federav1.TaskKind_TASK_KIND_QUERY {
				return
			}
			first := false
			once.Do(func() { first = true })
			if first {
				panic(secret)
			}
		})}
	}})
	const spec = "name: count\ndataset: breast-cancer\naggregates: [{name: n, fn: count}]\n"
	q := runQuery(t, n, spec)
	t.Logf("the query whose task panicked: %s, sites %v: %s", q.GetStatus(), q.GetSites(), q.GetMessage())
	if !strings.Contains(q.GetMessage(), buggy+": internal error") {
		t.Errorf("the query's message does not say %s had an internal error: %q", buggy, q.GetMessage())
	}
	if strings.Contains(q.GetMessage(), "4242") {
		t.Errorf("the panic's value reached the coordinator: %q", q.GetMessage())
	}
	if logLines(logs.String(), "task panicked", secret) == 0 {
		t.Errorf("no log line at the site with the panic")
	}
	again := runQuery(t, n, spec)
	if again.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED || len(again.GetSites()) != len(shippedSites) {
		t.Fatalf("the next query: %s with sites %v (%s); want it answered by all %d: the site that panicked stays up", again.GetStatus(), again.GetSites(), again.GetMessage(), len(shippedSites))
	}
}
