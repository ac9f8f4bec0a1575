package models

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// TestClippedSumIsPerRowClipping checks the kernel's clipped sum against
// clipping each row's gradient computed on its own (a batch of one row).
func TestClippedSumIsPerRowClipping(t *testing.T) {
	X, y := blobs(11, 40, 5, 3, 1.5)
	for _, tc := range []struct {
		name   string
		hidden []int
		act    string
	}{{"logreg", nil, actReLU}, {"relu-1", []int{6}, actReLU}, {"tanh-2", []int{6, 4}, actTanh}} {
		t.Run(tc.name, func(t *testing.T) {
			sizes := append(append([]int{5}, tc.hidden...), 3)
			net := &mlpNet{sizes: sizes, tanh: tc.act == actTanh}
			rng := rand.New(rand.NewPCG(1, 2))
			for l := range len(sizes) - 1 {
				w := make([]float64, sizes[l+1]*sizes[l])
				for i := range w {
					w[i] = rng.NormFloat64()
				}
				b := make([]float64, sizes[l+1])
				for i := range b {
					b[i] = rng.NormFloat64()
				}
				net.w, net.b = append(net.w, mat.NewDense(sizes[l+1], sizes[l], w)), append(net.b, b)
			}
			rows := []int{0, 3, 7, 8, 15, 22, 39}
			// The bound sits between the rows' norms, so some are clipped
			// and some are not.
			var norms []float64
			probe := newMLPWork(net, 1)
			for _, r := range rows {
				net.gradient(probe, X, y, []int{r}, 0, 0, nil)
				var sq float64
				for l := range net.w {
					sq += mat.Norm(probe.gw[l], 2) * mat.Norm(probe.gw[l], 2)
					for _, v := range probe.gb[l] {
						sq += v * v
					}
				}
				norms = append(norms, math.Sqrt(sq))
			}
			slices.Sort(norms)
			clip := (norms[2] + norms[3]) / 2
			// Brute force: each row alone, its norm over every parameter.
			wantW, wantB := make([]*mat.Dense, len(net.w)), make([][]float64, len(net.w))
			for l := range net.w {
				r, c := net.w[l].Dims()
				wantW[l], wantB[l] = mat.NewDense(r, c, nil), make([]float64, r)
			}
			clipped := 0
			one := newMLPWork(net, 1)
			for _, r := range rows {
				net.gradient(one, X, y, []int{r}, 0, 0, nil)
				var sq float64
				for l := range net.w {
					for _, v := range one.gw[l].RawMatrix().Data {
						sq += v * v
					}
					for _, v := range one.gb[l] {
						sq += v * v
					}
				}
				f := 1.0
				if norm := math.Sqrt(sq); norm > clip {
					f, clipped = clip/norm, clipped+1
				}
				for l := range net.w {
					var s mat.Dense
					s.Scale(f, one.gw[l])
					wantW[l].Add(wantW[l], &s)
					for i, v := range one.gb[l] {
						wantB[l][i] += f * v
					}
				}
			}
			if clipped == 0 || clipped == len(rows) {
				t.Fatalf("%d of %d rows clipped: the test must have rows on both sides of the bound", clipped, len(rows))
			}
			wk := newMLPWork(net, len(rows))
			net.clippedSum(wk, X, y, rows, clip)
			for l := range net.w {
				if !mat.EqualApprox(wk.gw[l], wantW[l], 1e-12) {
					t.Errorf("layer %d weights: kernel\n%v\nper-row\n%v", l, mat.Formatted(wk.gw[l]), mat.Formatted(wantW[l]))
				}
				for i := range wantB[l] {
					if math.Abs(wk.gb[l][i]-wantB[l][i]) > 1e-12 {
						t.Errorf("layer %d bias %d: kernel %v, per-row %v", l, i, wk.gb[l][i], wantB[l][i])
					}
				}
			}
		})
	}
}

// TestDPNoiseHasTheCalibratedScale: with no rows sampled, a step's
// gradient is pure noise of standard deviation σ·C/(q·n).
func TestDPNoiseHasTheCalibratedScale(t *testing.T) {
	net := &mlpNet{sizes: []int{30, 20}, w: []*mat.Dense{mat.NewDense(20, 30, nil)}, b: [][]float64{make([]float64, 20)}}
	wk := newMLPWork(net, 1)
	dp := &DPSGD{ClipNorm: 0.5, NoiseMultiplier: 2, Noise: rand.New(rand.NewPCG(5, 6))}
	const denom = 8.0
	var sum, sq float64
	var k int
	for range 50 {
		net.dpGradient(wk, nil, nil, nil, dp, denom, 0, 0, nil)
		for _, v := range wk.gw[0].RawMatrix().Data {
			sum, sq, k = sum+v, sq+v*v, k+1
		}
		for _, v := range wk.gb[0] {
			sum, sq, k = sum+v, sq+v*v, k+1
		}
	}
	mean := sum / float64(k)
	sd := math.Sqrt(sq/float64(k) - mean*mean)
	want := dp.NoiseMultiplier * dp.ClipNorm / denom
	if math.Abs(sd-want)/want > 0.03 || math.Abs(mean) > 4*want/math.Sqrt(float64(k)) {
		t.Errorf("noise mean %.5f sd %.5f over %d draws, want 0 and %.5f", mean, sd, k, want)
	}
}

