package coordinator

import (
	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/internal/logkeys"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// Sites are the audit log's witnesses: after every checkpoint the
// coordinator shows each connected site the new checkpoint with a
// consistency proof from the last one that site accepted; the site checks
// history only grew, co-signs, and sends the co-signature back, which is
// stored beside the checkpoint. A coordinator that rewrote or forked its
// log cannot produce that proof, and the site refuses further tasks.

// syncWitnesses sends the latest checkpoint to every connected site.
func (c *Coordinator) syncWitnesses() {
	c.mu.Lock()
	var all []*session
	for _, s := range c.sessions {
		if s.witnessKey != "" {
			all = append(all, s)
		}
	}
	c.mu.Unlock()
	for _, s := range all {
		c.syncWitness(s)
	}
}

func (c *Coordinator) syncWitness(s *session) {
	cp, err := c.auditLog.LatestCheckpoint()
	if err != nil {
		return // nothing signed yet
	}
	head, err := auditlog.VerifyCheckpoint(cp, c.auditKey)
	if err != nil {
		c.log.Error("own audit checkpoint does not verify", logkeys.Err, err)
		return
	}
	// One sync at a time per site, and the size it proves to is assumed
	// accepted, so the next proof starts where this one ends.
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
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
	msg.Inclusions = c.inclusionsFor(s.site, old, head.Size)
	if _, err := s.send(&federav1.CoordinatorMessage{Body: &federav1.CoordinatorMessage_AuditSync{AuditSync: msg}}); err == nil && head.Size > old {
		c.mu.Lock()
		s.witnessed = head.Size
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
// tree of that size.
func (c *Coordinator) inclusionsFor(site string, from, size int64) []*federav1.AuditInclusion {
	var out []*federav1.AuditInclusion
	for i := from; i < size; i++ {
		leaf, err := c.auditLog.Entry(i)
		if err != nil {
			return out
		}
		e, err := auditlog.ParseEntry(leaf)
		if err != nil || e.Site != site {
			continue
		}
		proof, err := c.auditLog.InclusionProof(i, size)
		if err != nil {
			return out
		}
		inc := &federav1.AuditInclusion{Index: i, Leaf: leaf}
		for _, h := range proof {
			inc.Proof = append(inc.Proof, append([]byte(nil), h[:]...))
		}
		out = append(out, inc)
	}
	return out
}
