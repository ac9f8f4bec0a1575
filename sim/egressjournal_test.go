package sim_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/spec"
)

// TestEgressJournalDigestIsOfWhatArrived: an auditor holding what reached
// the coordinator from a site can tie it to the site's egress journal.
// For every training release boston sent (its result, then its update in
// four chunks), the journal's bytes and sha256 are those of the
// messages as they arrived, each in its deterministic encoding, in
// order. The site encodes a release once and sends those bytes, so the
// digest is of what crossed the wire, not of a second encoding.
func TestEgressJournalDigestIsOfWhatArrived(t *testing.T) {
	const boston = "spiffe://federa.demo/site/us/boston"
	tap := &wireTap{}
	n, _ := startNet(t, sim.Options{Coordinator: withTap(tap)})
	j := demoSpec()
	j.Rounds, j.Model = 2, spec.Model{Type: benchFlat, Hidden: []int{600_000}} // two tensors of two chunks each
	if job := runJob(t, n, j); job.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job %s: %s", job.GetStatus(), job.GetMessage())
	}
	// What arrived from boston, per task: result and chunks, encoded.
	arrived := map[string][][]byte{}
	for _, m := range tap.from(boston) {
		id := m.GetResult().GetTaskId()
		if c := m.GetChunk(); c != nil {
			id = c.GetTransferId()
		}
		if id == "" {
			continue
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		arrived[id] = append(arrived[id], b)
	}
	f, err := os.Open(filepath.Join(n.SiteDir("us/boston"), "egress.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	trains := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			Task    string `json:"task"`
			Kind    string `json:"kind"`
			Bytes   int64  `json:"bytes"`
			SHA256  string `json:"sha256"`
			Allowed bool   `json:"egress_allowed"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("journal line %q: %v", sc.Text(), err)
		}
		msgs, ok := arrived[e.Task]
		if !ok {
			// A release still on its way when the job ended (an
			// evaluation's) is not judged; a training release is.
			if e.Kind == federav1.TaskKind_TASK_KIND_TRAIN.String() {
				t.Errorf("journal entry for training task %s: nothing of it reached the coordinator", e.Task)
			}
			continue
		}
		h := sha256.New()
		var n int64
		for _, b := range msgs {
			h.Write(b)
			n += int64(len(b))
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != e.SHA256 || n != e.Bytes {
			t.Errorf("task %s (%s): journal says %d bytes, %s; %d messages arrived: %d bytes, %s", e.Task, e.Kind, e.Bytes, e.SHA256, len(msgs), n, got)
		}
		if e.Kind == federav1.TaskKind_TASK_KIND_TRAIN.String() && e.Allowed {
			trains++
			if len(msgs) != 5 {
				t.Errorf("train task %s: %d messages arrived, want a result and 4 chunks", e.Task, len(msgs))
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if trains != 2 {
		t.Errorf("the journal holds %d allowed training releases, want 2 (one a round)", trains)
	}
}
