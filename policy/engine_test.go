package policy

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestAdmissionDefaultPolicy(t *testing.T) {
	noIdentifier := func(in *Input) { // drop the direct identifier so no drop_columns obligation appears
		in.Site.Dataset.Columns = slices.DeleteFunc(in.Site.Dataset.Columns, func(c Column) bool { return c.Name == "patient_name" })
	}
	tests := []struct {
		name        string
		engine      func(t *testing.T) *Engine
		edit        func(in *Input)
		allow       bool
		reason      string // a reason must contain this
		obligations *Obligations
		approval    bool
	}{
		{
			name:        "sample input",
			allow:       true,
			obligations: &Obligations{PrivacyBudget: budget, MinRecords: 10, RequireDP: true, MaxEpsilon: 8, DropColumns: []string{"patient_name"}},
		},
		{
			name: "special_category feature without DP",
			edit: func(in *Input) {
				in.Job.Features = []string{"ward", "diagnosis"}
				in.Job.Privacy.DP = nil
			},
			reason: `column "diagnosis" is special-category data and may only be used with differential privacy`,
		},
		{
			name: "special_category label without DP",
			edit: func(in *Input) {
				in.Job.Features = []string{"ward"}
				in.Job.Label = "diagnosis"
				in.Job.Privacy.DP = nil
			},
			reason: `column "diagnosis" is special-category data`,
		},
		{
			name: "special_category with DP within the limit",
			edit: func(in *Input) {
				noIdentifier(in)
				in.Job.Features = []string{"ward", "diagnosis"}
				in.Job.Privacy.DP = &DP{Epsilon: 8, Delta: 1e-6, ClipNorm: 1}
				in.Job.Privacy.MinCount = 0
			},
			allow:       true,
			obligations: &Obligations{PrivacyBudget: budget, MinRecords: 10, RequireDP: true, MaxEpsilon: 8},
		},
		{
			name: "special_category with DP above the limit",
			edit: func(in *Input) {
				in.Job.Features = []string{"diagnosis"}
				in.Job.Privacy.DP.Epsilon = 8.5
			},
			reason: "differential privacy epsilon 8.5 exceeds this site's limit of 8 for columns diagnosis",
		},
		{
			name: "personal column to an adequate jurisdiction",
			edit: func(in *Input) {
				noIdentifier(in)
				in.Job.Features = []string{"age", "ward"}
				in.Job.Privacy.DP = nil
				in.Destination.Jurisdiction = "uk"
			},
			allow:       true,
			obligations: &Obligations{MinRecords: 10},
		},
		{
			name: "personal column to a non-adequate jurisdiction without DP",
			edit: func(in *Input) {
				in.Job.Features = []string{"age", "ward"}
				in.Job.Privacy.DP = nil
				in.Destination.Jurisdiction = "us"
			},
			reason: `column "age" is personal data and destination "spiffe://federa.example/coordinator" is in jurisdiction "us", which is not on the adequacy list of jurisdiction "eu"`,
		},
		{
			name: "personal column to a non-adequate jurisdiction with DP",
			edit: func(in *Input) {
				noIdentifier(in)
				in.Job.Features = []string{"age", "ward"}
				in.Destination.Jurisdiction = "us"
			},
			allow:       true,
			obligations: &Obligations{PrivacyBudget: budget, MinRecords: 10, RequireDP: true, MaxEpsilon: 8},
		},
		{
			name:   "wrong role",
			edit:   func(in *Input) { in.Job.Requester.Role = "analyst" },
			reason: `requester "spiffe://federa.example/user/alice" has role "analyst"; only data-scientist may submit jobs to this site`,
		},
		{
			name:   "job type other than train or query",
			edit:   func(in *Input) { in.Job.Type = "export" },
			reason: `job "job-0001" has type "export"`,
		},
		{
			name:   "direct identifier as a feature",
			edit:   func(in *Input) { in.Job.Features = append(in.Job.Features, "patient_name") },
			reason: `column "patient_name" is tagged "direct_identifier" and may never be used by a job`,
		},
		{
			name:   "column missing from the metadata",
			edit:   func(in *Input) { in.Job.Features = []string{"salary"} },
			reason: `column "salary" is not described in the metadata of dataset "admissions"`,
		},
		{
			name:   "unknown input version",
			edit:   func(in *Input) { in.Version = "v2" },
			reason: `input version "v2" is not supported`,
		},
		{
			name:        "empty version is filled in",
			edit:        func(in *Input) { in.Version = "" },
			allow:       true,
			obligations: &Obligations{PrivacyBudget: budget, MinRecords: 10, RequireDP: true, MaxEpsilon: 8, DropColumns: []string{"patient_name"}},
		},
		{
			name:   "zero input",
			edit:   func(in *Input) { *in = Input{} },
			reason: `job "" has type ""`,
		},
		{
			name: "project not on the site's list",
			engine: func(t *testing.T) *Engine {
				return withSiteData(t, func(f map[string]any) { f["allowed_projects"] = []string{"sepsis"} })
			},
			reason: `requester "spiffe://federa.example/user/alice" may not submit for project "readmission": this site accepts only projects sepsis`,
		},
		{
			name: "project on the site's list",
			engine: func(t *testing.T) *Engine {
				return withSiteData(t, func(f map[string]any) { f["allowed_projects"] = []string{"sepsis", "readmission"} })
			},
			allow: true,
		},
		{
			name: "approval required for special_category",
			engine: func(t *testing.T) *Engine {
				return withSiteData(t, func(f map[string]any) { f["require_approval_for"] = []string{"special_category"} })
			},
			allow:    true,
			approval: true,
		},
		{
			name: "approval required for all",
			engine: func(t *testing.T) *Engine {
				return withSiteData(t, func(f map[string]any) { f["require_approval_for"] = "all" })
			},
			edit:     func(in *Input) { in.Job.Features = []string{"ward"} },
			allow:    true,
			approval: true,
		},
		{
			name: "minimal site data: defaults for every optional key",
			engine: func(t *testing.T) *Engine {
				return withSiteData(t, func(f map[string]any) {
					for k := range f {
						if k != "limits" {
							delete(f, k)
						}
					}
				})
			},
			edit: func(in *Input) {
				in.Job.Features = []string{"ward", "diagnosis"}
				in.Site.Dataset.Columns[3].Classification = Internal // only the (absent) tag hint would raise it
			},
			allow:       true,
			obligations: &Obligations{PrivacyBudget: budget, MinRecords: 10},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := loadDefault(t)
			if tt.engine != nil {
				e = tt.engine(t)
			}
			in := SampleInput()
			if tt.edit != nil {
				tt.edit(&in)
			}
			d, err := e.Admission(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tt.allow {
				t.Errorf("Allow = %v, want %v; reasons %q", d.Allow, tt.allow, d.Reasons)
			}
			if tt.reason != "" && !slices.ContainsFunc(d.Reasons, func(r string) bool { return strings.Contains(r, tt.reason) }) {
				t.Errorf("reasons %q, want one containing %q", d.Reasons, tt.reason)
			}
			if tt.allow && len(d.Reasons) != 0 {
				t.Errorf("allowed with reasons %q", d.Reasons)
			}
			if tt.obligations != nil && !reflect.DeepEqual(d.Obligations, *tt.obligations) {
				t.Errorf("Obligations = %+v, want %+v", d.Obligations, *tt.obligations)
			}
			if d.RequireApproval != tt.approval {
				t.Errorf("RequireApproval = %v, want %v", d.RequireApproval, tt.approval)
			}
		})
	}
}

