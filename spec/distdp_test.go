package spec

import "testing"

const distDP = "privacy: {secure_aggregation: true, dp: {epsilon: 4, delta: 1e-5, clip_norm: 1, noise: distributed, sampling_rate: 0.05}}\n"

func TestParseDistributedDP(t *testing.T) {
	j, err := Parse("job.yaml", []byte(minimal+distDP))
	if err != nil {
		t.Fatal(err)
	}
	if dp := j.Privacy.DP; dp.Noise != NoiseDistributed || dp.SamplingRate != 0.05 {
		t.Fatalf("parsed %+v", dp)
	}
	if !DistributedDP(j.Proto()) {
		t.Fatal("the wire spec lost distributed noise")
	}
	if back := FromProto(j.Proto()).Privacy.DP; *back != *j.Privacy.DP {
		t.Fatalf("through the wire %+v, want %+v", back, j.Privacy.DP)
	}
	local, err := Parse("job.yaml", []byte(minimal+"privacy: {dp: {epsilon: 4, delta: 1e-5, clip_norm: 1}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if DistributedDP(local.Proto()) {
		t.Fatal("local noise read as distributed")
	}
}

func TestParseDistributedDPErrors(t *testing.T) {
	dp := func(extra string) string {
		return minimal + "privacy: {secure_aggregation: true, dp: {epsilon: 4, delta: 1e-5, clip_norm: 1" + extra + "}}\n"
	}
	checkParseErrors(t, []parseErrorCase{
		{"unknown placement", dp(", noise: central"), []string{"field privacy.dp.noise:", `"central" is not valid`, "local", "distributed"}},
		{"no secure aggregation", minimal + "privacy: {dp: {epsilon: 4, delta: 1e-5, clip_norm: 1, noise: distributed, sampling_rate: 0.1}}\n", []string{"field privacy.dp.noise:", "needs privacy.secure_aggregation"}},
		{"no sampling rate", dp(", noise: distributed"), []string{"field privacy.dp.sampling_rate:", "0 is out of range", "0 < sampling_rate ≤ 1"}},
		{"sampling rate above one", dp(", noise: distributed, sampling_rate: 1.5"), []string{"field privacy.dp.sampling_rate:", "1.5 is out of range"}},
		{"sampling rate with local noise", dp(", sampling_rate: 0.1"), []string{"field privacy.dp.sampling_rate:", "only distributed noise"}},
		{"several epochs", dp(", noise: distributed, sampling_rate: 0.1") + "local_epochs: 3\n", []string{"field local_epochs:", "one DP-SGD step"}},
		{"adam", dp(", noise: distributed, sampling_rate: 0.1") + "optimizer: adam\n", []string{"field optimizer:", "only plain sgd"}},
		{"l2", dp(", noise: distributed, sampling_rate: 0.1") + "l2: 0.01\n", []string{"field l2:", "leave l2 out"}},
		{"unknown dp field", dp(", placement: distributed"), []string{"privacy.dp (valid: epsilon, delta, clip_norm, noise, sampling_rate)"}},
	})
}
