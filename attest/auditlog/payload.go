package auditlog

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Payload is the typed content of one entry type. The JSON field names of
// a payload are the keys of Entry.Data for that type; they are part of the
// log's format and must never be renamed.
type Payload interface {
	// EntryType is the Type constant the payload belongs to.
	EntryType() string
}

// JobSubmitted records that a job specification was accepted for
// scheduling. The spec is identified by digest only.
type JobSubmitted struct {
	SpecDigest string `json:"spec_digest"` // "sha256:…" of the canonical job spec
	Requester  string `json:"requester"`   // identity that submitted it
}

// Admission records a site's admission decision and the policy that made it.
type Admission struct {
	InputDigest    string   `json:"input_digest,omitempty"` // digest of the policy input document
	Decision       string   `json:"decision"`               // "admit" or "deny"
	Reasons        []string `json:"reasons,omitempty"`      // policy reasons, verbatim
	PolicyRevision string   `json:"policy_revision"`        // digest or revision of the policy bundle
}

// Approval records a human decision on a job (Entry.Actor is the approver).
type Approval struct {
	Decision string `json:"decision"` // "approved" or "rejected"
	Reason   string `json:"reason,omitempty"`
}

// Round records one aggregation round: who took part and the digest of
// every update received, so a site can later prove its update was (or was
// not) part of the aggregate.
type Round struct {
	Round           int64             `json:"round"`
	Participants    []string          `json:"participants"`
	Missing         []string          `json:"missing"`        // the job's sites that did not take part; [] when none
	UpdateDigests   map[string]string `json:"update_digests"` // site -> "sha256:…" of the update as received; empty under secure aggregation
	AggregateDigest string            `json:"aggregate_digest"`
	// SecureAggregation, for a secure round: threshold, neighbors, clip,
	// scale, the sites of each phase (advertised, shared, masked,
	// revealed) and whose mask keys were reconstructed, and why.
	SecureAggregation map[string]any `json:"secure_aggregation,omitempty"`
	// RedoOf is the index of this round's first attempt when the
	// coordinator stopped after logging it and before checkpointing it:
	// this entry replaces that one, and RedoReason says so.
	RedoOf     *int64 `json:"redo_of,omitempty"`
	RedoReason string `json:"redo_reason,omitempty"`
}

// Egress records bytes leaving a site (Entry.Site) and whether the site's
// egress policy allowed them.
type Egress struct {
	Kind     string `json:"kind"` // e.g. "model_update", "metrics"
	Bytes    int64  `json:"bytes"`
	Decision string `json:"decision"` // "allow" or "deny"
}

// DPSpent records differential-privacy budget consumed at a site.
type DPSpent struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
	Round   int64   `json:"round,omitempty"`
}

// JobEnd records how a job finished.
type JobEnd struct {
	Status string `json:"status"` // "succeeded", "failed", "cancelled"
	Reason string `json:"reason,omitempty"`
}

// ModelRelease records the release of a trained artifact.
type ModelRelease struct {
	ArtifactSHA256 string `json:"artifact_sha256"` // hex sha256 of the released bytes
	Name           string `json:"name,omitempty"`
}

func (JobSubmitted) EntryType() string { return TypeJobSubmitted }
func (Admission) EntryType() string    { return TypeAdmission }
func (Approval) EntryType() string     { return TypeApproval }
func (Round) EntryType() string        { return TypeRound }
func (Egress) EntryType() string       { return TypeEgress }
func (DPSpent) EntryType() string      { return TypeDPSpent }
func (JobEnd) EntryType() string       { return TypeJobEnd }
func (ModelRelease) EntryType() string { return TypeModelRelease }

// NewEntry builds an entry of p's type whose Data are p's fields. Time is
// left zero for Append to fill from the log's clock.
func NewEntry(job, site, actor string, p Payload) (Entry, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return Entry{}, fmt.Errorf("build %s entry: %w", p.EntryType(), err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil {
		return Entry{}, fmt.Errorf("build %s entry: %w", p.EntryType(), err)
	}
	return Entry{Type: p.EntryType(), Job: job, Site: site, Actor: actor, Data: data}, nil
}

// Decode fills p from e.Data. It fails if e is not of p's type, so a
// caller cannot read an egress entry as an admission by mistake.
func (e Entry) Decode(p Payload) error {
	if e.Type != p.EntryType() {
		return fmt.Errorf("decode entry: type %q, want %q", e.Type, p.EntryType())
	}
	b, err := json.Marshal(e.Data)
	if err != nil {
		return fmt.Errorf("decode %s entry: %w", e.Type, err)
	}
	if err := json.Unmarshal(b, p); err != nil {
		return fmt.Errorf("decode %s entry: %w", e.Type, err)
	}
	return nil
}
