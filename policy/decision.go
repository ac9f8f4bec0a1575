package policy

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/open-policy-agent/opa/v1/util"
)

// Decision is data.federa.admission: may the site run this job, and on what
// terms. Allow is meaningful only together with Obligations: a site that
// cannot enforce every obligation must refuse the task.
type Decision struct {
	Allow   bool     `json:"allow"`
	Reasons []string `json:"reasons"`
	// Obligations the site must enforce while it runs the job.
	Obligations Obligations `json:"obligations"`
	// RequireApproval asks for an operator's approval before the job runs.
	RequireApproval bool `json:"require_approval"`
}

// Obligations the site must enforce; a site that cannot enforce one must
// refuse the task. The zero value obliges nothing.
type Obligations struct {
	MinRecords int     `json:"min_records,omitempty"` // minimum records behind every contribution
	RequireDP  bool    `json:"require_dp,omitempty"`  // every contribution carries DP noise
	MaxEpsilon float64 `json:"max_epsilon,omitempty"` // DP required with ε ≤ this
	MaxRounds  int     `json:"max_rounds,omitempty"`  // stop contributing after this many rounds
	// PrivacyBudget is the dataset's lifetime (ε, δ): every DP release
	// about it, across jobs, queries and restarts, composes within it.
	// The zero Budget is none.
	PrivacyBudget Budget   `json:"privacy_budget,omitzero"`
	DropColumns   []string `json:"drop_columns,omitempty"` // columns that must not be used as features
	// Unknown holds obligations this version does not know, by name. The
	// Engine denies a decision that carries any (the site could not enforce
	// them); they are kept here so the refusal can name them.
	Unknown map[string]any `json:"-"`
}

// Budget is a privacy budget: (Epsilon, Delta)-differential privacy.
type Budget struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
}

// EgressDecision is data.federa.egress: may this message leave the site.
type EgressDecision struct {
	Allow   bool     `json:"allow"`
	Reasons []string `json:"reasons"`
}

// knownObligations are the obligation names this version can enforce.
var knownObligations = []string{"min_records", "require_dp", "max_epsilon", "max_rounds", "drop_columns", "privacy_budget"}

// DecodeDecision decodes a JSON admission decision with the decoder the
// Engine applies to data.federa.admission, for tools that replay recorded
// decisions.
func DecodeDecision(b []byte) (Decision, error) {
	var v any
	if err := util.UnmarshalJSON(b, &v); err != nil {
		return Decision{}, fmt.Errorf("decode admission decision: %w", err)
	}
	return decodeDecision(v)
}

// DecodeEgressDecision is DecodeDecision for data.federa.egress.
func DecodeEgressDecision(b []byte) (EgressDecision, error) {
	var v any
	if err := util.UnmarshalJSON(b, &v); err != nil {
		return EgressDecision{}, fmt.Errorf("decode egress decision: %w", err)
	}
	return decodeEgressDecision(v)
}

// decodeDecision reads the policy's admission value strictly: a field of the
// wrong type is an error (and so a deny), never a zero value that could read
// as "no obligation". Unknown top-level fields are ignored; unknown
// obligations are kept in Obligations.Unknown.
func decodeDecision(v any) (Decision, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("data.federa.admission is %s, want an object", typeName(v))
	}
	d := Decision{}
	var err error
	if d.Allow, err = requiredBool(obj, "allow", "data.federa.admission"); err != nil {
		return Decision{}, err
	}
	if d.Reasons, err = optionalStrings(obj, "reasons", "data.federa.admission"); err != nil {
		return Decision{}, err
	}
	if d.RequireApproval, err = optionalBool(obj, "require_approval", "data.federa.admission"); err != nil {
		return Decision{}, err
	}
	if d.Obligations, err = decodeObligations(obj["obligations"]); err != nil {
		return Decision{}, err
	}
	if d.Reasons == nil {
		d.Reasons = []string{} // recorded decisions read "reasons": [], not null
	}
	return d, nil
}

func decodeObligations(v any) (Obligations, error) {
	const where = "data.federa.admission.obligations"
	var o Obligations
	if v == nil {
		return o, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return o, fmt.Errorf("%s is %s, want an object", where, typeName(v))
	}
	var err error
	if o.MinRecords, err = optionalCount(obj, "min_records", where); err != nil {
		return Obligations{}, err
	}
	if o.RequireDP, err = optionalBool(obj, "require_dp", where); err != nil {
		return Obligations{}, err
	}
	if o.MaxEpsilon, err = optionalPositive(obj, "max_epsilon", where); err != nil {
		return Obligations{}, err
	}
	if o.MaxRounds, err = optionalCount(obj, "max_rounds", where); err != nil {
		return Obligations{}, err
	}
	if o.DropColumns, err = optionalStrings(obj, "drop_columns", where); err != nil {
		return Obligations{}, err
	}
	if o.PrivacyBudget, err = optionalBudget(obj, "privacy_budget", where); err != nil {
		return Obligations{}, err
	}
	if len(o.DropColumns) == 0 {
		o.DropColumns = nil // nothing to drop, however the policy said it
	}
	for k, x := range obj {
		if !slices.Contains(knownObligations, k) {
			if o.Unknown == nil {
				o.Unknown = map[string]any{}
			}
			o.Unknown[k] = x
		}
	}
	return o, nil
}

