package models

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestCalibrateDP(t *testing.T) {
	p, err := CalibrateDP(8, 1e-5, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := 2 * math.Sqrt(2*math.Log(1.25/1e-6)) / 0.8
	if math.Abs(p.Sigma-want) > 1e-12 || p.RoundEpsilon != 0.8 {
		t.Fatalf("sigma %v (want %v), round ε %v", p.Sigma, want, p.RoundEpsilon)
	}
	// More budget, less noise; more rounds, more noise.
	p2, _ := CalibrateDP(16, 1e-5, 1, 10)
	p3, _ := CalibrateDP(8, 1e-5, 1, 20)
	if !(p2.Sigma < p.Sigma && p3.Sigma > p.Sigma) {
		t.Fatalf("noise does not follow the budget: %v %v %v", p.Sigma, p2.Sigma, p3.Sigma)
	}
	for _, bad := range [][4]float64{{0, 1e-5, 1, 1}, {1, 0, 1, 1}, {1, 1e-5, 0, 1}, {1, 1e-5, 1, 0}, {math.NaN(), 1e-5, 1, 1}} {
		if _, err := CalibrateDP(bad[0], bad[1], bad[2], int(bad[3])); err == nil {
			t.Errorf("CalibrateDP%v accepted", bad)
		}
	}
}

func TestPrivatizeClipsAndNoises(t *testing.T) {
	global := NewLogReg(3, 2)
	local := global.Clone()
	for _, tt := range local {
		for i := range tt.Data {
			tt.Data[i] = 10 // a huge update: norm sqrt(8)*10
		}
	}
	// Without noise the released delta has norm exactly clip.
	out, err := Privatize(global, local, DPParams{Clip: 1, Sigma: 0}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	var n2 float64
	for _, tt := range out {
		for _, v := range tt.Data {
			n2 += float64(v) * float64(v)
		}
	}
	if math.Abs(math.Sqrt(n2)-1) > 1e-6 {
		t.Fatalf("clipped norm %v, want 1", math.Sqrt(n2))
	}
	if local[WeightName].Data[0] != 10 || global[WeightName].Data[0] != 0 {
		t.Fatal("Privatize mutated its inputs")
	}
	// With noise, coordinates spread with the calibrated sigma.
	big := Weights{WeightName: {Name: WeightName, Shape: []int{100, 100}, Data: make([]float32, 10000)}, BiasName: {Name: BiasName, Shape: []int{100}, Data: make([]float32, 100)}}
	noisy, err := Privatize(big, big.Clone(), DPParams{Clip: 1, Sigma: 0.5}, rand.New(rand.NewPCG(2, 2)))
	if err != nil {
		t.Fatal(err)
	}
	var s2 float64
	for _, v := range noisy[WeightName].Data {
		s2 += float64(v) * float64(v)
	}
	if sd := math.Sqrt(s2 / 10000); math.Abs(sd-0.5) > 0.02 {
		t.Fatalf("noise sd %v, want 0.5", sd)
	}
	if _, err := Privatize(global, NewLogReg(4, 2), DPParams{Clip: 1}, rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Fatal("shape mismatch accepted")
	}
}
