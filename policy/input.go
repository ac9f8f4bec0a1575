package policy

// InputVersion is the version of the input document this package builds.
// A policy should deny an input whose version it does not know rather than
// guess at renamed fields.
const InputVersion = "v1"

// Input is the versioned input document (input.*) a site evaluates for every
// task. JSON field names are snake_case; input.schema.json describes it.
type Input struct {
	Version     string      `json:"version"` // InputVersion; empty is filled in
	Job         Job         `json:"job"`
	Site        Site        `json:"site"`
	Destination Destination `json:"destination"`
	Egress      *Egress     `json:"egress,omitempty"` // only for the per-message egress check
	// Admission, with Egress, is the admission decision this same policy
	// revision made for the job. Egress rules read it instead of deriving
	// admission again for every message; a caller that leaves it out gets
	// it derived.
	Admission *Admitted `json:"admission,omitempty"`
}

// Admitted summarizes an admission decision for the egress check.
type Admitted struct {
	Allow      bool     `json:"allow"`
	Reasons    []string `json:"reasons"`
	MinRecords int      `json:"min_records"`
	RequireDP  bool     `json:"require_dp"`
}

// Summary is the part of a decision the egress check needs.
func (d Decision) Summary() *Admitted {
	return &Admitted{Allow: d.Allow, Reasons: d.Reasons, MinRecords: d.Obligations.MinRecords, RequireDP: d.Obligations.RequireDP}
}

// Job is what a requester asks the site to do.
type Job struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"` // "train" | "query"
	Requester Requester `json:"requester"`
	Project   string    `json:"project,omitempty"`
	Dataset   string    `json:"dataset"`
	Features  []string  `json:"features"`
	Label     string    `json:"label"`
	Model     Model     `json:"model"`
	Rounds    int       `json:"rounds"`
	Privacy   Privacy   `json:"privacy"`
}

// Requester identifies who submitted the job.
type Requester struct {
	ID   string `json:"id"`   // SPIFFE ID
	Role string `json:"role"` // e.g. "data-scientist"
}

// Model is the declared model; Params holds local_epochs, batch_size,
// learning_rate, l2 and the like.
type Model struct {
	Type string `json:"type"`
	// Task is what the model predicts: "classification" (it releases the
	// label's values as class names) or "regression" (the label is a
	// number that never leaves as values). The site derives it from Type.
	Task   string         `json:"task"`
	Params map[string]any `json:"params,omitempty"`
}

// Privacy is the privacy the job declares it will apply.
type Privacy struct {
	DP                *DP  `json:"dp,omitempty"` // nil = no differential privacy
	SecureAggregation bool `json:"secure_aggregation"`
	MinCount          int  `json:"min_count"`
}

// DP holds differential-privacy parameters.
type DP struct {
	Epsilon  float64 `json:"epsilon"`
	Delta    float64 `json:"delta"`
	ClipNorm float64 `json:"clip_norm"`
}

// Site describes the evaluating site and the dataset the job touches.
type Site struct {
	Name         string      `json:"name"`         // "eu/paris"
	Jurisdiction string      `json:"jurisdiction"` // "eu"
	Dataset      DatasetMeta `json:"dataset"`
}

// DatasetMeta is the site's own description of a dataset.
type DatasetMeta struct {
	Name    string   `json:"name"`
	Columns []Column `json:"columns"`
	// Label profiles the job's label column at this site, when the job
	// has one: its values leave the site as a classifier's classes.
	Label *LabelMeta `json:"label,omitempty"`
}

// LabelMeta describes the values of a label column at the site, read from
// the whole file before any task runs. A classifier releases every
// distinct value as a class name, so the policy judges them as a release.
type LabelMeta struct {
	Column string `json:"column"`
	// Classes is the number of distinct values; when the site stopped
	// counting at its profiling limit it is that limit plus one.
	Classes int `json:"classes"`
	// Numeric is true when every value parses as a number.
	Numeric bool `json:"numeric"`
	// SmallestClass is the number of rows holding the rarest value.
	SmallestClass int `json:"smallest_class"`
}

