package auditlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxEntrySize bounds one canonical entry. The log records digests, counts
// and decisions, never data values; an entry this large means someone is
// logging data, and refusing it is the cheapest place to say so.
const MaxEntrySize = 1 << 20

// Entry types federa logs. The payload struct named beside each constant
// (see payload.go) fixes the keys of Entry.Data for that type. Verifiers
// accept types they do not know, because a log written by a newer federa
// must still verify with an older one.
const (
	TypeJobSubmitted   = "job_submitted"   // JobSubmitted: spec digest and requester
	TypeAdmission      = "admission"       // Admission: a site's decision on a job, with reasons
	TypeApproval       = "approval"        // Approval: a human decision on a job
	TypeRound          = "round"           // Round: participants, update digests, aggregate digest
	TypeEgress         = "egress"          // Egress: bytes leaving a site, and whether that was allowed
	TypeDPSpent        = "dp_spent"        // DPSpent: privacy budget consumed
	TypeJobEnd         = "job_end"         // JobEnd: final status
	TypeModelRelease   = "model_release"   // ModelRelease: sha256 of the released artifact
	TypeQuerySubmitted = "query_submitted" // an analytics query: its spec digest and requester
	TypeQueryEnd       = "query_end"       // a query's final status, sites, ε and result digest
)

// Entry is one audited event.
//
// The struct is generic on purpose: the log's job is to fix bytes forever,
// and a schema change in a typed payload must never change how an old entry
// verifies. Type-specific fields live in Data and are written and read
// through the payload structs (NewEntry, Entry.Decode), which is where the
// typing lives.
//
// Data holds JSON values only. After ParseEntry numbers are json.Number,
// objects map[string]any and arrays []any, whatever Go types went in.
type Entry struct {
	Type  string         // one of the Type constants, or a newer type
	Time  time.Time      // when it happened; Append fills a zero Time from Options.Now
	Job   string         // job id, empty for log-wide events
	Site  string         // site id (SPIFFE ID or name) the event concerns, if any
	Actor string         // who caused it: requester, approver, site, coordinator
	Data  map[string]any // type-specific fields; never data values
}

// wireEntry is the encoded form. Fields are declared in alphabetical order
// of their JSON names because encoding/json writes struct fields in
// declaration order; that keeps every object in the encoding key-sorted.
type wireEntry struct {
	Actor string         `json:"actor,omitempty"`
	Data  map[string]any `json:"data,omitempty"`
	Job   string         `json:"job,omitempty"`
	Site  string         `json:"site,omitempty"`
	Time  string         `json:"time"`
	Type  string         `json:"type"`
}

// Canonical returns the one byte form of e: compact JSON with sorted keys,
// the time in UTC RFC 3339 with nanoseconds and no trailing zeros, and
// numbers in their shortest form. These bytes are what the log hashes.
func (e Entry) Canonical() ([]byte, error) {
	if err := validType(e.Type); err != nil {
		return nil, fmt.Errorf("encode entry: %w", err)
	}
	if e.Time.IsZero() {
		return nil, errors.New("encode entry: time is zero")
	}
	t := e.Time.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return nil, fmt.Errorf("encode entry: time %v outside years 1-9999", t)
	}
	for _, f := range [...]struct{ name, s string }{{"job", e.Job}, {"site", e.Site}, {"actor", e.Actor}} {
		if !utf8.ValidString(f.s) {
			return nil, fmt.Errorf("encode entry: %s is not valid UTF-8", f.name)
		}
	}
	data, err := normaliseData(e.Data)
	if err != nil {
		return nil, fmt.Errorf("encode entry %s: %w", e.Type, err)
	}
	b, err := encodeJSON(wireEntry{
		Actor: e.Actor,
		Data:  data,
		Job:   e.Job,
		Site:  e.Site,
		Time:  t.Format(time.RFC3339Nano),
		Type:  e.Type,
	})
	if err != nil {
		return nil, fmt.Errorf("encode entry %s: %w", e.Type, err)
	}
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("encode entry %s: %d bytes exceeds MaxEntrySize %d (log digests, not data)", e.Type, len(b), MaxEntrySize)
	}
	return b, nil
}

// ParseEntry decodes b and accepts it only if b is exactly the canonical
// encoding of the result, so that one entry has one byte form and a
// verifier never has to wonder which of two spellings was signed.
func ParseEntry(b []byte) (Entry, error) {
	e, err := decodeEntry(b, true)
	if err != nil {
		return Entry{}, err
	}
	c, err := e.Canonical()
	if err != nil {
		return Entry{}, fmt.Errorf("parse entry: %w", err)
	}
	if !bytes.Equal(c, b) {
		return Entry{}, errors.New("parse entry: not in canonical form")
	}
	return e, nil
}