func TestDPSteps(t *testing.T) {
	for _, tc := range []struct {
		n, batch, epochs int
		q                float64
		steps            int
	}{{1000, 32, 2, 0.032, 64}, {10, 32, 3, 1, 3}, {100, 100, 1, 1, 1}, {0, 32, 1, 0, 0}} {
		if q, s := DPSteps(tc.n, tc.batch, tc.epochs); q != tc.q || s != tc.steps {
			t.Errorf("DPSteps(%d, %d, %d) = %v, %d; want %v, %d", tc.n, tc.batch, tc.epochs, q, s, tc.q, tc.steps)
		}
	}
}

// TestDPSGDLearnsAndRefusesBadConfig trains every architecture with DP-SGD:
// a modest noise multiplier still learns, the noise source is the only
// randomness (same source state, same weights), and bad settings are
// refused naming the setting.
func TestDPSGDLearnsAndRefusesBadConfig(t *testing.T) {
	all, ally := blobs(3, 900, 4, 3, 3)
	X, y := mat.DenseCopyOf(all.Slice(0, 600, 0, 4)), ally[:600]
	Xt, yt := mat.DenseCopyOf(all.Slice(600, 900, 0, 4)), ally[600:]
	for _, name := range []string{ArchLogReg, ArchMLP} {
		p := ArchParams{}
		if name == ArchMLP {
			p = ArchParams{Hidden: []int{8}}
		}
		a, err := NewArch(name, p)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := a.Init(4, 3)
		cfg := func(seed uint64) TrainConfig {
			return TrainConfig{Epochs: 5, BatchSize: 60, LearningRate: 0.5, Seed: 1,
				DP: &DPSGD{ClipNorm: 1, NoiseMultiplier: 1, Noise: rand.New(rand.NewPCG(seed, 9))}}
		}
		res, err := a.Train(t.Context(), w, X, ClassTargets(y), cfg(1))
		if err != nil {
			t.Fatal(err)
		}
		sc, err := a.Evaluate(res.Weights, Xt, ClassTargets(yt))
		if err != nil {
			t.Fatal(err)
		}
		if acc := float64(sc.Correct) / float64(sc.Rows); acc < 0.85 {
			t.Errorf("%s with DP-SGD σ=1: test accuracy %.3f, want ≥ 0.85", name, acc)
		}
		again, _ := a.Train(t.Context(), w, X, ClassTargets(y), cfg(1))
		other, _ := a.Train(t.Context(), w, X, ClassTargets(y), cfg(2))
		if !sameBits(res.Weights, again.Weights) || sameBits(res.Weights, other.Weights) {
			t.Errorf("%s: DP-SGD weights must follow the noise source exactly", name)
		}
		for _, bad := range []*DPSGD{{ClipNorm: 0, NoiseMultiplier: 1, Noise: rand.New(rand.NewPCG(1, 1))}, {ClipNorm: 1, NoiseMultiplier: 0, Noise: rand.New(rand.NewPCG(1, 1))}, {ClipNorm: 1, NoiseMultiplier: 1}} {
			c := cfg(1)
			c.DP = bad
			if _, err := a.Train(t.Context(), w, X, ClassTargets(y), c); err == nil {
				t.Errorf("%s trained with %+v", name, bad)
			}
		}
	}
	// linreg: a generous clip and little noise recover least squares.
	Xr, yr := linregData(800, 9)
	lr, _ := NewArch(ArchLinReg, ArchParams{})
	w, _ := lr.Init(3, 0)
	res, err := lr.Train(t.Context(), w, Xr, ValueTargets(yr), TrainConfig{Epochs: 20, BatchSize: 80, LearningRate: 0.1,
		DP: &DPSGD{ClipNorm: 20, NoiseMultiplier: 0.5, Noise: rand.New(rand.NewPCG(3, 3))}})
	if err != nil {
		t.Fatal(err)
	}
	want := olsFit(t, Xr, yr)
	got := append([]float64{float64(res.Weights[BiasName].Data[0])}, widen(res.Weights[WeightName].Data)...)
	for j := range want {
		if math.Abs(got[j]-want[j]) > 0.15 {
			t.Errorf("linreg DP-SGD coefficient %d = %.3f, least squares %.3f", j, got[j], want[j])
		}
	}
}

// TestPoissonSampleIsBernoulliPerRow: each row is chosen with probability
// q, independently of the others (checked on the rate per row and on pairs
// of neighbours, which gap sampling could correlate).
func TestPoissonSampleIsBernoulliPerRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	const n, q, trials = 50, 0.1, 40000
	hits := make([]int, n)
	var pairs, total int
	var rows []int
	for range trials {
		rows = poissonSample(rng, n, q, rows[:0])
		total += len(rows)
		for k, r := range rows {
			hits[r]++
			if k > 0 && rows[k-1] == r-1 {
				pairs++
			}
			if k > 0 && rows[k-1] >= r {
				t.Fatalf("rows out of order: %v", rows)
			}
		}
	}
	for r, h := range hits {
		if p := float64(h) / trials; math.Abs(p-q) > 5*math.Sqrt(q*(1-q)/trials) {
			t.Errorf("row %d chosen with rate %.4f, want %.2f", r, p, q)
		}
	}
	// Adjacent pairs: (n−1)·q² per trial if independent.
	if want := float64((n-1)*trials) * q * q; math.Abs(float64(pairs)-want) > 5*math.Sqrt(want) {
		t.Errorf("%d adjacent pairs, want about %.0f", pairs, want)
	}
	if got := poissonSample(rng, 7, 1, nil); len(got) != 7 {
		t.Errorf("q = 1 took %v", got)
	}
}