// Column classifications, from least to most sensitive.
const (
	Public          = "public"
	Internal        = "internal"
	Personal        = "personal"
	SpecialCategory = "special_category"
)

// Column is one column of a dataset with its classification
// (public | internal | personal | special_category).
type Column struct {
	Name           string   `json:"name"`
	Classification string   `json:"classification"`
	Tags           []string `json:"tags,omitempty"`
}

// Destination is where the task's results go.
type Destination struct {
	ID           string `json:"id"`
	Jurisdiction string `json:"jurisdiction"`
}

// Egress kinds a default policy lets leave a site; anything else is denied.
const (
	KindModelUpdate = "model_update"
	KindStatistics  = "statistics"
	KindMetrics     = "metrics"
)

// Egress describes one outgoing message, for the per-message egress check.
type Egress struct {
	Kind         string  `json:"kind"`            // "model_update" | "statistics" | "metrics"
	Bytes        int64   `json:"bytes"`           // size of the message
	MaxBytes     int64   `json:"max_bytes"`       // size bound the site computed for the declared model
	Records      int64   `json:"records"`         // records that contributed
	Noise        *Noise  `json:"noise,omitempty"` // noise applied, nil = none
	EpsilonSpent float64 `json:"epsilon_spent"`   // ε the job has spent at this site, this message included (at the job's δ)
	// DatasetEpsilonSpent is the dataset's lifetime ε across every job and
	// query, this message included (at the site's budget δ,
	// limits.max_delta).
	DatasetEpsilonSpent float64 `json:"dataset_epsilon_spent"`
}

// Noise is the noise a site applied to a message.
type Noise struct {
	Mechanism string  `json:"mechanism"`
	Sigma     float64 `json:"sigma"`
	ClipNorm  float64 `json:"clip_norm"`
}

// SampleInput returns a well-formed admission input: a training job on an EU
// hospital's dataset with one column of each classification, sent to an EU
// coordinator, with differential privacy on. Load evaluates every policy on
// it (and on variants of it) so a policy that fails at evaluation time never
// goes live; tests and the CLI use it as a template.
func SampleInput() Input {
	return Input{
		Version: InputVersion,
		Job: Job{
			ID:        "job-0001",
			Type:      "train",
			Requester: Requester{ID: "spiffe://federa.example/user/alice", Role: "data-scientist"},
			Project:   "readmission",
			Dataset:   "admissions",
			Features:  []string{"age", "ward", "diagnosis"},
			Label:     "readmitted",
			Model: Model{Type: "logreg", Task: "classification", Params: map[string]any{
				"local_epochs": 1, "batch_size": 32, "learning_rate": 0.1, "l2": 0.0001,
			}},
			Rounds:  10,
			Privacy: Privacy{DP: &DP{Epsilon: 4, Delta: 1e-6, ClipNorm: 1}, SecureAggregation: true, MinCount: 10},
		},
		Site: Site{
			Name:         "eu/paris",
			Jurisdiction: "eu",
			Dataset: DatasetMeta{Name: "admissions", Columns: []Column{
				{Name: "patient_name", Classification: Personal, Tags: []string{"direct_identifier"}},
				{Name: "age", Classification: Personal},
				{Name: "ward", Classification: Internal},
				{Name: "diagnosis", Classification: SpecialCategory, Tags: []string{"health"}},
				{Name: "readmitted", Classification: Public},
			}, Label: &LabelMeta{Column: "readmitted", Classes: 2, SmallestClass: 412}},
		},
		Destination: Destination{ID: "spiffe://federa.example/coordinator", Jurisdiction: "eu"},
	}
}

// SampleEgress returns SampleInput with a model update that the default
// policy lets leave.
func SampleEgress() Input {
	in := SampleInput()
	in.Egress = &Egress{
		Kind: KindModelUpdate, Bytes: 2048, MaxBytes: 4096, Records: 120,
		Noise:        &Noise{Mechanism: "gaussian", Sigma: 1.1, ClipNorm: 1},
		EpsilonSpent: 0.8,
	}
	return in
}
