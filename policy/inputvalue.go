package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
)

// normalize returns the input as the policy sees it: the version filled in
// and nil lists made empty, so a rule iterating input.job.features never
// meets null. It does not modify in.
func normalize(in Input) Input {
	if in.Version == "" {
		in.Version = InputVersion
	}
	if in.Job.Features == nil {
		in.Job.Features = []string{}
	}
	if in.Site.Dataset.Columns == nil {
		in.Site.Dataset.Columns = []Column{}
	}
	if in.Admission != nil && in.Admission.Reasons == nil {
		a := *in.Admission
		a.Reasons = []string{}
		in.Admission = &a
	}
	return in
}

// inputValue builds the AST of the input document directly, which is several
// times cheaper than the JSON round trip rego.EvalInput does for a struct. It
// must produce exactly what encoding/json would (omitempty included) for the
// normalized input; FuzzInputValue holds it to that. Strings must be valid
// UTF-8 and numbers finite: encoding/json would silently rewrite the one and
// reject the other, and a policy should never match on either.
func inputValue(in Input) (ast.Value, error) {
	in = normalize(in)
	b := builder{}
	doc := b.baseItems(in)
	doc = append(doc, b.extraItems(in)...)
	if b.err != nil {
		return nil, b.err
	}
	return ast.NewObject(doc...), nil
}

// baseItems converts what stays the same for every message of a job:
// version, job, site and destination.
func (b *builder) baseItems(in Input) [][2]*ast.Term {
	job := in.Job
	privacy := [][2]*ast.Term{
		b.item("secure_aggregation", ast.InternedTerm(job.Privacy.SecureAggregation)),
		b.item("min_count", ast.InternedTerm(job.Privacy.MinCount)),
	}
	if dp := job.Privacy.DP; dp != nil {
		privacy = append([][2]*ast.Term{b.item("dp", ast.ObjectTerm(
			b.item("epsilon", b.float("job.privacy.dp.epsilon", dp.Epsilon)),
			b.item("delta", b.float("job.privacy.dp.delta", dp.Delta)),
			b.item("clip_norm", b.float("job.privacy.dp.clip_norm", dp.ClipNorm)),
		))}, privacy...)
	}
	model := [][2]*ast.Term{b.item("type", b.str("job.model.type", job.Model.Type)), b.item("task", b.str("job.model.task", job.Model.Task))}
	if len(job.Model.Params) > 0 {
		model = append(model, b.item("params", b.any("job.model.params", job.Model.Params)))
	}
	jobItems := [][2]*ast.Term{
		b.item("id", b.str("job.id", job.ID)),
		b.item("type", b.str("job.type", job.Type)),
		b.item("requester", ast.ObjectTerm(
			b.item("id", b.str("job.requester.id", job.Requester.ID)),
			b.item("role", b.str("job.requester.role", job.Requester.Role)),
		)),
	}
	if job.Project != "" {
		jobItems = append(jobItems, b.item("project", b.str("job.project", job.Project)))
	}
	jobItems = append(jobItems,
		b.item("dataset", b.str("job.dataset", job.Dataset)),
		b.item("features", b.strs("job.features", job.Features)),
		b.item("label", b.str("job.label", job.Label)),
		b.item("model", ast.ObjectTerm(model...)),
		b.item("rounds", ast.InternedTerm(job.Rounds)),
		b.item("privacy", ast.ObjectTerm(privacy...)),
	)

	columns := make([]*ast.Term, len(in.Site.Dataset.Columns))
	for i, c := range in.Site.Dataset.Columns {
		field := "site.dataset.columns[" + strconv.Itoa(i) + "]"
		items := [][2]*ast.Term{
			b.item("name", b.str(field+".name", c.Name)),
			b.item("classification", b.str(field+".classification", c.Classification)),
		}
		if len(c.Tags) > 0 {
			items = append(items, b.item("tags", b.strs(field+".tags", c.Tags)))
		}
		columns[i] = ast.ObjectTerm(items...)
	}

	dsItems := [][2]*ast.Term{
		b.item("name", b.str("site.dataset.name", in.Site.Dataset.Name)),
		b.item("columns", ast.ArrayTerm(columns...)),
	}
	if l := in.Site.Dataset.Label; l != nil {
		dsItems = append(dsItems, b.item("label", ast.ObjectTerm(
			b.item("column", b.str("site.dataset.label.column", l.Column)),
			b.item("classes", ast.InternedTerm(l.Classes)),
			b.item("numeric", ast.InternedTerm(l.Numeric)),
			b.item("smallest_class", ast.InternedTerm(l.SmallestClass)),
		)))
	}
	doc := [][2]*ast.Term{
		b.item("version", b.str("version", in.Version)),
		b.item("job", ast.ObjectTerm(jobItems...)),
		b.item("site", ast.ObjectTerm(
			b.item("name", b.str("site.name", in.Site.Name)),
			b.item("jurisdiction", b.str("site.jurisdiction", in.Site.Jurisdiction)),
			b.item("dataset", ast.ObjectTerm(dsItems...)),
		)),
		b.item("destination", ast.ObjectTerm(
			b.item("id", b.str("destination.id", in.Destination.ID)),
			b.item("jurisdiction", b.str("destination.jurisdiction", in.Destination.Jurisdiction)),
		)),
	}
	return doc
}

