package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/federa-dev/federa/models
cpu: Test CPU
BenchmarkFedAvg/N=3/P=1e+06-2   	10	 1000 ns/op	 0.70 rate_vs_copy
BenchmarkFedAvg/N=3/P=1e+06-2   	10	 1000 ns/op	 0.90 rate_vs_copy
BenchmarkFedAvg/N=3/P=1e+06-2   	10	 1000 ns/op	 0.75 rate_vs_copy
BenchmarkFedAvg/N=3/P=1e+05-2   	10	 1000 ns/op	 0.10 rate_vs_copy
PASS
ok  	github.com/federa-dev/federa/models	0.668s
pkg: github.com/federa-dev/federa/sim
BenchmarkDemoRound-2   	1	 1000 ns/op	 0.5 policy_%_of_round
BenchmarkDemoRound-2   	1	 1000 ns/op	 0.7 policy_%_of_round
`

// TestGoalTable: medians over the runs, a goal missed says so, one that
// holds says so, a goal's metric the run lacks is "not measured", and a
// benchmark the goal does not name (100k parameters) is not in it.
func TestGoalTable(t *testing.T) {
	r, err := read(strings.NewReader(sample), "sample")
	if err != nil {
		t.Fatal(err)
	}
	table := r.goalTable("sample")
	for _, want := range []string{
		"FedAvg/N=3/P=1e+06 `rate_vs_copy` | 0.75 (3) | >= 0.8 | **no** |",
		"DemoRound `policy_%_of_round` | 0.6 (2) | < 1 | yes |",
		"`round_vs_transfer` | not measured |",
		"Test CPU",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("goal table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "P=1e+05") {
		t.Errorf("the 100k-parameter FedAvg is not a goal's benchmark:\n%s", table)
	}
	out, err := replaceSection([]byte("a\n"+startMarker+"\nold\n"+endMarker+"\nb\n"), "new\n")
	if err != nil || string(out) != "a\n"+startMarker+"\nnew\n"+endMarker+"\nb\n" {
		t.Errorf("replaceSection: %q, %v", out, err)
	}
	if _, err := replaceSection([]byte("no markers"), "x"); err == nil {
		t.Error("replaceSection without markers succeeded")
	}
}
