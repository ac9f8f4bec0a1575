package site

import (
	"strings"
	"testing"
)

// TestSecAggUnmasksOneSurvivorSetPerRound: a site that unmasked a round
// for one survivor set refuses another for the same round, also after a
// restart, so a coordinator cannot subtract two sums of one round.
func TestSecAggUnmasksOneSurvivorSetPerRound(t *testing.T) {
	dir := t.TempDir()
	s, err := openSecAggRounds(dir)
	if err != nil {
		t.Fatal(err)
	}
	ab, abc := []string{"eu/a", "eu/b"}, []string{"eu/a", "eu/b", "eu/c"}
	if err := s.checkView("job-1", 3, abc); err != nil {
		t.Fatal(err)
	}
	if err := s.checkView("job-1", 3, abc); err != nil {
		t.Fatalf("the same survivors again: %v", err)
	}
	if err := s.checkView("job-1", 3, ab); err == nil || !strings.Contains(err.Error(), "refusing to unmask it for [eu/a,eu/b]") {
		t.Fatalf("a second survivor set: %v", err)
	}
	if err := s.checkView("job-1", 4, ab); err != nil {
		t.Fatalf("another round: %v", err)
	}
	again, err := openSecAggRounds(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.checkView("job-1", 3, ab); err == nil {
		t.Fatal("after a restart the site unmasked round 3 for a second survivor set")
	}
	if err := again.checkView("job-1", 4, ab); err != nil {
		t.Fatalf("after a restart, round 4's own set: %v", err)
	}
}