func TestEgressDefaultPolicy(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(in *Input)
		allow  bool
		reason string
	}{
		{name: "model update", allow: true},
		{name: "statistics", edit: func(in *Input) { in.Egress.Kind = KindStatistics }, allow: true},
		{name: "metrics", edit: func(in *Input) { in.Egress.Kind = KindMetrics }, allow: true},
		{
			name:   "raw rows",
			edit:   func(in *Input) { in.Egress.Kind = "raw_rows" },
			reason: `egress of kind "raw_rows" is denied: only aggregates (model_update, statistics, metrics) may leave this site`,
		},
		{
			name:   "over the size bound",
			edit:   func(in *Input) { in.Egress.Bytes = in.Egress.MaxBytes + 1 },
			reason: "the model_update is 4097 bytes, more than the 4096 bytes the declared model can need",
		},
		{name: "at the size bound", edit: func(in *Input) { in.Egress.Bytes = in.Egress.MaxBytes }, allow: true},
		{
			name:   "no size bound",
			edit:   func(in *Input) { in.Egress.MaxBytes = 0 },
			reason: "max_bytes must be greater than 0",
		},
		{
			name:   "too few records",
			edit:   func(in *Input) { in.Egress.Records = 9 },
			reason: "the model_update rests on 9 records; at least 10 are required",
		},
		{
			name: "job's min_count above the site's",
			edit: func(in *Input) {
				in.Job.Privacy.MinCount = 500
			},
			reason: "at least 500 are required",
		},
		{
			name:   "DP required but no noise",
			edit:   func(in *Input) { in.Egress.Noise = nil },
			reason: "differential privacy is required for this job at this site, but the model_update carries no noise",
		},
		{
			name:  "metrics are counts over min_records rows: no noise needed",
			edit:  func(in *Input) { in.Egress.Kind = KindMetrics; in.Egress.Noise = nil },
			allow: true,
		},
		{
			name: "the admission passed in decides, not a re-derivation",
			edit: func(in *Input) {
				in.Admission = &Admitted{Allow: false, Reasons: []string{"suspended by the DPO"}, MinRecords: 10}
			},
			reason: "the job is not admitted by this site's policy in force: suspended by the DPO",
		},
		{
			name: "no noise needed for internal data",
			edit: func(in *Input) {
				in.Job.Features = []string{"ward"}
				in.Job.Privacy.DP = nil
				in.Egress.Noise = nil
			},
			allow: true,
		},
		{
			name:   "noise without sigma",
			edit:   func(in *Input) { in.Egress.Noise.Sigma = 0 },
			reason: "sigma greater than 0",
		},
		{
			name:   "budget spent",
			edit:   func(in *Input) { in.Egress.EpsilonSpent = 4.5 },
			reason: "the job's privacy budget is spent: epsilon 4.5 would exceed the 4 the job declared",
		},
		{
			name:   "job no longer admitted",
			edit:   func(in *Input) { in.Job.Requester.Role = "intern" },
			reason: "the job is not admitted by this site's policy in force",
		},
		{
			name:   "no egress section",
			edit:   func(in *Input) { in.Egress = nil },
			reason: "the input has no egress section",
		},
	}
	e := loadDefault(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := SampleEgress()
			if tt.edit != nil {
				tt.edit(&in)
			}
			d, err := e.Egress(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tt.allow {
				t.Errorf("Allow = %v, want %v; reasons %q", d.Allow, tt.allow, d.Reasons)
			}
			if tt.reason != "" && !slices.ContainsFunc(d.Reasons, func(r string) bool { return strings.Contains(r, tt.reason) }) {
				t.Errorf("reasons %q, want one containing %q", d.Reasons, tt.reason)
			}
		})
	}
}

