package chaos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A DP job whose update (an MLP 30-4096-64-2: 385k weights, 1.5 MB)
// travels in two chunks.
const bigDPJob = `name: dp-chunked
dataset: breast-cancer
label: label
model: {type: mlp, hidden: [4096, 64]}
rounds: 3
local_epochs: 1
batch_size: 32
learning_rate: 0.05
min_sites: 2
round_timeout: 2m
seed: 7
privacy:
  dp: {epsilon: 8, delta: 1e-5, clip_norm: 1.0}
`

// TestSiteKill9WhileSendingChunkedUpdate: us/boston's link runs through
// toxiproxy at 1 MB/s, so its 1.5 MB DP update takes more than a second to
// leave. Once its egress journal shows the train release of a round (the
// journal is written just before the first chunk goes out), it is SIGKILLed
// at a random moment of the transfer and started again on the same state
// directory. The job completes on the two other sites' quorum; the site
// comes back with its journal and privacy ledger readable, and every
// update its journal says left is paid for in its ledger: the budget is
// never under-counted.
func TestSiteKill9WhileSendingChunkedUpdate(t *testing.T) {
	t.Parallel()
	n := (trials(t, 5) + 4) / 5
	rng := seed(t)
	for i := 0; i < n; i++ {
		t.Run(fmt.Sprintf("trial%d", i), func(t *testing.T) { siteKillTrial(t, i, rng) })
	}
	t.Logf("%d trials", n)
}

func siteKillTrial(t *testing.T, i int, rng *rand.Rand) {
	{
		// A federation per trial: each DP job spends ε 8, the default
		// policy's lifetime budget for a dataset.
		f := startFederation(t, options{siteAddr: func(site, coord string) string {
			if site != "us/boston" {
				return coord
			}
			proxy := newProxy(t, "boston", hostIPOf(coord)+":0", coord)
			toxic(t, proxy, `{"name":"slow","type":"bandwidth","stream":"upstream","attributes":{"rate":1024}}`)
			return proxy.Listen
		}})
		h := newHistory()
		jobs := map[string]int{}
		journal := filepath.Join(f.siteState["us/boston"], "egress.jsonl")
		f.waitSites()
		id := f.submit(bigDPJob)
		jobs[id] = 3
		var sending egressRecord
		for deadline := time.Now().Add(3 * time.Minute); sending.Job == ""; {
			recs, err := readJournal(journal)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Job == id && r.Kind == "TASK_KIND_TRAIN" && r.Allowed {
					sending = r
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("us/boston never released a train update of job %s", id)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if sending.Bytes < 1<<20 {
			t.Fatalf("the release is %d bytes: not chunked (want > 1 MiB)", sending.Bytes)
		}
		delay := time.Duration(rng.Int64N(int64(time.Second)))
		time.Sleep(delay)
		f.sites["us/boston"].kill9()
		paid := ledgerPaid(t, f, "us/boston", id)
		t.Logf("trial %d: killed us/boston %s into sending round %d's %d-byte update; its ledger had paid rounds %v", i, delay.Round(time.Millisecond), sending.Round, sending.Bytes, paid)
		f.sites["us/boston"].start()
		j := f.waitEnd(h, id, 5*time.Minute)
		if j.Status != "SUCCEEDED" {
			t.Errorf("trial %d: job %s: %s", i, j.Status, j.Message)
		}
		for !h.snap(f) {
			time.Sleep(100 * time.Millisecond)
		}
		if v := h.check(f, jobs, true); len(v) > 0 {
			for _, x := range v {
				t.Error(x)
			}
			t.Fatalf("trial %d: %d invariant violations", i, len(v))
		}
	}
}

// ledgerPaid reads the rounds site has paid for in job, from its ledger
// file as a crash left it.
func ledgerPaid(t *testing.T, f *federation, site, job string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.siteState[site], "privacy.json"))
	if err != nil {
		t.Fatalf("%s: privacy ledger after the kill: %v", site, err)
	}
	var lf ledgerFile
	if err := json.Unmarshal(b, &lf); err != nil {
		t.Fatalf("%s: privacy ledger after the kill does not parse: %v", site, err)
	}
	return lf.Datasets["breast-cancer"][job].Paid
}

// hostIPOf is the bridge address of the lab an address (ip:port) is on.
func hostIPOf(addr string) string {
	var a, b, c, d int
	fmt.Sscanf(addr, "%d.%d.%d.%d", &a, &b, &c, &d)
	return fmt.Sprintf("%d.%d.%d.1", a, b, c)
}
