package coordinator

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/federa-dev/federa/attest/auditlog"
)

// TestInclusionsForShowsExactlyTheEntriesAboutASite: whatever the span a
// sync covers, a site is shown every entry about it and no other — the
// same set a scan of the whole log finds — each with a proof that checks
// against the tree of the sync's size. That holds across appends that
// fail (their entries are not shown as phantoms) and after a restart,
// when the index is rebuilt from the log.
func TestInclusionsForShowsExactlyTheEntriesAboutASite(t *testing.T) {
	dir := t.TempDir()
	l, err := auditlog.Open(dir, auditlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &Coordinator{cfg: Config{Now: time.Now}, auditLog: l}
	sites := []string{"eu/paris", "eu/berlin", "us/boston"}
	entry := func(site string, n int) auditlog.Entry {
		if site == "" {
			return auditlog.Entry{Type: auditlog.TypeRound, Job: "job-1", Actor: "coordinator", Data: map[string]any{"round": n}}
		}
		return auditlog.Entry{Type: auditlog.TypeEgress, Job: "job-1", Site: site, Actor: site, Data: map[string]any{"task": fmt.Sprint(n)}}
	}
	n := 0
	for batch := range 12 {
		// Sites' decisions queued between appends, and the caller's own
		// entries: both land through audit.
		for k := range batch % 4 {
			c.auditQueue = append(c.auditQueue, entry(sites[(batch+k)%len(sites)], n))
			n++
		}
		own := []auditlog.Entry{entry("", n)}
		n++
		if batch%5 == 2 {
			own = append(own, entry(sites[batch%len(sites)], n))
			n++
		}
		if err := c.audit(false, own...); err != nil {
			t.Fatal(err)
		}
		if batch == 6 {
			// An append that fails after the queue was taken (the log's
			// files went away under it): the sites' entries wait for the
			// next append, and none is shown at an index it never got.
			c.auditQueue = append(c.auditQueue, entry(sites[0], n), entry(sites[1], n+1))
			n += 2
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := c.audit(false, entry(sites[2], n)); err == nil {
				t.Fatal("an append to a closed log succeeded")
			}
			n++
			if l, err = auditlog.Open(dir, auditlog.Options{}); err != nil {
				t.Fatal(err)
			}
			c.auditLog = l
		}
	}
	check := func(c *Coordinator) {
		t.Helper()
		size := l.Size()
		for _, site := range sites {
			for from := int64(0); from <= size; from += 3 {
				for _, to := range []int64{from, (from + size) / 2, size} {
					if to == 0 {
						continue
					}
					got, err := c.inclusionsFor(site, from, to)
					if err != nil {
						t.Fatal(err)
					}
					var want, have []int64
					for i := from; i < to; i++ {
						leaf, _ := l.Entry(i)
						if e, _ := auditlog.ParseEntry(leaf); e.Site == site {
							want = append(want, i)
						}
					}
					root, err := l.RootAt(to)
					if err != nil {
						t.Fatal(err)
					}
					for _, inc := range got {
						have = append(have, inc.GetIndex())
						var proof tlog.RecordProof
						for _, b := range inc.GetProof() {
							var h tlog.Hash
							copy(h[:], b)
							proof = append(proof, h)
						}
						if err := tlog.CheckRecord(proof, to, root, inc.GetIndex(), tlog.RecordHash(inc.GetLeaf())); err != nil {
							t.Fatalf("%s [%d,%d): entry %d: %v", site, from, to, inc.GetIndex(), err)
						}
					}
					if !slices.Equal(have, want) {
						t.Fatalf("%s [%d,%d): shown entries %v, the log holds %v about it", site, from, to, have, want)
					}
				}
			}
		}
	}
	check(c)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err = auditlog.Open(dir, auditlog.Options{}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	restarted := &Coordinator{cfg: Config{Now: time.Now}, auditLog: l}
	if err := restarted.indexWitnessEntries(); err != nil {
		t.Fatal(err)
	}
	check(restarted)
}