func TestDenyAll(t *testing.T) {
	e := DenyAll("policy folder \"/etc/federa/policy\" does not exist")
	ctx := context.Background()
	want := []string{`no policy loaded: policy folder "/etc/federa/policy" does not exist`}
	d, err := e.Admission(ctx, SampleInput())
	if err != nil || d.Allow || !slices.Equal(d.Reasons, want) {
		t.Errorf("Admission = %+v, %v; want a deny with reasons %q", d, err, want)
	}
	ed, err := e.Egress(ctx, SampleEgress())
	if err != nil || ed.Allow || !slices.Equal(ed.Reasons, want) {
		t.Errorf("Egress = %+v, %v; want a deny with reasons %q", ed, err, want)
	}
	xd, trace, err := e.ExplainAdmission(ctx, SampleInput())
	if err != nil || xd.Allow || !strings.Contains(trace, want[0]) {
		t.Errorf("ExplainAdmission = %+v, %q, %v", xd, trace, err)
	}
	if e.Revision() != "deny-all" {
		t.Errorf("Revision = %q", e.Revision())
	}
}

func TestZeroEngineDenies(t *testing.T) {
	for name, e := range map[string]*Engine{"zero": {}, "nil": nil} {
		d, err := e.Admission(context.Background(), SampleInput())
		if err != nil || d.Allow || len(d.Reasons) != 1 || !strings.HasPrefix(d.Reasons[0], "no policy loaded") {
			t.Errorf("%s engine: Admission = %+v, %v", name, d, err)
		}
		ed, err := e.Egress(context.Background(), SampleEgress())
		if err != nil || ed.Allow {
			t.Errorf("%s engine: Egress = %+v, %v", name, ed, err)
		}
		if e.Revision() != "deny-all" {
			t.Errorf("%s engine: Revision = %q", name, e.Revision())
		}
	}
}

