package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/coordinator"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/site"
	"github.com/federa-dev/federa/spec"
)

// ScaleOptions configures RunScale: how many sites, how many rounds, how
// large a model. The zero value of each field but Dir takes its default.
type ScaleOptions struct {
	// Dir holds the federation's state (CA, identities, state
	// directories, the sites' data files). Required.
	Dir string
	// Sites is how many sites take part (default 10).
	Sites int
	// Rounds is how many training rounds the job runs (default 5).
	Rounds int
	// Params is about how many parameters the model has (default 64): a
	// binary logistic regression over Params/2-1 synthetic features.
	Params int
	// RowsPerSite is each site's rows (default 24: tiny, so the figures
	// are the federation's cost, not training's).
	RowsPerSite int
	// Timeout bounds the whole run (default 30 minutes).
	Timeout time.Duration
	Log     *slog.Logger
	// Coordinator, if set, adjusts the coordinator's config (see Options).
	Coordinator func(*coordinator.Config)
	// Started, if set, is called once every site is connected, just
	// before the job is submitted.
	Started func(*Net)
}

// ScaleResult is what RunScale measured; `federa sim --output json`
// prints it as its last line.
type ScaleResult struct {
	Status          string  `json:"status"`
	Message         string  `json:"message,omitempty"`
	Sites           int     `json:"sites"`
	Rounds          int     `json:"rounds"`
	RoundsCompleted int     `json:"rounds_completed"`
	Params          int64   `json:"params"`
	ElapsedSeconds  float64 `json:"elapsed_seconds"`
	// StartSeconds is the time to issue identities and connect every
	// site; JobSeconds is from submit to the job's end; RoundSeconds the
	// median of the rounds' own durations.
	StartSeconds float64 `json:"start_seconds"`
	JobSeconds   float64 `json:"job_seconds"`
	RoundSeconds float64 `json:"round_seconds_median"`
	// CoordinatorPeakHeapBytes is the process's peak live heap while the
	// job ran, sampled every 20ms. The sites run in the same process, so
	// it bounds the coordinator's from above; HeapPerSiteBytes is it
	// divided by the sites.
	CoordinatorPeakHeapBytes uint64 `json:"coordinator_peak_heap_bytes"`
	HeapPerSiteBytes         uint64 `json:"heap_per_site_bytes"`
	// IdleHeapBytes is the live heap once every site is connected,
	// before the job: what the sites and their streams hold at rest.
	IdleHeapBytes uint64 `json:"idle_heap_bytes"`
}

// RunScale starts a federation of opts.Sites sites in this process — each
// a site agent with its own identity, state directory and a tiny
// synthetic CSV, talking to the coordinator over real gRPC and mTLS on
// loopback — runs one training job over all of them and reports what it
// cost. A job that fails is a result with Status "failed", not an error;
// an error means the federation could not be started or watched.
func RunScale(ctx context.Context, opts ScaleOptions) (*ScaleResult, error) {
	if opts.Dir == "" {
		return nil, errors.New("sim: ScaleOptions.Dir is required")
	}
	opts.Sites = cmpOr(opts.Sites, 10)
	opts.Rounds = cmpOr(opts.Rounds, 5)
	opts.Params = cmpOr(opts.Params, 64)
	opts.RowsPerSite = cmpOr(opts.RowsPerSite, 24)
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Minute
	}
	switch {
	case opts.Sites < 1:
		return nil, fmt.Errorf("sim: sites %d: want at least 1", opts.Sites)
	case opts.Rounds < 1:
		return nil, fmt.Errorf("sim: rounds %d: want at least 1", opts.Rounds)
	case opts.Params < 4:
		return nil, fmt.Errorf("sim: params %d: want at least 4 (a binary logistic regression over one feature)", opts.Params)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	t0 := time.Now()
	features := max(opts.Params/2-1, 1)
	specs, err := writeScaleData(filepath.Join(opts.Dir, "data"), opts.Sites, features, opts.RowsPerSite)
	if err != nil {
		return nil, err
	}
	// Every site shares this process's cores, so while a thousand of
	// them evaluate their policies at once a heartbeat or a handshake can
	// wait its turn for seconds: an artefact of the simulation (deployed
	// sites bring their own cores), so the intervals grow with the fleet.
	load := time.Duration(opts.Sites)
	n, err := Start(Options{
		Dir: opts.Dir, Sites: specs, Log: opts.Log, Heartbeat: max(5*time.Second, load*50*time.Millisecond),
		Coordinator: func(c *coordinator.Config) {
			// Every site connects at once: give the handshakes room.
			c.SiteWaitTimeout = max(c.SiteWaitTimeout, 10*time.Minute)
			c.Limits.HandshakeTimeout = max(c.Limits.HandshakeTimeout, load*60*time.Millisecond)
			if opts.Coordinator != nil {
				opts.Coordinator(c)
			}
		},
		Site: func(_ string, c *site.Config) {
			// A thousand sites redialling at once after a hiccup must not
			// stampede: back off as a real fleet does.
			c.ReconnectMin, c.ReconnectMax = time.Second, 10*time.Second
		},
	})
	if err != nil {
		return nil, err
	}
	defer n.Close()
	if err := n.WaitConnected(ctx); err != nil {
		return nil, err
	}
	res := &ScaleResult{Sites: opts.Sites, Rounds: opts.Rounds, Params: int64(2 * (features + 1)), StartSeconds: time.Since(t0).Seconds()}
	if opts.Started != nil {
		opts.Started(n)
	}
	runtime.GC()
	res.IdleHeapBytes = liveHeap()
	var peak atomic.Uint64
	stopSampling := sampleHeap(&peak)
	job, err := n.runScaleJob(ctx, specs, opts.Rounds)
	stopSampling()
	res.JobSeconds = time.Since(t0).Seconds() - res.StartSeconds
	res.ElapsedSeconds = time.Since(t0).Seconds()
	if err != nil {
		return nil, err
	}
	res.CoordinatorPeakHeapBytes = peak.Load()
	res.HeapPerSiteBytes = res.CoordinatorPeakHeapBytes / uint64(opts.Sites)
	res.RoundsCompleted = int(job.GetRoundsCompleted())
	res.Status = strings.ToLower(strings.TrimPrefix(job.GetStatus().String(), "JOB_STATUS_"))
	if job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		res.Message = job.GetMessage()
	}
	var ds []float64
	for _, r := range job.GetRounds() {
		ds = append(ds, float64(r.GetDurationMs())/1000)
	}
	res.RoundSeconds = medianOf(ds)
	return res, nil
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// ScaleSiteName is the name of site i (0-based) of a RunScale federation.
func ScaleSiteName(i int) string { return fmt.Sprintf("eu/site-%04d", i+1) }

