package site

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/federa-dev/federa/dataset"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// columnsAgent is a site serving the demo's eu/paris file with
// mean_radius as special-category health data, patient_id-like
// mean_texture as a direct identifier, and the built-in default policy.
func columnsAgent(t testing.TB) *Agent {
	t.Helper()
	dir := t.TempDir()
	devIdentity(t, filepath.Join(dir, "id"))
	data, err := filepath.Abs("../testdata/breast-cancer/eu-paris.csv")
	if err != nil {
		t.Fatal(err)
	}
	a := agentFromYAML(t, dir, `identity: {dir: id}
coordinator: {address: "127.0.0.1:7443", id: "spiffe://example.org/coordinator", jurisdiction: eu}
datasets:
  - name: bc
    path: `+data+`
    default_classification: internal
    columns:
      - {name: mean_radius, classification: special_category, tags: [health]}
      - {name: mean_texture, classification: personal, tags: [direct_identifier]}
state_dir: state
`)
	return a
}

func admitTask(features []string, label string) *federav1.Task {
	return &federav1.Task{
		TaskId: "job-1/r0/admit/eu/paris/00", JobId: "job-1", Kind: federav1.TaskKind_TASK_KIND_ADMIT, DryRun: true,
		Requester: "spiffe://example.org/user/alice", RequesterRole: "data-scientist",
		Spec: &federav1.JobSpec{Name: "t", Dataset: "bc", Label: label, Features: features, Rounds: 1,
			Model: &federav1.ModelSpec{Type: "logreg"}, MinSites: 1, EvalFraction: 0.2},
	}
}

// TestColumnNamesAreMatchedExactly: a job that names a column in any form
// other than the site's header has it (the pen-test's " mean_radius") is
// refused at admission, before the policy can judge a name that matches
// nothing it classified; the refusal names only the asked-for column.
func TestColumnNamesAreMatchedExactly(t *testing.T) {
	a := columnsAgent(t)
	ctx := context.Background()
	// The canonical names: mean_radius is special category (DP required),
	// mean_texture a direct identifier (never used).
	for _, c := range []string{"mean_radius", "mean_texture"} {
		ad := a.admit(ctx, admitTask([]string{c}, "label"), true)
		if ad.answer.GetOutcome() != federav1.Admission_OUTCOME_DENY {
			t.Fatalf("the default policy admitted %s without DP: %v", c, ad.answer)
		}
	}
	for _, name := range []string{" mean_radius", "mean_radius ", "\tmean_radius", "mean_radius\n", "mean_radius\u00a0",
		"\u200bmean_radius", "\ufeffmean_radius", "Mean_Radius", "MEAN_RADIUS", " mean_texture", "mean_texture\r"} {
		t.Run(name, func(t *testing.T) {
			ad := a.admit(ctx, admitTask([]string{name, "mean_area"}, "label"), true)
			if ad.answer.GetOutcome() != federav1.Admission_OUTCOME_DENY {
				t.Fatalf("admitted feature %q: %v", name, ad.answer)
			}
			why := strings.Join(ad.answer.GetReasons(), "; ")
			if !strings.Contains(why, "is not a column of dataset") && !strings.Contains(why, "the job spec is invalid: field features[0]") || strings.Contains(why, "mean_smoothness") {
				t.Fatalf("refusal %q should say the name is invalid or not a column, and list none of the file's columns", why)
			}
			// Behind the spec check, the header check refuses the name on
			// its own (a site must not rely on one layer).
			if _, err := touched(&a.cfg.Datasets[0], admitTask([]string{name}, "label").GetSpec(), nil); err == nil || !strings.Contains(err.Error(), "is not a column of dataset") {
				t.Fatalf("the header check let %q through: %v", name, err)
			}
			// As the label, too.
			ad = a.admit(ctx, admitTask([]string{"mean_area"}, name), true)
			if ad.answer.GetOutcome() != federav1.Admission_OUTCOME_DENY {
				t.Fatalf("admitted label %q: %v", name, ad.answer)
			}
		})
	}
}