// policyFS is a one-file policy folder.
func policyFS(rego string) fstest.MapFS {
	return fstest.MapFS{"policy.rego": {Data: []byte(rego)}}
}

func TestUndefinedDecisionsDeny(t *testing.T) {
	e, err := LoadFS(context.Background(), policyFS("package other\n\nx := 1\n"), ".")
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Admission(context.Background(), SampleInput())
	if err != nil || d.Allow || !slices.Equal(d.Reasons, []string{"policy does not define data.federa.admission"}) {
		t.Errorf("Admission = %+v, %v", d, err)
	}
	ed, err := e.Egress(context.Background(), SampleEgress())
	if err != nil || ed.Allow || !slices.Equal(ed.Reasons, []string{"policy does not define data.federa.egress"}) {
		t.Errorf("Egress = %+v, %v", ed, err)
	}
}

func TestMalformedDecisionsDeny(t *testing.T) {
	tests := []struct {
		name string
		rego string
		want string
	}{
		{"not an object", `admission := true`, "data.federa.admission is a boolean, want an object"},
		{"allow missing", `admission := {"reasons": []}`, `data.federa.admission has no "allow" field`},
		{"allow a string", `admission := {"allow": "yes"}`, "data.federa.admission.allow is a string, want a boolean"},
		{"min_records a string", `admission := {"allow": true, "obligations": {"min_records": "10"}}`, "data.federa.admission.obligations.min_records is a string"},
		{"max_epsilon zero", `admission := {"allow": true, "obligations": {"max_epsilon": 0}}`, "data.federa.admission.obligations.max_epsilon is 0, want a number > 0"},
		{"privacy_budget not an object", `admission := {"allow": true, "obligations": {"privacy_budget": 8}}`, "data.federa.admission.obligations.privacy_budget is 8, want {\"epsilon\": ε > 0, \"delta\": 0 < δ < 1}"},
		{"privacy_budget delta of 1", `admission := {"allow": true, "obligations": {"privacy_budget": {"epsilon": 8, "delta": 1}}}`, "want {\"epsilon\": ε > 0, \"delta\": 0 < δ < 1}"},
		{"privacy_budget without delta", `admission := {"allow": true, "obligations": {"privacy_budget": {"epsilon": 8, "eps": 1}}}`, "want {\"epsilon\": ε > 0, \"delta\": 0 < δ < 1}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Load evaluates the sample input, so it refuses the policy...
			_, err := LoadFS(context.Background(), policyFS("package federa\n\n"+tt.rego+"\n"), ".")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadFS error = %v, want one containing %q", err, tt.want)
			}
			// ...and the decoder the engine uses denies with an error.
			value := strings.TrimSpace(strings.TrimPrefix(tt.rego, "admission :="))
			if d, err := DecodeDecision([]byte(value)); err == nil || d.Allow {
				t.Errorf("DecodeDecision(%s) = %+v, %v; want a deny and an error", value, d, err)
			}
		})
	}
}

