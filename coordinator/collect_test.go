package coordinator

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCollect(t *testing.T) {
	t0 := time.Unix(1000, 0)
	deadline := t0.Add(time.Minute)
	type step struct {
		answer string
		lose   string
		tick   time.Duration // after t0; 0 = no tick
	}
	tests := []struct {
		name     string
		sites    []string
		min      int
		steps    []step
		want     Outcome
		answered []string
		missing  []string
		reason   string
	}{
		{name: "all answer", sites: []string{"a", "b", "c"}, min: 2,
			steps: []step{{answer: "a"}, {answer: "b"}, {answer: "c"}},
			want:  Done, answered: []string{"a", "b", "c"}},
		{name: "quorum met still waits for stragglers", sites: []string{"a", "b", "c"}, min: 2,
			steps: []step{{answer: "a"}, {answer: "b"}},
			want:  Waiting, answered: []string{"a", "b"}, missing: []string{"c"}},
		{name: "deadline closes with quorum", sites: []string{"a", "b", "c"}, min: 2,
			steps: []step{{answer: "a"}, {answer: "b"}, {tick: time.Minute}},
			want:  Done, answered: []string{"a", "b"}, missing: []string{"c"}},
		{name: "tick before deadline changes nothing", sites: []string{"a", "b"}, min: 1,
			steps: []step{{answer: "a"}, {tick: 59 * time.Second}},
			want:  Waiting},
		{name: "dead site settles the fan-out early", sites: []string{"a", "b", "c"}, min: 2,
			steps: []step{{answer: "a"}, {lose: "c"}, {answer: "b"}},
			want:  Done, answered: []string{"a", "b"}, missing: []string{"c"}},
		{name: "deadline without quorum fails", sites: []string{"a", "b", "c"}, min: 2,
			steps: []step{{answer: "a"}, {tick: 2 * time.Minute}},
			want:  Failed, reason: "1 of 3 sites answered, min_sites is 2 (b: no answer by the deadline; c: no answer by the deadline)"},
		{name: "quorum out of reach fails before the deadline", sites: []string{"a", "b", "c"}, min: 2,
			steps: []step{{lose: "a"}, {lose: "b"}},
			want:  Failed, reason: "0 of 3 sites answered, min_sites is 2 (a: lost; b: lost; c: no answer by the deadline)"},
		{name: "answers from strangers are ignored", sites: []string{"a"}, min: 1,
			steps: []step{{answer: "z"}},
			want:  Waiting},
		{name: "second answer is ignored", sites: []string{"a", "b"}, min: 1,
			steps: []step{{lose: "a"}, {answer: "a"}},
			want:  Waiting, missing: []string{"a", "b"}},
		{name: "no sites fails", sites: nil, min: 1, want: Failed},
		{name: "late answer after close is ignored", sites: []string{"a", "b"}, min: 1,
			steps: []step{{answer: "a"}, {tick: time.Minute}, {answer: "b"}},
			want:  Done, answered: []string{"a"}, missing: []string{"b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCollect[int](tt.sites, tt.min, deadline)
			for i, s := range tt.steps {
				switch {
				case s.answer != "":
					c.Answer(s.answer, i)
				case s.lose != "":
					c.Lose(s.lose, "lost")
				default:
					c.Tick(t0.Add(s.tick))
				}
			}
			if got := c.Outcome(); got != tt.want {
				t.Fatalf("outcome = %v, want %v (reason %q)", got, tt.want, c.Reason())
			}
			if tt.answered != nil && !reflect.DeepEqual(c.Answered(), tt.answered) {
				t.Errorf("answered = %v, want %v", c.Answered(), tt.answered)
			}
			if tt.missing != nil && !reflect.DeepEqual(c.Missing(), tt.missing) {
				t.Errorf("missing = %v, want %v", c.Missing(), tt.missing)
			}
			if tt.reason != "" && c.Reason() != tt.reason {
				t.Errorf("reason = %q, want %q", c.Reason(), tt.reason)
			}
		})
	}
}

func TestCollectAnswerReportsAcceptance(t *testing.T) {
	c := NewCollect[string]([]string{"eu/paris"}, 1, time.Unix(0, 0).Add(time.Hour))
	if !c.Answer("eu/paris", "w") {
		t.Fatal("first answer from an asked site was refused")
	}
	if c.Answer("eu/paris", "w2") {
		t.Fatal("second answer was accepted")
	}
	if got := c.Answers()["eu/paris"]; got != "w" {
		t.Fatalf("kept answer %q, want the first", got)
	}
	if !strings.Contains(c.Reason(), "1 of 1") {
		t.Fatalf("reason %q", c.Reason())
	}
}
