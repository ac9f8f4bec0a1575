package chaos

import (
	"os"
	"slices"
	"testing"
	"time"
)

// slowJob's model is an MLP 30-4096-64-2 (1.5 MB of weights each way), or
// with FEDERA_CHAOS_BIG=1 (make chaos) 30-4096-3000-2: 12.4M weights, 50 MB.
func slowJob() (spec string, mb float64) {
	hidden, mb := "[4096, 64]", 1.5
	if os.Getenv("FEDERA_CHAOS_BIG") == "1" {
		hidden, mb = "[4096, 3000]", 50
	}
	return `name: slow-link
dataset: breast-cancer
label: label
model: {type: mlp, hidden: ` + hidden + `}
rounds: 1
local_epochs: 1
batch_size: 32
learning_rate: 0.05
min_sites: 2
round_timeout: 10m
seed: 7
`, mb
}

// TestSlowLink: us/boston reaches the coordinator through toxiproxy at
// 1 MB/s with 200 ms latency, both ways. The job completes, and the slow
// site takes part in every round — a straggler inside the deadline, not a
// failure.
func TestSlowLink(t *testing.T) {
	t.Parallel()
	f := startFederation(t, options{siteAddr: func(site, coord string) string {
		if site != "us/boston" {
			return coord
		}
		p := newProxy(t, "boston", hostIPOf(coord)+":0", coord)
		for _, dir := range []string{"upstream", "downstream"} {
			toxic(t, p, `{"name":"slow-`+dir+`","type":"bandwidth","stream":"`+dir+`","attributes":{"rate":1024}}`)
			toxic(t, p, `{"name":"late-`+dir+`","type":"latency","stream":"`+dir+`","attributes":{"latency":200}}`)
		}
		return p.Listen
	}})
	h := newHistory()
	f.waitSites()
	spec, mb := slowJob()
	start := time.Now()
	id := f.submit(spec)
	j := f.waitEnd(h, id, 15*time.Minute)
	took := time.Since(start)
	if j.Status != "SUCCEEDED" {
		t.Fatalf("job over the slow link: %s: %s", j.Status, j.Message)
	}
	for _, r := range j.Rounds {
		if !slices.Contains(r.Participants, "us/boston") {
			t.Errorf("round %d: the slow site was dropped (participants %v, missing %v)", r.Round, r.Participants, r.Missing)
		}
		t.Logf("round %d: %s ms, train phase %.0f ms (%.1f MB model, 1 MB/s + 200 ms to us/boston)", r.Round, r.DurationMs, r.TrainPhaseMs, mb)
	}
	t.Logf("job took %s", took.Round(time.Millisecond))
	for !h.snap(f) {
		time.Sleep(100 * time.Millisecond)
	}
	if v := h.check(f, map[string]int{id: 1}, false); len(v) > 0 {
		for _, x := range v {
			t.Error(x)
		}
	}
}