// extraItems converts what changes per message: egress and admission.
func (b *builder) extraItems(in Input) [][2]*ast.Term {
	var doc [][2]*ast.Term
	if e := in.Egress; e != nil {
		items := [][2]*ast.Term{
			b.item("kind", b.str("egress.kind", e.Kind)),
			b.item("bytes", int64Term(e.Bytes)),
			b.item("max_bytes", int64Term(e.MaxBytes)),
			b.item("records", int64Term(e.Records)),
		}
		if n := e.Noise; n != nil {
			items = append(items, b.item("noise", ast.ObjectTerm(
				b.item("mechanism", b.str("egress.noise.mechanism", n.Mechanism)),
				b.item("sigma", b.float("egress.noise.sigma", n.Sigma)),
				b.item("clip_norm", b.float("egress.noise.clip_norm", n.ClipNorm)),
			)))
		}
		items = append(items, b.item("epsilon_spent", b.float("egress.epsilon_spent", e.EpsilonSpent)),
			b.item("dataset_epsilon_spent", b.float("egress.dataset_epsilon_spent", e.DatasetEpsilonSpent)))
		doc = append(doc, b.item("egress", ast.ObjectTerm(items...)))
	}
	if a := in.Admission; a != nil {
		doc = append(doc, b.item("admission", ast.ObjectTerm(
			b.item("allow", ast.InternedTerm(a.Allow)),
			b.item("reasons", b.strs("admission.reasons", a.Reasons)),
			b.item("min_records", ast.InternedTerm(a.MinRecords)),
			b.item("require_dp", ast.InternedTerm(a.RequireDP)),
		)))
	}
	return doc
}

// Prepared is an input whose job, site and destination were converted for
// the policy once, for the many egress checks of one job: converting 30
// classified columns costs more than evaluating the egress rules.
type Prepared struct {
	base [][2]*ast.Term
	// in is the normalized input it was prepared from, without Egress and
	// Admission; head is its canonical JSON without the closing brace, so
	// a message's digest encodes only the message.
	in   Input
	head []byte
}

// Prepare converts in (without its Egress and Admission) once.
func Prepare(in Input) (*Prepared, error) {
	in = normalize(in)
	in.Egress, in.Admission = nil, nil
	b := builder{}
	base := b.baseItems(in)
	if b.err != nil {
		return nil, b.err
	}
	bs, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	return &Prepared{base: base, in: in, head: bs[:len(bs)-1]}, nil
}

// Matches reports whether in's version, job, site and destination are the
// ones p was prepared from, so a cache of Prepared inputs can check that
// it hands out the right one.
func (p *Prepared) Matches(in Input) bool {
	in = normalize(in)
	in.Egress, in.Admission = nil, nil
	return reflect.DeepEqual(p.in, in)
}

