package site

import (
	"math"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/federa-dev/federa/internal/httpserve"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// metrics are the site agent's Prometheus figures, in its own registry
// (docs/operations.md lists them).
type metrics struct {
	reg        *prometheus.Registry
	decisions  *prometheus.CounterVec // policy decisions by kind and outcome
	sent       *prometheus.CounterVec // bytes that left, by task kind
	received   prometheus.Counter     // bytes of coordinator messages
	reconnects prometheus.Counter
	epsilon    *prometheus.GaugeVec // lifetime ε spent, by dataset
}

func newMetrics(a *Agent) *metrics {
	reg := httpserve.NewRegistry()
	m := &metrics{
		reg: reg,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "federa_site_policy_decisions_total",
			Help: "Policy decisions this site made, by kind (admission, admission-dry-run, egress) and outcome (allow, deny, needs_approval).",
		}, []string{"kind", "outcome"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "federa_site_sent_bytes_total",
			Help: "Bytes of task results that left this site for the coordinator, by task kind (stats, train, eval, query, ...).",
		}, []string{"kind"}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "federa_site_received_bytes_total",
			Help: "Bytes of messages received from the coordinator (tasks, weights, audit syncs).",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "federa_site_stream_reconnects_total",
			Help: "Times the stream to the coordinator ended or could not be opened and the agent tried again.",
		}),
		epsilon: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "federa_site_epsilon_spent",
			Help: "Lifetime differential-privacy epsilon spent on each dataset, as of its latest DP release (after a restart: recomputed from the ledger at the smallest delta of its plans).",
		}, []string{"dataset"}),
	}
	reg.MustRegister(m.decisions, m.sent, m.received, m.reconnects, m.epsilon)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "federa_site_connected",
		Help: "1 while the stream to the coordinator is up, else 0.",
	}, func() float64 {
		if a.Connected() {
			return 1
		}
		return 0
	}))
	if a.witness != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "federa_site_witnessed_audit_log_entries",
			Help: "Size of the coordinator's audit log as of the latest checkpoint this site verified and co-signed.",
		}, func() float64 { return float64(a.witness.size()) }))
	}
	for ds, eps := range a.ledger.spentEpsilons() {
		m.epsilon.WithLabelValues(ds).Set(eps)
	}
	httpserve.RegisterSVIDExpiry(reg, a.cfg.Identity, time.Now)
	return m
}

// Metrics is the agent's registry, for embedding it in another exporter;
// the HTTP listener (Config.HTTP) serves the same.
func (a *Agent) Metrics() prometheus.Gatherer { return a.metrics.reg }

func (m *metrics) decision(r *federav1.DecisionRecord) {
	outcome := "allow"
	switch {
	case !r.GetAllow():
		outcome = "deny"
	case r.GetRequireApproval():
		outcome = "needs_approval"
	}
	m.decisions.WithLabelValues(r.GetKind(), outcome).Inc()
}

// egress counts what left for task t.
func (m *metrics) egress(t *federav1.Task, n int64) {
	m.sent.WithLabelValues(strings.ToLower(strings.TrimPrefix(t.GetKind().String(), "TASK_KIND_"))).Add(float64(n))
}

// spentEpsilons is every dataset's lifetime ε from the ledger, at the
// smallest δ of its plans, for the gauge's value after a restart.
func (l *ledger) spentEpsilons() map[string]float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]float64{}
	for ds, plans := range l.f.Datasets {
		delta := math.Inf(1)
		for _, p := range plans {
			if len(p.Paid) > 0 && p.Delta > 0 {
				delta = math.Min(delta, p.Delta)
			}
		}
		if math.IsInf(delta, 1) {
			continue
		}
		if eps, err := l.datasetEpsilon(ds, "", 0, delta); err == nil {
			out[ds] = eps
		}
	}
	for ds, eps := range l.f.Legacy {
		if _, ok := out[ds]; !ok {
			out[ds] = eps
		}
	}
	return out
}

// HTTPAddr is the bound HTTP address, or "" when Config.HTTP is off.
func (a *Agent) HTTPAddr() string {
	if a.http == nil {
		return ""
	}
	return a.http.Addr()
}