// decodeEntry parses JSON into an Entry. strict refuses unknown fields; the
// export verifier uses the lenient form on the human-readable copy and then
// compares canonical encodings.
func decodeEntry(b []byte, strict bool) (Entry, error) {
	if len(b) > MaxEntrySize {
		return Entry{}, fmt.Errorf("parse entry: %d bytes exceeds MaxEntrySize", len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if strict {
		dec.DisallowUnknownFields()
	}
	var w wireEntry
	if err := dec.Decode(&w); err != nil {
		return Entry{}, fmt.Errorf("parse entry: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Entry{}, errors.New("parse entry: trailing data after object")
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return Entry{}, fmt.Errorf("parse entry: time: %w", err)
	}
	return Entry{Type: w.Type, Time: t, Job: w.Job, Site: w.Site, Actor: w.Actor, Data: w.Data}, nil
}

func validType(t string) error {
	if t == "" {
		return errors.New("type is empty")
	}
	// Types are identifiers, so they can be used as metric labels and file
	// names without escaping.
	for i, r := range t {
		if !(r >= 'a' && r <= 'z' || r == '_' || i > 0 && r >= '0' && r <= '9') {
			return fmt.Errorf("type %q: want lower-case letters, digits and underscores", t)
		}
	}
	if len(t) > 64 {
		return fmt.Errorf("type %q longer than 64 bytes", t)
	}
	return nil
}

func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// HTML escaping is for embedding in web pages; it would only make audit
	// entries harder to read.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// normaliseData turns arbitrary Go values into plain JSON values with
// canonical numbers. Values already in that form (everything ParseEntry
// produces) are used as they are, which keeps verification fast.
func normaliseData(m map[string]any) (map[string]any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	if ok, err := plainObject(m); err != nil {
		return nil, err
	} else if ok {
		return m, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	v, err := canonNumbers(out)
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

// plainObject reports whether m holds only JSON-shaped values with
// canonical numbers and valid UTF-8. A number that is not canonical ("1.0")
// sends the value through normalisation; ParseEntry then rejects the input
// because its bytes differ from the canonical ones.
func plainObject(m map[string]any) (bool, error) {
	for k, v := range m {
		if !utf8.ValidString(k) {
			return false, nil
		}
		ok, err := plainValue(v)
		if !ok || err != nil {
			return ok, err
		}
	}
	return true, nil
}

func plainValue(v any) (bool, error) {
	switch v := v.(type) {
	case nil, bool:
		return true, nil
	case string:
		return utf8.ValidString(v), nil
	case json.Number:
		c, err := canonNumber(v)
		if err != nil {
			return false, err
		}
		return c == v, nil
	case map[string]any:
		return plainObject(v)
	case []any:
		for _, x := range v {
			if ok, err := plainValue(x); !ok || err != nil {
				return ok, err
			}
		}
		return true, nil
	}
	return false, nil
}

func canonNumbers(v any) (any, error) {
	switch v := v.(type) {
	case json.Number:
		return canonNumber(v)
	case map[string]any:
		for k, x := range v {
			c, err := canonNumbers(x)
			if err != nil {
				return nil, err
			}
			v[k] = c
		}
	case []any:
		for i, x := range v {
			c, err := canonNumbers(x)
			if err != nil {
				return nil, err
			}
			v[i] = c
		}
	}
	return v, nil
}

// canonNumber gives every JSON number one spelling: integers that fit an
// int64 in decimal, everything else as Go formats a float64 (shortest
// round-trip form). An integer literal beyond int64 is refused rather than
// rounded, because silently changing a logged byte count is worse than
// failing to log it.
func canonNumber(n json.Number) (json.Number, error) {
	s := string(n)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return json.Number(strconv.FormatInt(i, 10)), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("data: number %s out of float64 range", s)
	}
	// A big integer literal is accepted only if a float64 holds it exactly
	// (as json.Marshal writes float64(1e20)); otherwise it would be rounded.
	if !strings.ContainsAny(s, ".eE") && strconv.FormatFloat(f, 'f', -1, 64) != strings.TrimPrefix(s, "+") {
		return "", fmt.Errorf("data: integer %s out of int64 range", s)
	}
	if f == math.Trunc(f) {
		if math.Abs(f) < 1<<63 {
			return json.Number(strconv.FormatInt(int64(f), 10)), nil
		}
		// Exponent form keeps large integral floats distinguishable from
		// integer literals, so they parse back the same way.
		return json.Number(strconv.FormatFloat(f, 'e', -1, 64)), nil
	}
	b, err := json.Marshal(f)
	if err != nil {
		return "", fmt.Errorf("data: number %s: %w", s, err)
	}
	return json.Number(b), nil
}