// Digest is InputDigest of p's input with eg and adm, the same string,
// without encoding the job, site and destination again.
func (p *Prepared) Digest(eg *Egress, adm *Admitted) string {
	extra := normalize(Input{Egress: eg, Admission: adm})
	b := builder{}
	b.extraItems(extra)
	if b.err != nil {
		return ""
	}
	h := sha256.New()
	h.Write(p.head)
	for _, part := range []struct {
		key string
		v   any
	}{{"egress", extra.Egress}, {"admission", extra.Admission}} {
		if reflect.ValueOf(part.v).IsNil() {
			continue // omitempty
		}
		bs, err := json.Marshal(part.v)
		if err != nil {
			return ""
		}
		fmt.Fprintf(h, ",%q:", part.key)
		h.Write(bs)
	}
	h.Write([]byte("}"))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// with is the prepared input plus one message's egress and admission.
func (p *Prepared) with(eg *Egress, adm *Admitted) (ast.Value, error) {
	b := builder{}
	extra := b.extraItems(normalize(Input{Egress: eg, Admission: adm}))
	if b.err != nil {
		return nil, b.err
	}
	doc := make([][2]*ast.Term, 0, len(p.base)+len(extra))
	doc = append(append(doc, p.base...), extra...)
	return ast.NewObject(doc...), nil
}

// builder keeps the first error so inputValue reads as one expression.
type builder struct{ err error }

func (b *builder) fail(field, format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("input %s: %s", field, fmt.Sprintf(format, args...))
	}
}

func (b *builder) item(k string, v *ast.Term) [2]*ast.Term {
	return ast.Item(ast.InternedTerm(k), v)
}

func (b *builder) str(field, s string) *ast.Term {
	if !utf8.ValidString(s) {
		b.fail(field, "%q is not valid UTF-8", s)
	}
	return ast.InternedTerm(s)
}

func (b *builder) strs(field string, ss []string) *ast.Term {
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = b.str(field+"["+strconv.Itoa(i)+"]", s)
	}
	return ast.ArrayTerm(terms...)
}

func (b *builder) float(field string, f float64) *ast.Term {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		b.fail(field, "%v is not a finite number", f)
		return ast.InternedTerm(0)
	}
	return ast.NumberTerm(json.Number(strconv.FormatFloat(f, 'g', -1, 64)))
}

// any converts free-form values (model params) the way encoding/json would,
// taking a JSON round trip only for types it does not know.
func (b *builder) any(field string, v any) *ast.Term {
	switch x := v.(type) {
	case nil:
		return ast.InternedNullTerm
	case bool:
		return ast.InternedTerm(x)
	case string:
		return b.str(field, x)
	case float64:
		return b.float(field, x)
	case float32:
		return b.float(field, float64(x))
	case int:
		return int64Term(int64(x))
	case int64:
		return int64Term(x)
	case int32:
		return int64Term(int64(x))
	case uint64:
		return ast.NumberTerm(json.Number(strconv.FormatUint(x, 10)))
	case json.Number:
		if _, err := strconv.ParseFloat(string(x), 64); err != nil {
			b.fail(field, "%q is not a number", string(x))
		}
		return ast.NumberTerm(x)
	case []any:
		terms := make([]*ast.Term, len(x))
		for i, e := range x {
			terms[i] = b.any(field+"["+strconv.Itoa(i)+"]", e)
		}
		return ast.ArrayTerm(terms...)
	case []string:
		return b.strs(field, x)
	case map[string]any:
		items := make([][2]*ast.Term, 0, len(x))
		for k, e := range x {
			items = append(items, ast.Item(b.str(field, k), b.any(field+"."+k, e)))
		}
		return ast.ObjectTerm(items...)
	}
	bs, err := json.Marshal(v)
	if err != nil {
		b.fail(field, "cannot encode %T as JSON: %v", v, err)
		return ast.InternedNullTerm
	}
	var generic any
	if err := util.UnmarshalJSON(bs, &generic); err != nil {
		b.fail(field, "cannot decode %T from JSON: %v", v, err)
		return ast.InternedNullTerm
	}
	return b.any(field, generic)
}

func int64Term(i int64) *ast.Term {
	if i >= math.MinInt32 && i <= math.MaxInt32 { // fits an int everywhere; OPA interns the small ones
		return ast.InternedTerm(int(i))
	}
	return ast.NumberTerm(json.Number(strconv.FormatInt(i, 10)))
}

// InputDigest returns "sha256:<hex>" of the canonical JSON of the input as
// the policy sees it (version filled in, struct fields in declaration order,
// map keys sorted, no whitespace), for recording beside each decision. An
// input that cannot be encoded (a NaN, invalid UTF-8) has no digest: "" — it
// is denied anyway.
func InputDigest(in Input) string {
	in = normalize(in)
	if _, err := inputValue(in); err != nil {
		return ""
	}
	bs, err := json.Marshal(in)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(bs)
	return "sha256:" + hex.EncodeToString(sum[:])
}