// writeScaleData writes each site's CSV: a binary label and features
// columns, the first shifted by the label and the rest noise, so the job
// has something to learn.
func writeScaleData(dir string, sites, features, rows int) ([]SiteSpec, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var header strings.Builder
	for f := range features {
		fmt.Fprintf(&header, "f%d,", f+1)
	}
	header.WriteString("label\n")
	out := make([]SiteSpec, 0, sites)
	for i := range sites {
		rng := rand.New(rand.NewPCG(uint64(i)+1, 7))
		var b strings.Builder
		b.WriteString(header.String())
		for r := range rows {
			// Half the rows of each class, so each class clears the default
			// policy's min_records at every site.
			label, mean := "pos", 1.0
			if r%2 == 1 {
				label, mean = "neg", -1.0
			}
			fmt.Fprintf(&b, "%.3f,", mean+rng.NormFloat64())
			for range features - 1 {
				fmt.Fprintf(&b, "%.3f,", rng.NormFloat64())
			}
			fmt.Fprintf(&b, "%s\n", label)
		}
		path := filepath.Join(dir, fmt.Sprintf("site-%04d.csv", i+1))
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		out = append(out, SiteSpec{Name: ScaleSiteName(i), Dataset: "synthetic", Path: path})
	}
	return out, nil
}

// runScaleJob submits the job as alice and waits for it to end, polling
// gently so the poll does not compete with the sites.
func (n *Net) runScaleJob(ctx context.Context, specs []SiteSpec, rounds int) (*federav1.Job, error) {
	id, err := attest.LoadIdentity(n.IdentityDir("alice"))
	if err != nil {
		return nil, err
	}
	// gRPC's default 4 MiB receive limit: GetJob sends a bounded view of
	// the record however many sites the job has (coordinator/view.go).
	cc, err := grpc.NewClient(n.addr, grpc.WithTransportCredentials(attest.ClientCredentials(id, attest.AllowIDs(attest.CoordinatorID(n.td)), nil)))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	c := federav1.NewJobServiceClient(cc)
	j := &spec.Job{
		Name: "scale", Dataset: "synthetic", Label: "label", Model: spec.Model{Type: "logreg"},
		Rounds: rounds, LocalEpochs: 1, BatchSize: 16, LearningRate: 0.1, MinSites: len(specs),
		RoundTimeout: spec.Duration(10 * time.Minute), Seed: 1,
	}
	for _, s := range specs {
		j.Sites = append(j.Sites, s.Name)
	}
	j.ApplyDefaults()
	job, err := c.SubmitJob(ctx, &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		return nil, fmt.Errorf("sim: submit: %w", err)
	}
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sim: job %s did not end: %w (last poll error: %v)", job.GetId(), ctx.Err(), lastErr)
		case <-time.After(250 * time.Millisecond):
		}
		got, err := c.GetJob(ctx, &federav1.GetJobRequest{Id: job.GetId()})
		if err != nil {
			// A loaded coordinator may time out the poll's handshake; the
			// job goes on, and so does the poll, until ctx ends.
			if status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded {
				lastErr = err
				continue
			}
			return nil, fmt.Errorf("sim: get job %s: %w", job.GetId(), err)
		}
		switch got.GetStatus() {
		case federav1.JobStatus_JOB_STATUS_SUCCEEDED, federav1.JobStatus_JOB_STATUS_FAILED, federav1.JobStatus_JOB_STATUS_CANCELLED:
			return got, nil
		}
	}
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

// liveHeap is the bytes of heap objects, live or not yet swept.
func liveHeap() uint64 {
	s := make([]metrics.Sample, 1)
	copy(s, heapSample)
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// sampleHeap records the largest heap seen into peak until stopped.
func sampleHeap(peak *atomic.Uint64) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if h := liveHeap(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-exited }
}
