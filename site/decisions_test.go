package site

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/federa-dev/federa/attest/auditlog"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// TestWitnessNoticesMissingDecisions: the site numbers its decisions and
// the witness checks the log shows each number once, in order, as made. A
// coordinator that drops one (the pen-test's lost batch), repeats one,
// invents one or alters one is caught; the honest log passes, also when a
// later sync re-shows entries an earlier one judged.
func TestWitnessNoticesMissingDecisions(t *testing.T) {
	made := func(seq uint64) *federav1.DecisionRecord {
		return &federav1.DecisionRecord{Seq: seq, Kind: "egress", JobId: "job-1", TaskId: fmt.Sprintf("job-1/r%d/train/eu/paris/00.aa", seq),
			InputDigest: fmt.Sprintf("sha256:%d", seq), Allow: true}
	}
	entry := func(r *federav1.DecisionRecord) auditlog.Entry {
		return auditlog.Entry{Type: auditlog.TypeEgress, Job: "job-1", Site: "eu/paris", Actor: "eu/paris", Time: time.Now(),
			Data: map[string]any{"kind": r.GetKind(), "task": r.GetTaskId(), "input_digest": r.GetInputDigest(), "allow": r.GetAllow(), "seq": r.GetSeq()}}
	}
	altered := entry(made(2))
	altered.Data["allow"] = false
	forgedTask := entry(made(2))
	forgedTask.Data["task"] = "job-1/r9/train/eu/paris/00.bb"
	round := auditlog.Entry{Type: auditlog.TypeRound, Job: "job-1", Actor: "coordinator", Time: time.Now(), Data: map[string]any{"round": 1}}
	tests := []struct {
		name    string
		syncs   [][]auditlog.Entry // the entries each sync shows, in log order
		reshow  int                // entries of the previous sync the next shows again (a crash before the checkpoint was kept)
		want    string             // "" = honest
		wantSeq uint64
	}{
		{"honest", [][]auditlog.Entry{{entry(made(1)), round, entry(made(2))}, {entry(made(3))}}, 0, "", 3},
		{"honest, re-shown after a crash", [][]auditlog.Entry{{entry(made(1)), entry(made(2))}, {entry(made(3))}}, 2, "", 3},
		{"dropped", [][]auditlog.Entry{{entry(made(1)), entry(made(3))}}, 0, "decisions 2 to 2 this site reported are missing", 0},
		{"dropped across syncs", [][]auditlog.Entry{{entry(made(1))}, {entry(made(4))}}, 0, "decisions 2 to 3 this site reported are missing", 0},
		{"repeated", [][]auditlog.Entry{{entry(made(1)), entry(made(2))}, {entry(made(2))}}, 0, "repeats decision 2", 0},
		{"invented", [][]auditlog.Entry{{entry(made(1)), entry(made(9))}}, 0, "claims decision 9 by this site, which has made only 4", 0},
		{"altered", [][]auditlog.Entry{{entry(made(1)), altered}}, 0, "alters decision 2", 0},
		{"another task", [][]auditlog.Entry{{entry(made(1)), forgedTask}}, 0, "alters decision 2", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, vkey := signedLog(t)
			a := &Agent{started: time.Now().Add(-time.Minute)}
			a.dlog.path = filepath.Join(t.TempDir(), "decisions.json")
			a.dlog.next = 1
			for range 4 {
				r := made(a.dlog.next)
				a.dlog.next++
				a.dlog.keep(r)
			}
			var reason string
			from := int64(0)
			for _, sync := range tt.syncs {
				first, err := l.Append(sync...)
				if err != nil {
					t.Fatal(err)
				}
				cp, err := l.Checkpoint()
				if err != nil {
					t.Fatal(err)
				}
				head, err := auditlog.VerifyCheckpoint(cp, vkey)
				if err != nil {
					t.Fatal(err)
				}
				var incs []*federav1.AuditInclusion
				for i := from; i < head.Size; i++ {
					incs = append(incs, inclusion(t, l, i, head.Size))
				}
				if reason = a.checkInclusions(head, incs); reason != "" {
					break
				}
				from = first + int64(len(sync)) - int64(tt.reshow)
			}
			if tt.want == "" {
				if reason != "" {
					t.Fatalf("an honest log was refused: %s", reason)
				}
				if a.dlog.seen.Seq != tt.wantSeq || len(a.dlog.pending) != int(4-tt.wantSeq) {
					t.Fatalf("seen %+v, %d pending", a.dlog.seen, len(a.dlog.pending))
				}
				return
			}
			if !strings.Contains(reason, tt.want) {
				t.Fatalf("reason %q, want %q", reason, tt.want)
			}
		})
	}
}

// signedLog is an audit log with a checkpoint signer, closed at the end of
// the test, and its verifier key.
func signedLog(t *testing.T) (*auditlog.Log, string) {
	t.Helper()
	signer, vkey, err := auditlog.LoadOrCreateKey(t.TempDir(), "example.org/coordinator")
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(t.TempDir(), auditlog.Options{Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, vkey
}

// inclusion is entry i of l with its proof in the tree of size n, as a
// witness sync carries it.
func inclusion(t *testing.T, l *auditlog.Log, i, n int64) *federav1.AuditInclusion {
	t.Helper()
	leaf, err := l.Entry(i)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := l.InclusionProof(i, n)
	if err != nil {
		t.Fatal(err)
	}
	inc := &federav1.AuditInclusion{Index: i, Leaf: leaf}
	for _, h := range proof {
		inc.Proof = append(inc.Proof, append([]byte(nil), h[:]...))
	}
	return inc
}
