package federav1

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Bounds on what a site's decision record may carry. Every record becomes
// an audit log entry, and the log refuses entries over 1 MiB; these keep a
// record far below that, so a site can neither sink a batch of other
// entries nor bloat a job. The coordinator refuses a record over a bound
// (CheckDecisionRecord); the agent trims its own reasons to fit
// (TrimDecisionRecord), so an honest site is never refused.
const (
	// MaxDecisionReasons bounds the reasons of one record.
	MaxDecisionReasons = 64
	// MaxReasonBytes bounds one reason (also a cancel or approval reason).
	MaxReasonBytes = 4096
	// MaxDecisionFieldBytes bounds each short field: kind, job and task
	// ids, input digest, policy revision, egress kind.
	MaxDecisionFieldBytes = 512
	// MaxObligationsBytes bounds the obligations JSON.
	MaxObligationsBytes = 16 << 10
)

// CheckDecisionRecord says which field of r is over its bound, naming the
// field and the limit, or returns nil.
func CheckDecisionRecord(r *DecisionRecord) error {
	for _, f := range []struct{ name, v string }{
		{"kind", r.GetKind()}, {"job_id", r.GetJobId()}, {"task_id", r.GetTaskId()},
		{"input_digest", r.GetInputDigest()}, {"policy_revision", r.GetPolicyRevision()}, {"egress_kind", r.GetEgressKind()},
	} {
		if len(f.v) > MaxDecisionFieldBytes {
			return fmt.Errorf("decision record field %s: %d bytes; at most %d", f.name, len(f.v), MaxDecisionFieldBytes)
		}
	}
	if n := len(r.GetReasons()); n > MaxDecisionReasons {
		return fmt.Errorf("decision record field reasons: %d reasons; at most %d", n, MaxDecisionReasons)
	}
	for i, s := range r.GetReasons() {
		if len(s) > MaxReasonBytes {
			return fmt.Errorf("decision record field reasons[%d]: %d bytes; at most %d", i, len(s), MaxReasonBytes)
		}
	}
	if n := len(r.GetObligationsJson()); n > MaxObligationsBytes {
		return fmt.Errorf("decision record field obligations_json: %d bytes; at most %d", n, MaxObligationsBytes)
	}
	return nil
}

// TrimDecisionRecord shortens r's reasons to fit CheckDecisionRecord,
// saying what it cut. The other fields are the agent's own and bounded by
// construction.
func TrimDecisionRecord(r *DecisionRecord) {
	if n := len(r.Reasons); n > MaxDecisionReasons {
		r.Reasons = append(r.Reasons[:MaxDecisionReasons-1:MaxDecisionReasons-1], fmt.Sprintf("… and %d more reasons (see the site's decision journal)", n-MaxDecisionReasons+1))
	}
	for i, s := range r.Reasons {
		r.Reasons[i] = TrimText(s, MaxReasonBytes)
	}
}

// TrimText cuts s to at most limit bytes on a UTF-8 boundary, marking the
// cut.
func TrimText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	const mark = " … (cut)"
	cut := limit - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimRight(s[:cut], " ") + mark
}

// MaxChunkBytes bounds the tensor payload of one TensorChunk. With the
// envelope a chunk stays far below gRPC's 4 MiB default message limit.
const MaxChunkBytes = 1 << 20

// A site or coordinator message whose encoding is larger than
// MaxWholeMessageBytes travels as Fragments of at most MaxChunkBytes
// (package transfer: SplitMessage, Reassembler), so no message on a
// stream comes near gRPC's 4 MiB default limit however many columns,
// sites or audit entries it describes. A receiver holds at most
// MaxFragmentedBytes of partly received messages per stream, which also
// bounds the largest message: about 10 million columns' statistics.
const (
	MaxWholeMessageBytes = 2 << 20
	MaxFragmentedBytes   = 256 << 20
)
