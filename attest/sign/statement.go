package sign

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// In-toto names this package writes and expects.
const (
	// StatementType is the in-toto Statement v1 _type.
	StatementType = "https://in-toto.io/Statement/v1"
	// ProvenancePredicateType is the predicateType of federa's provenance;
	// it is also the --type given to cosign verify-blob-attestation.
	ProvenancePredicateType = "https://federa.dev/provenance/v1"
)

// Provenance is how a released model came to be: the predicate of the
// in-toto statement SignProvenance signs.
type Provenance struct {
	// JobSpecDigest identifies the job spec that was run, e.g. "sha256:…".
	JobSpecDigest string `json:"jobSpecDigest"`
	// Sites are the SPIFFE IDs (or names) of the sites that took part.
	Sites []string `json:"sites,omitempty"`
	// Rounds is the number of aggregation rounds completed.
	Rounds int `json:"rounds"`
	// PolicyRevisions maps each site to the revision of the admission
	// policy it ran, so an auditor can tell which rules let the job in.
	PolicyRevisions map[string]string `json:"policyRevisions,omitempty"`
	// EpsilonSpent maps each site to the differential-privacy budget the
	// job consumed there.
	EpsilonSpent map[string]float64 `json:"epsilonSpent,omitempty"`
	// AuditCheckpoint is the audit log's checkpoint (signed tree head) at
	// release, tying the model to an append-only record of the run.
	AuditCheckpoint string `json:"auditCheckpoint,omitempty"`
}

func (p Provenance) validate() error {
	var errs []error
	if p.Rounds < 0 {
		errs = append(errs, fmt.Errorf("rounds is %d; want 0 or more", p.Rounds))
	}
	// Sorted so the message is the same from run to run.
	sites := make([]string, 0, len(p.EpsilonSpent))
	for site := range p.EpsilonSpent {
		sites = append(sites, site)
	}
	sort.Strings(sites)
	for _, site := range sites {
		if e := p.EpsilonSpent[site]; math.IsNaN(e) || math.IsInf(e, 0) || e < 0 {
			errs = append(errs, fmt.Errorf("epsilonSpent[%q] is %v; want a finite number, 0 or more", site, e))
		}
	}
	return errors.Join(errs...)
}

// statement is an in-toto Statement v1. Its fields are exactly the ones the
// spec defines because cosign decodes the payload with protojson, which
// refuses a field it does not know: a statement with an extra field signs
// fine and then never verifies.
type statement struct {
	Type          string               `json:"_type"`
	Subject       []resourceDescriptor `json:"subject"`
	PredicateType string               `json:"predicateType"`
	Predicate     json.RawMessage      `json:"predicate,omitempty"`
}

type resourceDescriptor struct {
	Name             string            `json:"name,omitempty"`
	URI              string            `json:"uri,omitempty"`
	Digest           map[string]string `json:"digest,omitempty"`
	Content          []byte            `json:"content,omitempty"`
	DownloadLocation string            `json:"downloadLocation,omitempty"`
	MediaType        string            `json:"mediaType,omitempty"`
	Annotations      json.RawMessage   `json:"annotations,omitempty"`
}

// Statement returns the in-toto Statement v1 JSON for a model named
// artifactName with hex SHA-256 digest artifactSHA256, with p as its
// predicate, ready for SignProvenance.
func Statement(artifactName string, artifactSHA256 string, p Provenance) ([]byte, error) {
	if artifactName == "" {
		return nil, errors.New("build statement: artifact name is empty")
	}
	digest := strings.ToLower(artifactSHA256)
	if raw, err := hex.DecodeString(digest); err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("build statement: artifact sha256 %q is not 64 hex digits", artifactSHA256)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("build statement: provenance: %w", err)
	}
	pred, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("build statement: %w", err)
	}
	out, err := json.Marshal(statement{
		Type:          StatementType,
		Subject:       []resourceDescriptor{{Name: artifactName, Digest: map[string]string{"sha256": digest}}},
		PredicateType: ProvenancePredicateType,
		Predicate:     pred,
	})
	if err != nil {
		return nil, fmt.Errorf("build statement: %w", err)
	}
	return out, nil
}

// parseStatement checks what cosign will check of a statement, so that a
// statement SignProvenance accepts is one cosign can verify.
func parseStatement(data []byte) (*statement, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st statement
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("not an in-toto Statement v1: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not an in-toto Statement v1: data after the JSON object")
	}
	if st.Type != StatementType {
		return nil, fmt.Errorf("_type is %q; want %q", st.Type, StatementType)
	}
	if st.PredicateType == "" {
		return nil, errors.New("predicateType is empty")
	}
	if len(st.Predicate) > 0 && !bytes.HasPrefix(bytes.TrimSpace(st.Predicate), []byte("{")) {
		return nil, errors.New("predicate is not a JSON object")
	}
	if len(st.Subject) == 0 {
		return nil, errors.New("subject is empty; want the artifact's name and sha256 digest")
	}
	for i, sub := range st.Subject {
		if len(sub.Digest) == 0 {
			return nil, fmt.Errorf("subject[%d] (%q) has no digest", i, sub.Name)
		}
		if d, ok := sub.Digest["sha256"]; ok {
			if raw, err := hex.DecodeString(d); err != nil || len(raw) != 32 {
				return nil, fmt.Errorf("subject[%d] (%q) digest sha256 %q is not 64 hex digits", i, sub.Name, d)
			}
		}
	}
	return &st, nil
}

// subjectMatches reports whether some subject's sha256 digest is digest.
func (st *statement) subjectMatches(digest []byte) bool {
	return slices.ContainsFunc(st.Subject, func(sub resourceDescriptor) bool {
		raw, err := hex.DecodeString(sub.Digest["sha256"])
		return err == nil && bytes.Equal(raw, digest)
	})
}
