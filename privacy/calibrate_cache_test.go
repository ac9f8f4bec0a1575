package privacy

import (
	"sync"
	"testing"
)

// TestCalibrateNoiseIsRememberedPerArguments: the remembered answer is the
// computed one, for exactly its arguments (a key missing one would hand a
// different job another job's σ), also when many ask at once.
func TestCalibrateNoiseIsRememberedPerArguments(t *testing.T) {
	zero, err := Zero(nil)
	if err != nil {
		t.Fatal(err)
	}
	args := []struct {
		eps, delta, q float64
		steps         int
	}{{2, 1e-5, 0.1, 10}, {2, 1e-5, 0.2, 10}, {2, 1e-5, 0.1, 11}, {3, 1e-5, 0.1, 10}, {2, 1e-6, 0.1, 10}}
	for _, a := range args {
		want, err := calibrate("test", zero, a.eps, a.delta, a.q, a.steps)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		got := make([]float64, 4)
		for i := range got {
			wg.Go(func() { got[i], _ = CalibrateNoise(a.eps, a.delta, a.q, a.steps, nil) })
		}
		wg.Wait()
		for _, g := range got {
			if g != want {
				t.Fatalf("%+v: remembered σ %v, computed %v", a, g, want)
			}
		}
	}
	if _, err := CalibrateNoise(0, 1e-5, 0.1, 10, nil); err == nil {
		t.Fatal("a bad ε was not an error the second time")
	}
	if _, err := CalibrateNoise(0, 1e-5, 0.1, 10, nil); err == nil {
		t.Fatal("a remembered bad ε stopped being an error")
	}
}