func TestUnknownObligationsDeny(t *testing.T) {
	e, err := LoadFS(context.Background(), policyFS(`package federa

admission := {"allow": true, "reasons": [], "obligations": {"min_records": 5, "watermark_model": true, "geo_fence": "eu"}}
`), ".")
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Admission(context.Background(), SampleInput())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`the policy sets obligation "geo_fence", which this site cannot enforce`,
		`the policy sets obligation "watermark_model", which this site cannot enforce`,
	}
	if d.Allow || !slices.Equal(d.Reasons, want) {
		t.Errorf("Admission = %+v, want a deny with reasons %q", d, want)
	}
	if d.Obligations.MinRecords != 5 || len(d.Obligations.Unknown) != 2 || d.Obligations.Unknown["geo_fence"] != "eu" {
		t.Errorf("Obligations = %+v", d.Obligations)
	}
}

func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // the error contains each
	}{
		{
			name:  "error at evaluation on the sample input",
			files: map[string]string{"p.rego": "package federa\n\nadmission := {\"allow\": to_number(input.job.id) > 0}\n"},
			want:  []string{"evaluate on sample input", "p.rego:3", "to_number"},
		},
		{
			name:  "parse error",
			files: map[string]string{"p.rego": "package federa\n\nadmission := {\n"},
			want:  []string{"p.rego:4", "rego_parse_error"},
		},
		{
			name:  "Rego v0 syntax",
			files: map[string]string{"p.rego": "package federa\n\ndeny[msg] { msg := \"x\" }\n"},
			want:  []string{"p.rego:3", "rego_parse_error"},
		},
		{
			name:  "strict: unused variable",
			files: map[string]string{"p.rego": "package federa\n\nadmission := {\"allow\": false} if {\n\tx := 1\n}\n"},
			want:  []string{"p.rego:4", "assigned var x unused"},
		},
		{
			name: "rule shadowing a data file",
			files: map[string]string{
				"p.rego":    "package federa\n\nlimits := {}\n",
				"data.json": `{"federa": {"limits": {"max_epsilon": 8}}}`,
			},
			want: []string{"conflict"},
		},
		{
			name: "config errors",
			files: map[string]string{
				"p.rego":    "package federa\n\nconfig_errors contains \"data.federa.limits must be an object\" if not is_object(data.federa.limits)\n",
				"data.json": `{"federa": {"limits": "8"}}`,
			},
			want: []string{"site policy data is invalid: data.federa.limits must be an object"},
		},
		{
			name:  "bad data file",
			files: map[string]string{"p.rego": "package federa\n", "data.json": `{"federa": `},
			want:  []string{"data.json"},
		},
		{
			name:  "no policy",
			files: map[string]string{"data.json": `{}`, "p_test.rego": "package federa_test\n"},
			want:  []string{"no .rego files"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			_, err := Load(context.Background(), dir)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !strings.HasPrefix(err.Error(), "load site policy \""+dir+"\": ") {
				t.Errorf("error %q does not name the folder", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadMissingFolder(t *testing.T) {
	_, err := Load(context.Background(), filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load = %v, want fs.ErrNotExist", err)
	}
	_, err = Load(context.Background(), t.TempDir())
	if !errors.Is(err, ErrNoPolicy) {
		t.Fatalf("Load(empty) = %v, want ErrNoPolicy", err)
	}
}

func TestLoadLayout(t *testing.T) {
	// Data under a subfolder lands under its path; hidden entries, test
	// files and other files are ignored.
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"federa/data.yaml":    "limit: 3\n",
		"p.rego":              "package federa\n\nadmission := {\"allow\": data.federa.limit == 3, \"reasons\": [\"from yaml\"]}\n",
		"p_test.rego":         "package federa\n\nthis does not parse\n",
		".p.rego.swp":         "garbage",
		".hidden/x.rego":      "garbage",
		"README.md":           "# notes\n",
		"sub/extra.json":      `{"x": 1}`,
		"..data/ignored.rego": "garbage",
	})
	e, err := Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Admission(context.Background(), SampleInput())
	if err != nil || !d.Allow || !slices.Equal(d.Reasons, []string{"from yaml"}) {
		t.Errorf("Admission = %+v, %v", d, err)
	}
}

func TestRevision(t *testing.T) {
	dir := t.TempDir()
	copyDefault(t, dir)
	disk, err := Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	embedded := loadDefault(t)
	if disk.Revision() != embedded.Revision() || !strings.HasPrefix(disk.Revision(), "sha256:") || len(disk.Revision()) != len("sha256:")+64 {
		t.Errorf("revisions %q (disk) and %q (embedded) differ or are malformed", disk.Revision(), embedded.Revision())
	}
	// Tests do not change decisions, so they do not change the revision.
	writeFiles(t, dir, map[string]string{"extra_test.rego": "package federa_test\n\ntest_nothing if true\n"})
	if e, err := Load(context.Background(), dir); err != nil || e.Revision() != embedded.Revision() {
		t.Errorf("revision after adding a test: %v, %v", e.Revision(), err)
	}
	writeFiles(t, dir, map[string]string{"extra.json": `{"unrelated": true}`})
	if e, err := Load(context.Background(), dir); err != nil || e.Revision() == embedded.Revision() {
		t.Errorf("revision after adding a data file did not change: %v", err)
	}
}

func TestExplainAdmission(t *testing.T) {
	e := loadDefault(t)
	in := SampleInput()
	in.Job.Privacy.DP = nil
	d, trace, err := e.ExplainAdmission(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := e.Admission(context.Background(), in)
	if !reflect.DeepEqual(d, plain) {
		t.Errorf("ExplainAdmission decision %+v differs from Admission %+v", d, plain)
	}
	for _, want := range []string{"Trace:", "privacy.rego:", "data.federa.admission"} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace lacks %q", want)
		}
	}
}

func TestInvalidInputDenies(t *testing.T) {
	e := loadDefault(t)
	in := SampleInput()
	in.Job.Features = []string{"age\xff"}
	d, err := e.Admission(context.Background(), in)
	if err == nil || d.Allow || !strings.Contains(err.Error(), "job.features[0]") {
		t.Errorf("Admission = %+v, %v; want a deny and an error naming the field", d, err)
	}
	in = SampleEgress()
	in.Egress.EpsilonSpent = nan()
	ed, err := e.Egress(context.Background(), in)
	if err == nil || ed.Allow || !strings.Contains(err.Error(), "egress.epsilon_spent") {
		t.Errorf("Egress = %+v, %v; want a deny and an error naming the field", ed, err)
	}
}

func TestConcurrentEvaluation(t *testing.T) {
	e := loadDefault(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for range 10 {
				d, err := e.Admission(context.Background(), SampleInput())
				if err == nil && !d.Allow {
					err = errors.New("sample input denied")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// budget is the default policy's lifetime privacy budget (data.json:
// limits.max_epsilon at limits.max_delta).
var budget = Budget{Epsilon: 8, Delta: 1e-5}

// TestDeterministic: a policy that reads the clock, draws random numbers or
// asks the network is not deterministic, wherever the call sits (a rule
// body, a rule's value, a function, another package); the default policy
// is, and so is a deny-all engine.
func TestDeterministic(t *testing.T) {
	ctx := context.Background()
	if ok, name := loadDefault(t).Deterministic(); !ok {
		t.Errorf("the default policy calls %s, a non-deterministic builtin", name)
	}
	if ok, _ := DenyAll("x").Deterministic(); !ok {
		t.Error("a deny-all engine is not deterministic")
	}
	for _, tc := range []struct{ name, extra, want string }{
		{"clock in a body", "late if time.now_ns() > 0\n", "time.now_ns"},
		{"randomness as a value", "coin := rand.intn(\"c\", 2)\n", "rand.intn"},
		{"in a function", "stamp(x) := y if y := sprintf(\"%v-%v\", [x, uuid.rfc4122(\"u\")])\n", "uuid.rfc4122"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := defaultFiles(t)
			files["zz_extra.rego"] = &fstest.MapFile{Data: []byte("package federa.extra\n\n" + tc.extra)}
			e, err := LoadFS(ctx, files, ".")
			if err != nil {
				t.Fatal(err)
			}
			if ok, name := e.Deterministic(); ok || name != tc.want {
				t.Errorf("Deterministic() = %v, %q; want false, %q", ok, name, tc.want)
			}
		})
	}
}
