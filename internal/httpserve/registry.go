package httpserve

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// NewRegistry is a daemon's own registry (never the global one, so two
// daemons in one process, as in federa demo, keep their figures apart),
// with the Go runtime and process collectors every exporter carries.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// RegisterSVIDExpiry adds federa_svid_expiry_seconds: the seconds until
// the SVID src serves now expires (negative once it has), read at every
// scrape so a rotated SVID shows at once. It is absent while src has no
// SVID.
func RegisterSVIDExpiry(reg prometheus.Registerer, src x509svid.Source, now func() time.Time) {
	reg.MustRegister(&svidExpiry{src: src, now: now})
}

var svidExpiryDesc = prometheus.NewDesc("federa_svid_expiry_seconds",
	"Seconds until this daemon's current X.509-SVID expires (negative once expired).", nil, nil)

type svidExpiry struct {
	src x509svid.Source
	now func() time.Time
}

func (c *svidExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- svidExpiryDesc }

func (c *svidExpiry) Collect(ch chan<- prometheus.Metric) {
	svid, err := c.src.GetX509SVID()
	if err != nil || len(svid.Certificates) == 0 {
		return
	}
	left := svid.Certificates[0].NotAfter.Sub(c.now()).Seconds()
	ch <- prometheus.MustNewConstMetric(svidExpiryDesc, prometheus.GaugeValue, left)
}
