package chaos

import (
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestJobModel: the grow-only job register accepts reads that only ever
// see rounds added (also when two reads overlap in time and answer out of
// order), and refuses a lost round, a round that changed, and a job that
// ran on after it ended. It runs without namespaces.
func TestJobModel(t *testing.T) {
	op := func(call, ret int64, out string) porcupine.Operation {
		// R and S: running and succeeded.
		out = strings.NewReplacer("R", "RUNNING", "S", "SUCCEEDED").Replace(out)
		return porcupine.Operation{Input: "job", Call: call, Return: ret, Output: out}
	}
	for _, tc := range []struct {
		name string
		ops  []porcupine.Operation
		ok   bool
	}{
		{"grows", []porcupine.Operation{op(0, 1, "R"), op(2, 3, "R|1:a:10"), op(4, 5, "R|1:a:10|2:a:12"), op(6, 7, "S|1:a:10|2:a:12")}, true},
		{"overlapping reads answer out of order", []porcupine.Operation{op(0, 10, "R|1:a:10|2:a:12"), op(1, 9, "R|1:a:10")}, true},
		{"a completed round lost", []porcupine.Operation{op(0, 1, "R|1:a:10|2:a:12"), op(2, 3, "R|1:a:10")}, false},
		{"a completed round redone differently", []porcupine.Operation{op(0, 1, "R|1:a:10|2:a:12"), op(2, 3, "R|1:a:10|2:a+b:15")}, false},
		{"rounds after the end", []porcupine.Operation{op(0, 1, "S|1:a:10"), op(2, 3, "S|1:a:10|2:a:12")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(jobModel, tc.ops); got != tc.ok {
				t.Fatalf("linearizable = %v, want %v", got, tc.ok)
			}
		})
	}
}
