package sim_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/federa-dev/federa/sim"
)

// BenchmarkScale runs the same 5-round job across 10 and 100 sites (and
// the counts in FEDERA_SCALE_SITES, e.g. "300,1000"), one after the other
// in one op, each over real gRPC and mTLS, and reports for each count the
// coordinator's CPU per site-round — CPU-profile samples labelled
// federa=coordinator over the job, submit to end, divided by sites ×
// rounds — and the peak heap per site; then the ratio of each count's
// figures to the 10-site baseline measured in the same op. Flat cost is a
// ratio near 1 (the goal: within 1.5).
func BenchmarkScale(b *testing.B) {
	counts := []int{10, 100}
	if env := os.Getenv("FEDERA_SCALE_SITES"); env != "" {
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("FEDERA_SCALE_SITES: %q is not a site count", f)
			}
			counts = append(counts, n)
		}
	}
	const rounds = 5
	cpu := map[int][]float64{}
	heap := map[int][]float64{}
	for range b.N {
		for _, n := range counts {
			c, h := scaleRun(b, n, rounds)
			cpu[n], heap[n] = append(cpu[n], c), append(heap[n], h)
		}
	}
	base := counts[0]
	for _, n := range counts {
		b.ReportMetric(median(cpu[n]), fmt.Sprintf("coord_cpu_ms/site-round@%d", n))
		b.ReportMetric(median(heap[n])/1024, fmt.Sprintf("heap_KiB/site@%d", n))
		if n != base {
			b.ReportMetric(median(cpu[n])/median(cpu[base]), fmt.Sprintf("cpu_ratio_%d/%d", n, base))
			b.ReportMetric(median(heap[n])/median(heap[base]), fmt.Sprintf("heap_ratio_%d/%d", n, base))
		}
	}
}

// scaleRun runs one job of n sites and returns the coordinator's CPU per
// site-round in milliseconds and the peak heap per site in bytes.
func scaleRun(b *testing.B, n, rounds int) (cpuMs, heapPerSite float64) {
	var prof bytes.Buffer
	res, err := sim.RunScale(context.Background(), sim.ScaleOptions{
		Dir: b.TempDir(), Sites: n, Rounds: rounds,
		Started: func(*sim.Net) {
			if err := pprof.StartCPUProfile(&prof); err != nil {
				b.Fatal(err)
			}
		},
	})
	pprof.StopCPUProfile()
	if err != nil {
		b.Fatal(err)
	}
	if res.Status != "succeeded" {
		b.Fatalf("%d sites: job %s: %s", n, res.Status, res.Message)
	}
	p, err := profile.Parse(&prof)
	if err != nil {
		b.Fatal(err)
	}
	var coord int64
	for _, s := range p.Sample {
		if v := s.Label[sim.ProfileLabel]; len(v) == 1 && v[0] == "coordinator" {
			coord += s.Value[1] // cpu nanoseconds
		}
	}
	return float64(coord) / 1e6 / float64(n*rounds), float64(res.HeapPerSiteBytes)
}
