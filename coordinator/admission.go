package coordinator

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/federa-dev/federa/internal/logkeys"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// approvalPoll is how often a job held for approval asks again.
const approvalPoll = time.Second

// dryRunTimeout bounds the pre-check at submit time, so a slow site cannot
// hold a data scientist's terminal.
const dryRunTimeout = 10 * time.Second

// admission asks every site for its admission decision before any data is
// touched. A refusal anywhere fails the job with that site's reasons; a
// site that holds the job for its operator's approval keeps it waiting
// (the job says where) until the operator decides. It returns the sites
// that admitted the job.
func (c *Coordinator) admission(ctx context.Context, job *federav1.Job, sites []string) ([]string, error) {
	sp := job.GetSpec()
	announced := ""
	for {
		col, err := c.fanOut(ctx, fan{job: job, kind: federav1.TaskKind_TASK_KIND_ADMIT, sites: sites, minSites: int(sp.GetMinSites())})
		if err != nil {
			return nil, err
		}
		if col.Outcome() != Done {
			return nil, fmt.Errorf("admission: %s", col.Reason())
		}
		var denied, waiting, allowed []string
		for _, s := range col.Answered() {
			a := col.Answers()[s].result.GetAdmission()
			switch a.GetOutcome() {
			case federav1.Admission_OUTCOME_ALLOW:
				allowed = append(allowed, s)
			case federav1.Admission_OUTCOME_PENDING_APPROVAL:
				waiting = append(waiting, s)
			default:
				denied = append(denied, fmt.Sprintf("site %s: %s", s, strings.Join(a.GetReasons(), "; ")))
			}
		}
		if _, err := c.updateWith(job.GetId(), "", func(j *federav1.Job) {
			for _, s := range col.Answered() {
				siteSummary(j, s).Admission = col.Answers()[s].result.GetAdmission()
			}
			addBytes(j, col)
		}, c.store.PutJob); err != nil {
			return nil, err
		}
		if len(denied) > 0 {
			return nil, fmt.Errorf("denied by %s", strings.Join(denied, " | "))
		}
		if len(waiting) == 0 {
			return allowed, nil
		}
		msg := "waiting for approval at " + strings.Join(waiting, ", ")
		if msg != announced {
			announced = msg
			if _, err := c.update(job.GetId(), msg, func(j *federav1.Job) { j.Message = msg }); err != nil {
				return nil, err
			}
			c.log.Info("job held for approval", logkeys.Job, job.GetId(), "sites", waiting)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(approvalPoll):
		}
	}
}

// preCheck asks each named, connected site for a dry-run admission, so a
// job that a site would refuse is refused at submit time with the site's
// reasons, before it is stored. Sites that are not connected are not asked;
// they decide when the job reaches them.
func (c *Coordinator) preCheck(ctx context.Context, job *federav1.Job) error {
	sp := job.GetSpec()
	connected, _ := c.connectedSites(sp.GetDataset())
	sites := connected
	if len(sp.GetSites()) > 0 {
		sites = intersect(sp.GetSites(), connected)
	}
	if len(sites) == 0 {
		return nil
	}
	col, err := c.fanOut(ctx, fan{job: job, kind: federav1.TaskKind_TASK_KIND_ADMIT, sites: sites, minSites: 1, timeout: dryRunTimeout, dryRun: true})
	if err != nil {
		return err
	}
	var denied []string
	for _, s := range col.Answered() {
		a := col.Answers()[s].result.GetAdmission()
		if a.GetOutcome() == federav1.Admission_OUTCOME_DENY {
			denied = append(denied, fmt.Sprintf("site %s: %s", s, strings.Join(a.GetReasons(), "; ")))
		}
	}
	sort.Strings(denied)
	if len(denied) > 0 {
		return fmt.Errorf("refused by %s", strings.Join(denied, " | "))
	}
	return nil
}

// roleOf is the role a user submits under: data-scientist when they have
// it, else their first role, else none.
func (c *Coordinator) roleOf(user string) string {
	roles := c.cfg.Users[user]
	for _, r := range roles {
		if r == "data-scientist" {
			return r
		}
	}
	if len(roles) > 0 {
		return roles[0]
	}
	return ""
}
