package policy

import (
	"context"
	"fmt"
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

// BenchmarkEgressPrepared is an egress decision as a site asks it: the
// job's input prepared once, the admission summary passed in.
func BenchmarkEgressPrepared(b *testing.B) {
	e := loadDefault(b)
	ctx := context.Background()
	in := SampleEgress()
	adm, err := e.Admission(ctx, in)
	if err != nil {
		b.Fatal(err)
	}
	p, err := Prepare(in)
	if err != nil {
		b.Fatal(err)
	}
	benchLatency(b, func() error {
		d, err := e.EgressPrepared(ctx, p, in.Egress, adm.Summary())
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

// BenchmarkAccess is one access decision as the coordinator asks it per
// RPC: "eval" with the cache defeated (a fresh resource each time), "cached"
// for a repeated (caller, RPC, resource), as on a site's task results.
// cached_vs_eval is the ratio of their means, measured in the same run.
func BenchmarkAccess(b *testing.B) {
	a, err := LoadDefaultAccess(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	alice := Caller{ID: "spiffe://td/user/alice", Kind: "user", Roles: []string{"data-scientist"}}
	req := AccessRequest{Caller: alice, RPC: "JobService.GetJob", Resource: Resource{JobOwner: alice.ID}}
	measure := func(n int, fresh bool) time.Duration {
		start := time.Now()
		for i := range n {
			r := req
			if fresh {
				r.Resource.JobOwner = fmt.Sprint(alice.ID, i)
			}
			a.Decide(ctx, r)
		}
		return time.Since(start) / time.Duration(n)
	}
	var eval, cached time.Duration
	b.Run("eval", func(b *testing.B) {
		b.ReportAllocs()
		eval = measure(b.N, true)
	})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		cached = measure(b.N, false)
		if eval > 0 {
			b.ReportMetric(float64(cached)/float64(eval), "cached_vs_eval")
		}
	})
}