// TestLabelIsARelease: a label's values leave as class names, so a
// high-cardinality numeric column (mean_area: 121 distinct values at
// eu/paris) is refused as a label, and a label with a rare value is
// refused both by the policy at admission and by the agent when it loads
// the rows.
func TestLabelIsARelease(t *testing.T) {
	a := columnsAgent(t)
	ctx := context.Background()
	ad := a.admit(ctx, admitTask([]string{"mean_smoothness"}, "mean_area"), true)
	if ad.answer.GetOutcome() != federav1.Admission_OUTCOME_DENY {
		t.Fatalf("label mean_area admitted: %v", ad.answer)
	}
	why := strings.Join(ad.answer.GetReasons(), "; ")
	if !strings.Contains(why, `label "mean_area"`) {
		t.Fatalf("refusal %q does not name the label", why)
	}
	if ok := a.admit(ctx, admitTask([]string{"mean_area"}, "label"), true); ok.answer.GetOutcome() != federav1.Admission_OUTCOME_ALLOW {
		t.Fatalf("the ordinary label was refused: %v", ok.answer)
	}

	// A label where one value has 3 rows: refused by the policy, and by the
	// agent's own check on the loaded rows.
	rare := filepath.Join(t.TempDir(), "rare.csv")
	var b strings.Builder
	b.WriteString("x,label\n")
	for i := range 40 {
		cls := "common"
		if i < 3 {
			cls = "rare"
		}
		b.WriteString(strings.Repeat("1", 1+i%3) + "," + cls + "\n")
	}
	if err := os.WriteFile(rare, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	a.cfg.Datasets[0].Path = rare
	ad = a.admit(ctx, admitTask([]string{"x"}, "label"), true)
	if ad.answer.GetOutcome() != federav1.Admission_OUTCOME_DENY || !strings.Contains(strings.Join(ad.answer.GetReasons(), ";"), "has a value held by fewer than 10 rows") {
		t.Fatalf("a label value on 3 rows was admitted: %v", ad.answer)
	}
	tab, err := dataset.LoadCSV(rare, dataset.Options{Label: "label", Features: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkClassSizes("label", 10, tab); err == nil || !strings.Contains(err.Error(), `label "label" has a value held by fewer rows`) {
		t.Fatalf("checkClassSizes: %v", err)
	}
	if err := checkClassSizes("label", 3, tab); err != nil {
		t.Fatalf("every class has 3 rows or more: %v", err)
	}
}

// FuzzColumnName mutates a column name a job asks for: whatever the
// mutation, the site either refuses the job or admits exactly what it
// would admit for a column of its header (the name then IS that column),
// and an admitted job's loader reads exactly the columns the policy judged.
func FuzzColumnName(f *testing.F) {
	for _, s := range []string{"mean_radius", " mean_radius", "mean_radius\t", "Mean_radius", "mean_texture", "\u200bmean_texture", "label", "mean_area"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	a := columnsAgent(f)
	header, err := dataset.ReadHeader(a.cfg.Datasets[0].Path)
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	canonical := map[string]federav1.Admission_Outcome{}
	for _, c := range header {
		canonical[c] = a.admit(ctx, admitTask([]string{c}, "label"), true).answer.GetOutcome()
	}
	f.Fuzz(func(t *testing.T, name string, asLabel bool) {
		features, label := []string{name}, "label"
		if asLabel {
			features, label = []string{"mean_area"}, name
		}
		if name == "" || name == "mean_area" && asLabel || name == "label" && !asLabel {
			return // not a question about name
		}
		ad := a.admit(ctx, admitTask(features, label), true)
		got := ad.answer.GetOutcome()
		if got == federav1.Admission_OUTCOME_DENY {
			return
		}
		if !slices.Contains(header, name) {
			t.Fatalf("%q is no column of the header but was admitted (%v)", name, ad.answer)
		}
		if !asLabel && got != canonical[name] {
			t.Fatalf("%q: %v, but the same column asked for alone: %v", name, got, canonical[name])
		}
		tab, err := dataset.LoadCSV(a.cfg.Datasets[0].Path, dataset.Options{Label: label, Features: features})
		if err != nil {
			return // a label that is not a class column fails to load; nothing left
		}
		if !slices.Equal(tab.Features, ad.features) {
			t.Fatalf("the loader read %v; the policy judged %v", tab.Features, ad.features)
		}
	})
}

// TestSiteChecksTheSpecItself: a spec no coordinator should send (the
// pen-test's 300k features took 500 MB at a site) is refused by the site
// without reading its data, whoever sent it.
func TestSiteChecksTheSpecItself(t *testing.T) {
	a := columnsAgent(t)
	features := make([]string, 300_000)
	for i := range features {
		features[i] = "mean_area"
	}
	ad := a.admit(context.Background(), admitTask(features, "label"), true)
	why := strings.Join(ad.answer.GetReasons(), "; ")
	if ad.answer.GetOutcome() != federav1.Admission_OUTCOME_DENY || !strings.Contains(why, "field features: 300000 columns listed; at most 10000") {
		t.Fatalf("300k features: %v", ad.answer)
	}
}
