package main

import (
	"slices"
	"testing"
)

// TestSplit: every row goes to exactly one site, each class is dealt out
// whole, and the same seed gives the same split.
func TestSplit(t *testing.T) {
	labels := make([]byte, 5000)
	for i := range labels {
		labels[i] = byte(i % 10)
	}
	a := split(labels, 10, 10, 7, 0.5)
	b := split(labels, 10, 10, 7, 0.5)
	seen := make([]bool, len(labels))
	for s := range a {
		if !slices.Equal(a[s], b[s]) {
			t.Fatalf("site %d differs between two runs with the same seed", s)
		}
		if !slices.IsSorted(a[s]) {
			t.Fatalf("site %d rows not in source order", s)
		}
		for _, i := range a[s] {
			if seen[i] {
				t.Fatalf("row %d at two sites", i)
			}
			seen[i] = true
		}
	}
	if slices.Contains(seen, false) {
		t.Fatal("a row is at no site")
	}
	if c := split(labels, 10, 10, 8, 0.5); slices.Equal(c[0], a[0]) && slices.Equal(c[1], a[1]) {
		t.Fatal("another seed gave the same split")
	}
}

func TestLargestRemainder(t *testing.T) {
	q := largestRemainder([]float64{1, 1, 1}, 3, 10)
	if q[0]+q[1]+q[2] != 10 || slices.Max(q)-slices.Min(q) > 1 {
		t.Fatalf("quota %v", q)
	}
}
