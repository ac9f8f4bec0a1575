package privacy_test

import (
	"encoding/json"
	"fmt"

	"github.com/federa-dev/federa/privacy"
)

// A dataset's ledger across two jobs: account the first, persist the curve,
// then size the second job's noise so the total stays within ε = 3 at
// δ = 1e-5.
func Example() {
	const delta = 1e-5

	// Job 1: DP-SGD on 60000 records, batches of 256 (q = 256/60000),
	// noise multiplier 1.1, 20 epochs.
	q := 256.0 / 60000
	job1, err := privacy.SampledGaussian(q, 1.1, 20*60000/256, nil)
	if err != nil {
		panic(err)
	}
	eps, order, _ := job1.Epsilon(delta)
	fmt.Printf("after job 1: ε = %.2f (order %v)\n", eps, order)

	// The site stores the ledger between jobs (and across restarts).
	saved, _ := json.Marshal(job1)
	var ledger privacy.RDP
	if err := json.Unmarshal(saved, &ledger); err != nil {
		panic(err)
	}

	// Job 2: 10 more epochs, with the least noise that keeps the total
	// within ε = 3.
	steps := 10 * 60000 / 256
	sigma, err := privacy.CalibrateNoiseAfter(ledger, 3, delta, q, steps)
	if err != nil {
		panic(err)
	}
	job2, _ := privacy.SampledGaussian(q, sigma, steps, ledger.Orders)
	ledger, _ = ledger.Compose(job2)
	eps, _, _ = ledger.Epsilon(delta)
	fmt.Printf("job 2 noise multiplier %.3f; total ε = %.4f, within budget: %v\n", sigma, eps, eps <= 3)
	// Output:
	// after job 1: ε = 1.46 (order 12)
	// job 2 noise multiplier 0.770; total ε = 3.0000, within budget: true
}
