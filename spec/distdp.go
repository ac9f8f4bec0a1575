package spec

import (
	"math"

	"github.com/federa-dev/federa/models"
)

// validateNoise checks where the job's DP noise is added. Distributed
// noise is sound only where the secure sum is a linear function of the
// sites' noisy shares: one DP-SGD step per round (one local epoch of one
// step, plain SGD), a sampling rate common to every site (so every site's
// accountant calibrates the same noise), and secure aggregation on.
func (dp *DP) validateNoise(j *Job, bad func(field, format string, args ...any)) {
	switch dp.Noise {
	case "", NoiseLocal:
		if dp.SamplingRate != 0 {
			bad("privacy.dp.sampling_rate", "is set, but only distributed noise (noise: %s) uses a job-wide sampling rate; local DP-SGD samples batch_size rows of each site", NoiseDistributed)
		}
		return
	case NoiseDistributed:
	default:
		bad("privacy.dp.noise", "%q is not valid; want %s (the default: each site noises its own update) or %s (with secure aggregation: each site adds a share, only the sum carries all of it)", dp.Noise, NoiseLocal, NoiseDistributed)
		return
	}
	const f = "privacy.dp.noise"
	if !j.Privacy.SecureAggregation.On {
		bad(f, "%s needs privacy.secure_aggregation: each site adds only a share of the noise, so its own update must never be seen; turn secure_aggregation on, or use noise: %s", NoiseDistributed, NoiseLocal)
	}
	if q := dp.SamplingRate; !(q > 0 && q <= 1) || math.IsNaN(q) {
		bad("privacy.dp.sampling_rate", "%v is out of range; distributed noise needs the job's Poisson sampling rate, 0 < sampling_rate ≤ 1 (each round samples each row of every site with it; e.g. 0.05)", q)
	}
	if j.LocalEpochs > 1 {
		bad("local_epochs", "%d with distributed DP noise: each round is one DP-SGD step over the union of the sites' rows; leave local_epochs out (or 1)", j.LocalEpochs)
	}
	if name := j.Optimizer.Name; name != "" && name != models.OptimizerSGD {
		bad("optimizer", "%s with distributed DP noise: the sites' noisy shares must add up linearly, which only plain sgd keeps; use optimizer: sgd, and a server optimizer (aggregator: fedadam) for adaptivity", name)
	}
	if j.L2 != 0 {
		bad("l2", "%v with distributed DP noise: the round's step is the secure sum alone; leave l2 out", j.L2)
	}
}
