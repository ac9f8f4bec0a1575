package site

import (
	"testing"
	"time"

	"github.com/federa-dev/federa/attest/auditlog"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// TestCheckInclusions: entries about this site must be in the signed tree
// and be decisions the site made; a forged one is caught.
func TestCheckInclusions(t *testing.T) {
	l, vkey := signedLog(t)
	a := &Agent{started: time.Now().Add(-time.Minute)}
	mine := &federav1.DecisionRecord{Kind: "egress", TaskId: "job-1/r1/train/eu/paris/00", InputDigest: "sha256:aa"}
	a.remember(mine)
	entry := func(task, digest string) auditlog.Entry {
		return auditlog.Entry{Type: auditlog.TypeEgress, Job: "job-1", Site: "eu/paris", Actor: "eu/paris",
			Data: map[string]any{"kind": "egress", "task": task, "input_digest": digest, "allow": true}}
	}
	if _, err := l.Append(entry(mine.TaskId, mine.InputDigest), entry("job-1/r1/train/eu/paris/00", "sha256:forged")); err != nil {
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
	inc := func(i int64) *federav1.AuditInclusion { return inclusion(t, l, i, head.Size) }
	if reason := a.checkInclusions(head, []*federav1.AuditInclusion{inc(0)}); reason != "" {
		t.Fatalf("the site's own decision was refused: %s", reason)
	}
	if reason := a.checkInclusions(head, []*federav1.AuditInclusion{inc(1)}); reason == "" {
		t.Fatal("a decision the site never made was accepted")
	}
	bad := inc(0)
	bad.Proof[0][0] ^= 1
	a.remember(mine)
	if reason := a.checkInclusions(head, []*federav1.AuditInclusion{bad}); reason == "" {
		t.Fatal("a wrong inclusion proof was accepted")
	}
}
