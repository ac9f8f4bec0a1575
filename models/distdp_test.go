package models

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// TestSumClippedGradientsIsThePerRowClippedSum checks, for every
// architecture, that a site's share is the sum of its rows' loss
// gradients (each checked against a central finite difference of the
// loss Evaluate reports, tensor by tensor, so a gradient filed under the
// wrong name fails), each clipped to the clip norm.
func TestSumClippedGradientsIsThePerRowClippedSum(t *testing.T) {
	Xc, yc := blobs(5, 12, 4, 3, 1.5)
	Xr := mat.DenseCopyOf(Xc)
	yr := make([]float64, len(yc))
	for i := range yr {
		yr[i] = 2*Xr.At(i, 0) - Xr.At(i, 2) + float64(yc[i])
	}
	for _, tc := range []struct {
		name string
		p    ArchParams
		X    *mat.Dense
		y    Targets
	}{
		{ArchLogReg, ArchParams{}, Xc, Targets{Classes: yc}},
		{ArchMLP, ArchParams{Hidden: []int{5}, Activation: actTanh}, Xc, Targets{Classes: yc}},
		{ArchLinReg, ArchParams{}, Xr, Targets{Values: yr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			arch, err := NewArch(tc.name, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			classes := 3
			if arch.Kind() == Regressor {
				classes = 0
			}
			w, err := arch.Init(4, classes)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			for _, tn := range w {
				for i := range tn.Data {
					tn.Data[i] = float32(0.5 * rng.NormFloat64())
				}
			}
			n, _ := tc.X.Dims()
			row := func(i int) (*mat.Dense, Targets) {
				x := mat.NewDense(1, 4, append([]float64(nil), tc.X.RawRowView(i)...))
				if tc.y.Classes != nil {
					return x, Targets{Classes: tc.y.Classes[i : i+1]}
				}
				return x, Targets{Values: tc.y.Values[i : i+1]}
			}
			// Each row's gradient by finite differences of its loss
			// (½ squared error for a regressor, as it trains).
			grads := make([]map[string][]float64, n)
			norms := make([]float64, n)
			for i := range n {
				x, y := row(i)
				loss := func() float64 {
					s, err := arch.Evaluate(w, x, y)
					if err != nil {
						t.Fatal(err)
					}
					if arch.Kind() == Regressor {
						return s.Loss / 2
					}
					return s.Loss
				}
				grads[i] = map[string][]float64{}
				for name, tn := range w {
					g := make([]float64, len(tn.Data))
					for j := range tn.Data {
						const h = 1e-2
						v := tn.Data[j]
						tn.Data[j] = v + h
						up := loss()
						tn.Data[j] = v - h
						down := loss()
						tn.Data[j] = v
						g[j] = (up - down) / (2 * h)
						norms[i] += g[j] * g[j]
					}
					grads[i][name] = g
				}
				norms[i] = math.Sqrt(norms[i])
			}
			clip := 0.0
			for _, v := range norms {
				clip += v / float64(n)
			}
			got, err := SumClippedGradients(arch, w, tc.X, tc.y, clip, 1, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if got.Sampled != n {
				t.Fatalf("sampled %d rows at q = 1, want %d", got.Sampled, n)
			}
			if len(got.Grad) != len(w) {
				t.Fatalf("%d tensors, want %d", len(got.Grad), len(w))
			}
			for name, tn := range w {
				g := got.Grad[name]
				if len(g) != len(tn.Data) {
					t.Fatalf("%s: %d values, want %d", name, len(g), len(tn.Data))
				}
				for j := range g {
					var want float64
					for i := range n {
						want += grads[i][name][j] * min(1, clip/norms[i])
					}
					if math.Abs(g[j]-want) > 2e-3*(1+math.Abs(want)) {
						t.Fatalf("%s[%d]: %v, want the clipped sum %v", name, j, g[j], want)
					}
				}
			}
			// A Poisson sample at q: each row in with probability q.
			var sampled int
			for s := range 400 {
				r, err := SumClippedGradients(arch, w, tc.X, tc.y, clip, 0.25, rand.New(rand.NewPCG(uint64(s), 9)))
				if err != nil {
					t.Fatal(err)
				}
				sampled += r.Sampled
			}
			if mean := float64(sampled) / 400; math.Abs(mean-0.25*float64(n)) > 0.3 {
				t.Fatalf("mean sample %.2f rows at q = 0.25 of %d, want %.2f", mean, n, 0.25*float64(n))
			}
		})
	}
	if _, err := SumClippedGradients(logRegArch{}, NewLogReg(4, 3), Xc, Targets{Classes: yc}, 1, 0, rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Fatal("q = 0 accepted")
	}
}
