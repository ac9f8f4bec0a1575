package coordinator

import (
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/federa-dev/federa/internal/httpserve"
	"github.com/federa-dev/federa/internal/logkeys"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// metrics are the coordinator's Prometheus figures, in its own registry
// (docs/operations.md lists them). They are kept whether or not an HTTP
// address serves them, so a hook never has to ask.
type metrics struct {
	reg            *prometheus.Registry
	rounds         prometheus.Counter
	roundSeconds   prometheus.Histogram
	bytesIn        *prometheus.CounterVec // from sites, by site and task kind
	bytesOut       *prometheus.CounterVec // to sites, by site and task kind
	siteDecisions  *prometheus.CounterVec // sites' policy decisions, by site, kind, outcome
	accessDecision *prometheus.CounterVec // the coordinator's access policy, by outcome
	siteSessions   *prometheus.CounterVec // site streams opened, by site
}

// roundBuckets span a fast demo round (tens of milliseconds) to a large
// model's round over a slow link (tens of minutes).
var roundBuckets = prometheus.ExponentialBuckets(0.05, 2.5, 12)

func newMetrics(c *Coordinator) *metrics {
	reg := httpserve.NewRegistry()
	m := &metrics{
		reg: reg,
		rounds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "federa_coordinator_rounds_total",
			Help: "Training rounds completed (aggregated, evaluated, logged and checkpointed), over all jobs.",
		}),
		roundSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "federa_coordinator_round_duration_seconds",
			Help:    "Wall time of a completed training round, from waiting for sites to its checkpoint.",
			Buckets: roundBuckets,
		}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "federa_coordinator_received_bytes_total",
			Help: "Bytes of task results received from each site, by task kind (stats, train, eval, query, ...).",
		}, []string{"site", "kind"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "federa_coordinator_sent_bytes_total",
			Help: "Bytes of tasks (and the weights they carry) sent to each site, by task kind.",
		}, []string{"site", "kind"}),
		siteDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "federa_coordinator_site_policy_decisions_total",
			Help: "Policy decisions sites reported and the coordinator logged, by site, decision kind (admission, admission-dry-run, egress) and outcome (allow, deny, needs_approval).",
		}, []string{"site", "kind", "outcome"}),
		accessDecision: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "federa_coordinator_access_decisions_total",
			Help: "Access policy decisions on API calls, by outcome (allow, deny).",
		}, []string{"outcome"}),
		siteSessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "federa_coordinator_site_connects_total",
			Help: "Site streams accepted, by site; more than one per site means it reconnected.",
		}, []string{"site"}),
	}
	reg.MustRegister(m.rounds, m.roundSeconds, m.bytesIn, m.bytesOut, m.siteDecisions, m.accessDecision, m.siteSessions)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "federa_coordinator_sites_connected",
		Help: "Sites with a stream open now.",
	}, func() float64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return float64(len(c.sessions))
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "federa_coordinator_audit_log_entries",
		Help: "Entries in the coordinator's audit log.",
	}, func() float64 { return float64(c.auditLog.Size()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "federa_coordinator_audit_log_bytes",
		Help: "Bytes the audit log takes on disk (entries, hashes and checkpoints).",
	}, func() float64 { return float64(dirBytes(c.auditLog.Dir())) }))
	reg.MustRegister(&jobsCollector{c: c})
	httpserve.RegisterSVIDExpiry(reg, c.cfg.Identity, c.cfg.Now)
	return m
}

// Metrics is the coordinator's registry, for embedding it in another
// exporter; the HTTP listener (Config.HTTP) serves the same.
func (c *Coordinator) Metrics() prometheus.Gatherer { return c.metrics.reg }

// roundDone counts a completed round.
func (m *metrics) roundDone(d time.Duration) {
	m.rounds.Inc()
	m.roundSeconds.Observe(d.Seconds())
}

// transfer counts a fan-out's bytes; a dry run's (the admission check
// at submit) under kind "<kind>-dry-run".
func (m *metrics) transfer(kind string, dryRun bool, col *collected) {
	if dryRun {
		kind += "-dry-run"
	}
	for s, n := range col.bytesIn {
		m.bytesIn.WithLabelValues(s, kind).Add(float64(n))
	}
	for s, n := range col.bytesOut {
		m.bytesOut.WithLabelValues(s, kind).Add(float64(n))
	}
}

// siteDecision counts a site's policy decision the coordinator accepted.
func (m *metrics) siteDecision(site string, r *federav1.DecisionRecord) {
	m.siteDecisions.WithLabelValues(site, r.GetKind(), DecisionOutcome(r)).Inc()
}

// DecisionOutcome is how a decision record reads in metrics and on the
// page: allow, deny or needs_approval.
func DecisionOutcome(r *federav1.DecisionRecord) string {
	switch {
	case !r.GetAllow():
		return "deny"
	case r.GetRequireApproval():
		return "needs_approval"
	default:
		return "allow"
	}
}

func (m *metrics) access(allow bool) {
	if allow {
		m.accessDecision.WithLabelValues("allow").Inc()
	} else {
		m.accessDecision.WithLabelValues("deny").Inc()
	}
}

// jobsCollector reports the jobs the coordinator knows by status.
type jobsCollector struct{ c *Coordinator }

var jobsDesc = prometheus.NewDesc("federa_coordinator_jobs", "Jobs the coordinator knows, by status (pending, running, succeeded, failed, cancelled).", []string{"status"}, nil)

func (j *jobsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- jobsDesc }

func (j *jobsCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	for _, s := range []federav1.JobStatus{federav1.JobStatus_JOB_STATUS_PENDING, federav1.JobStatus_JOB_STATUS_RUNNING,
		federav1.JobStatus_JOB_STATUS_SUCCEEDED, federav1.JobStatus_JOB_STATUS_FAILED, federav1.JobStatus_JOB_STATUS_CANCELLED} {
		counts[s.Name()] = 0
	}
	j.c.mu.Lock()
	for _, js := range j.c.jobs {
		counts[js.job.GetStatus().Name()]++
	}
	j.c.mu.Unlock()
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), s)
	}
}

// dirBytes is the size of the regular files under dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// roundDone reports a stored round: it counts it, times it, and logs it
// on log (which carries the job and round) with one line per missing
// site, so every line of a round names its job, round and, where one
// site is meant, the site.
func (c *Coordinator) roundDone(log *slog.Logger, id string, r int) {
	j, _, _, _ := c.snapshot(id)
	var sum *federav1.RoundSummary
	for _, s := range j.GetRounds() {
		if int(s.GetRound()) == r {
			sum = s
		}
	}
	if sum == nil {
		return
	}
	c.metrics.roundDone(time.Duration(sum.GetDurationMs()) * time.Millisecond)
	log.Info("round done", "participants", sum.GetParticipants(), "missing", sum.GetMissing(),
		"train_loss", sum.GetTrainLoss(), "eval", federav1.FormatEval(sum), "duration_ms", sum.GetDurationMs())
	for _, s := range sum.GetMissing() {
		log.Warn("site missing from round", logkeys.Site, s)
	}
}