func decodeEgressDecision(v any) (EgressDecision, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return EgressDecision{}, fmt.Errorf("data.federa.egress is %s, want an object", typeName(v))
	}
	var d EgressDecision
	var err error
	if d.Allow, err = requiredBool(obj, "allow", "data.federa.egress"); err != nil {
		return EgressDecision{}, err
	}
	if d.Reasons, err = optionalStrings(obj, "reasons", "data.federa.egress"); err != nil {
		return EgressDecision{}, err
	}
	if d.Reasons == nil {
		d.Reasons = []string{}
	}
	return d, nil
}

// enforceable turns a decision that allows with obligations this version
// cannot enforce into a deny that names them.
func (d Decision) enforceable() Decision {
	if len(d.Obligations.Unknown) == 0 {
		return d
	}
	for _, k := range slices.Sorted(maps.Keys(d.Obligations.Unknown)) {
		d.Reasons = append(d.Reasons, fmt.Sprintf("the policy sets obligation %q, which this site cannot enforce", k))
	}
	d.Allow = false
	return d
}

func requiredBool(obj map[string]any, key, where string) (bool, error) {
	x, ok := obj[key]
	if !ok {
		return false, fmt.Errorf("%s has no %q field", where, key)
	}
	b, ok := x.(bool)
	if !ok {
		return false, fmt.Errorf("%s.%s is %s, want a boolean", where, key, typeName(x))
	}
	return b, nil
}

func optionalBool(obj map[string]any, key, where string) (bool, error) {
	if x, ok := obj[key]; ok {
		b, ok := x.(bool)
		if !ok {
			return false, fmt.Errorf("%s.%s is %s, want a boolean", where, key, typeName(x))
		}
		return b, nil
	}
	return false, nil
}

// optionalStrings reads a list of strings; a Rego set arrives as a list too.
func optionalStrings(obj map[string]any, key, where string) ([]string, error) {
	x, ok := obj[key]
	if !ok || x == nil {
		return nil, nil
	}
	list, ok := x.([]any)
	if !ok {
		return nil, fmt.Errorf("%s.%s is %s, want a list of strings", where, key, typeName(x))
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%s.%s[%d] is %s, want a string", where, key, i, typeName(e))
		}
		out = append(out, s)
	}
	return out, nil
}

// optionalCount reads a non-negative integer that fits an int.
func optionalCount(obj map[string]any, key, where string) (int, error) {
	x, ok := obj[key]
	if !ok {
		return 0, nil
	}
	f, err := number(x)
	if err != nil {
		return 0, fmt.Errorf("%s.%s is %s, want a whole number ≥ 0", where, key, typeName(x))
	}
	if f < 0 || f != math.Trunc(f) || f > math.MaxInt32 {
		return 0, fmt.Errorf("%s.%s is %v, want a whole number ≥ 0", where, key, x)
	}
	return int(f), nil
}

// optionalPositive reads a finite number > 0.
func optionalPositive(obj map[string]any, key, where string) (float64, error) {
	x, ok := obj[key]
	if !ok {
		return 0, nil
	}
	f, err := number(x)
	if err != nil || !(f > 0) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s.%s is %v, want a number > 0", where, key, x)
	}
	return f, nil
}

// optionalBudget reads {"epsilon": ε > 0, "delta": 0 < δ < 1}.
func optionalBudget(obj map[string]any, key, where string) (Budget, error) {
	x, ok := obj[key]
	if !ok {
		return Budget{}, nil
	}
	b, ok := x.(map[string]any)
	if !ok || len(b) != 2 {
		return Budget{}, fmt.Errorf("%s.%s is %v, want {\"epsilon\": ε > 0, \"delta\": 0 < δ < 1}", where, key, x)
	}
	eps, err := optionalPositive(b, "epsilon", where+"."+key)
	if err != nil {
		return Budget{}, err
	}
	delta, err := optionalPositive(b, "delta", where+"."+key)
	if err != nil {
		return Budget{}, err
	}
	if eps == 0 || !(delta > 0 && delta < 1) {
		return Budget{}, fmt.Errorf("%s.%s is %v, want {\"epsilon\": ε > 0, \"delta\": 0 < δ < 1}", where, key, x)
	}
	return Budget{Epsilon: eps, Delta: delta}, nil
}

func number(x any) (float64, error) {
	switch n := x.(type) {
	case json.Number:
		return strconv.ParseFloat(string(n), 64)
	case float64:
		return n, nil
	case int:
		return float64(n), nil
	case int64:
		return float64(n), nil
	}
	return 0, fmt.Errorf("not a number")
}

func typeName(x any) string {
	switch x.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number, float64, int, int64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", x)
}
