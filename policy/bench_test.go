package policy

import (
	"context"
	"slices"
	"testing"
	"time"
)

// benchLatency runs op b.N times and reports the p50 and p99 latency of one
// call beside the mean ns/op: decisions sit on every task and message, so
// the tail matters as much as the mean.
func benchLatency(b *testing.B, op func() error) {
	b.Helper()
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(durations)
	pct := func(p float64) float64 {
		return float64(durations[int(p*float64(len(durations)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50_us")
	b.ReportMetric(pct(0.99), "p99_us")
}

func BenchmarkAdmission(b *testing.B) {
	e := loadDefault(b)
	ctx := context.Background()
	in := SampleInput()
	benchLatency(b, func() error {
		d, err := e.Admission(ctx, in)
		if err == nil && !d.Allow {
			b.Fatalf("sample input denied: %v", d.Reasons)
		}
		return err
	})
}

func BenchmarkEgress(b *testing.B) {
	e := loadDefault(b)
	ctx := context.Background()
	in := SampleEgress()
	benchLatency(b, func() error {
		d, err := e.Egress(ctx, in)
		if err == nil && !d.Allow {
			b.Fatalf("sample egress denied: %v", d.Reasons)
		}
		return err
	})
}

// BenchmarkLoad is the cost of a (re)load: compile, prepare, validate.
func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	benchLatency(b, func() error {
		_, err := LoadFS(ctx, Default(), ".")
		return err
	})
}
