package coordinator

import (
	"fmt"
	"slices"
	"sync"

	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/internal/logkeys"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// Sites are the audit log's witnesses: after every checkpoint the
// coordinator shows each connected site the new checkpoint with a
// consistency proof from the last one that site accepted, and every entry
// about that site since, each with its inclusion proof; the site checks
// history only grew and that the entries about it are exactly the
// decisions it made, co-signs, and sends the co-signature back, which is
// stored beside the checkpoint. A coordinator that rewrote or forked its
// log cannot produce that proof, and the site refuses further tasks.
//
// The cost of a checkpoint is linear in the number of sites: the
// coordinator keeps, per site, the indexes of the entries about it (filled
// as entries are appended), so a sync reads only the entries its site
// must judge, never the whole span since the site's last checkpoint. The
// syncs run in each session's own goroutine, so neither the round nor the
// submit or end of a job waits for a site to receive its proofs, and a
// slow site delays no other.

// witnessBook is the state shared by the witness syncs: the latest signed
// checkpoint, parsed once, and the entries about each site.
type witnessBook struct {
	mu   sync.Mutex
	cp   []byte
	head auditlog.Checkpoint
	// about holds, per site name, the indexes of the audit entries whose
	// Site is that site, ascending.
	about map[string][]int64
}

// indexWitnessEntries reads the audit log once at start-up to learn which
// entries are about which site, and the latest checkpoint.
func (c *Coordinator) indexWitnessEntries() error {
	c.witness.about = map[string][]int64{}
	for i := range c.auditLog.Size() {
		leaf, err := c.auditLog.Entry(i)
		if err != nil {
			return fmt.Errorf("read audit entry %d: %w", i, err)
		}
		e, err := auditlog.ParseEntry(leaf)
		if err != nil {
			return fmt.Errorf("audit entry %d: %w", i, err)
		}
		if e.Site != "" {
			c.witness.about[e.Site] = append(c.witness.about[e.Site], i)
		}
	}
	if cp, err := c.auditLog.LatestCheckpoint(); err == nil {
		c.noteCheckpoint(cp)
	}
	return nil
}

// noteAppending records which of entries, about to be appended from index
// first, are about a site. It runs before the append, under auditMu, so a
// checkpoint signed the moment the entries are in the log already finds
// them indexed; a sync only reads indexes below its checkpoint's size, so
// one noted for an append still under way is never shown. If the append
// fails, forgetAppending takes them back.
func (c *Coordinator) noteAppending(first int64, entries []auditlog.Entry) {
	c.witness.mu.Lock()
	defer c.witness.mu.Unlock()
	if c.witness.about == nil {
		c.witness.about = map[string][]int64{}
	}
	for k, e := range entries {
		if e.Site != "" {
			c.witness.about[e.Site] = append(c.witness.about[e.Site], first+int64(k))
		}
	}
}

// forgetAppending drops the indexes noteAppending noted from first on.
func (c *Coordinator) forgetAppending(first int64, entries []auditlog.Entry) {
	c.witness.mu.Lock()
	defer c.witness.mu.Unlock()
	for _, e := range entries {
		idx := c.witness.about[e.Site]
		for len(idx) > 0 && idx[len(idx)-1] >= first {
			idx = idx[:len(idx)-1]
		}
		c.witness.about[e.Site] = idx
	}
}

// noteCheckpoint makes cp the checkpoint the next syncs show.
func (c *Coordinator) noteCheckpoint(cp []byte) {
	head, err := auditlog.VerifyCheckpoint(cp, c.auditKey)
	if err != nil {
		c.log.Error("own audit checkpoint does not verify", logkeys.Err, err)
		return
	}
	c.witness.mu.Lock()
	defer c.witness.mu.Unlock()
	if head.Size >= c.witness.head.Size {
		c.witness.cp, c.witness.head = cp, head
	}
}

// syncWitnesses asks every connected witness's session to sync; it does
// not wait for any of them.
func (c *Coordinator) syncWitnesses() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sessions {
		if s.witnessKey != "" {
			s.requestWitnessSync()
		}
	}
}

