package auditlog_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/federa-dev/federa/attest/auditlog"
)

// The coordinator appends what happened, signs a checkpoint, and hands a
// site an inclusion proof; an auditor later verifies the whole log with
// nothing but the log's public key.
func Example() {
	dir, err := os.MkdirTemp("", "auditlog-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	signer, logKey, err := auditlog.LoadOrCreateKey(filepath.Join(dir, "keys"), "federa.example/audit")
	if err != nil {
		log.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	l, err := auditlog.Open(filepath.Join(dir, "log"), auditlog.Options{
		Signer: signer,
		Now:    func() time.Time { return now },
	})
	if err != nil {
		log.Fatal(err)
	}

	submitted, _ := auditlog.NewEntry("job-1", "", "alice", auditlog.JobSubmitted{
		SpecDigest: "sha256:2c26b46b", Requester: "alice",
	})
	admitted, _ := auditlog.NewEntry("job-1", "spiffe://example.org/site/paris", "site", auditlog.Admission{
		Decision: "admit", Reasons: []string{"dataset allowed"}, PolicyRevision: "rev-7",
	})
	first, err := l.Append(submitted, admitted)
	if err != nil {
		log.Fatal(err)
	}
	note, err := l.Checkpoint()
	if err != nil {
		log.Fatal(err)
	}

	// The site checks that its admission is in the signed tree.
	cp, err := auditlog.VerifyCheckpoint(note, logKey)
	if err != nil {
		log.Fatal(err)
	}
	leaf, _ := l.Entry(first + 1)
	proof, _ := l.InclusionProof(first+1, cp.Size)
	fmt.Println("admission included:", cp.CheckInclusion(first+1, leaf, proof) == nil)
	fmt.Println(string(leaf))
	l.Close()

	// The auditor recomputes everything from the files.
	rep, err := auditlog.Verify(filepath.Join(dir, "log"), logKey)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("verified %d entries, %d checkpoint(s)\n", rep.Size, rep.Checkpoints)
	// Output:
	// admission included: true
	// {"actor":"site","data":{"decision":"admit","policy_revision":"rev-7","reasons":["dataset allowed"]},"job":"job-1","site":"spiffe://example.org/site/paris","time":"2026-03-01T09:00:00Z","type":"admission"}
	// verified 2 entries, 1 checkpoint(s)
}