// requestWitnessSync wakes the session's witness loop; requests coalesce.
func (s *session) requestWitnessSync() {
	select {
	case s.witnessReq <- struct{}{}:
	default:
	}
}

// witnessLoop runs the session's syncs, one at a time, until it ends.
func (c *Coordinator) witnessLoop(s *session) {
	for {
		select {
		case <-s.done:
			return
		case <-c.runCtx.Done():
			return
		case <-s.witnessReq:
			c.syncWitness(s)
		}
	}
}

func (c *Coordinator) syncWitness(s *session) {
	c.witness.mu.Lock()
	cp, head := c.witness.cp, c.witness.head
	c.witness.mu.Unlock()
	if cp == nil {
		return // nothing signed yet
	}
	// The size a sync proves to is assumed accepted, so the next proof
	// starts where this one ends.
	c.mu.Lock()
	old := s.witnessed
	c.mu.Unlock()
	if old == head.Size {
		return
	}
	msg := &federav1.AuditSync{Checkpoint: cp, LogKey: c.auditKey, OldSize: old}
	if old > 0 && old < head.Size {
		proof, err := c.auditLog.ConsistencyProof(old, head.Size)
		if err != nil {
			c.log.Warn("audit consistency proof", logkeys.Site, s.site, logkeys.Err, err)
			return
		}
		for _, h := range proof {
			msg.ConsistencyProof = append(msg.ConsistencyProof, append([]byte(nil), h[:]...))
		}
	}
	incs, err := c.inclusionsFor(s.site, old, head.Size)
	if err != nil {
		// Showing the site fewer entries than are about it would read as
		// a dropped decision: better no sync now and a full one later.
		c.log.Warn("audit inclusion proofs", logkeys.Site, s.site, logkeys.Err, err)
		return
	}
	msg.Inclusions = incs
	if _, err := s.send(&federav1.CoordinatorMessage{Body: &federav1.CoordinatorMessage_AuditSync{AuditSync: msg}}); err == nil && head.Size > old {
		c.mu.Lock()
		s.witnessed = max(s.witnessed, head.Size)
		c.mu.Unlock()
	}
}

// acceptCoSignature stores a site's co-signature after checking it.
func (c *Coordinator) acceptCoSignature(s *session, note []byte) {
	head, err := auditlog.VerifyCheckpoint(note, c.auditKey, s.witnessKey)
	if err == nil {
		err = c.auditLog.AddCoSignature(note, s.witnessKey)
	}
	if err != nil {
		c.log.Warn("refused a site's audit co-signature", logkeys.Site, s.site, logkeys.Err, err)
		return
	}
	c.mu.Lock()
	if head.Size > s.witnessed {
		s.witnessed = head.Size
	}
	c.mu.Unlock()
}

// inclusionsFor proves every entry about site in [from, size) is in the
// tree of that size. It reads only those entries.
func (c *Coordinator) inclusionsFor(site string, from, size int64) ([]*federav1.AuditInclusion, error) {
	c.witness.mu.Lock()
	idx := c.witness.about[site]
	lo, _ := slices.BinarySearch(idx, from)
	hi, _ := slices.BinarySearch(idx, size)
	var span []int64
	if lo < hi {
		span = slices.Clone(idx[lo:hi])
	}
	c.witness.mu.Unlock()
	out := make([]*federav1.AuditInclusion, 0, len(span))
	for _, i := range span {
		leaf, err := c.auditLog.Entry(i)
		if err != nil {
			return nil, err
		}
		proof, err := c.auditLog.InclusionProof(i, size)
		if err != nil {
			return nil, err
		}
		inc := &federav1.AuditInclusion{Index: i, Leaf: leaf, Proof: make([][]byte, len(proof))}
		for k, h := range proof {
			inc.Proof[k] = append([]byte(nil), h[:]...)
		}
		out = append(out, inc)
	}
	return out, nil
}
