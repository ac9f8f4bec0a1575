package site

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// TestRefusalOfDefaultedColumnsIsShort: a site.yaml that sets no
// default_classification makes every column personal; with a coordinator
// outside the adequacy list every job is refused. The refusal must say
// why in a line a person reads — naming default_classification — not list
// all 31 columns (2 KB a site).
func TestRefusalOfDefaultedColumnsIsShort(t *testing.T) {
	dir := t.TempDir()
	devIdentity(t, filepath.Join(dir, "id"))
	data, err := filepath.Abs("../testdata/breast-cancer/eu-paris.csv")
	if err != nil {
		t.Fatal(err)
	}
	a := agentFromYAML(t, dir, `identity: {dir: id}
coordinator: {address: "127.0.0.1:7443", id: "spiffe://example.org/coordinator", jurisdiction: us}
datasets:
  - {name: bc, path: `+data+`, label: label}
`)
	ad := a.admit(context.Background(), admitTask(nil, "label"), true)
	if ad.answer.GetOutcome() != federav1.Admission_OUTCOME_DENY {
		t.Fatalf("outcome %s, want deny", ad.answer.GetOutcome())
	}
	refusal := strings.Join(ad.answer.GetReasons(), "; ")
	t.Logf("refusal (%d bytes): %s", len(refusal), refusal)
	if len(refusal) > 400 {
		t.Errorf("refusal is %d bytes; want at most 400", len(refusal))
	}
	for _, w := range []string{"31 columns", "and 29 more", "default_classification", `dataset "bc"`} {
		if !strings.Contains(refusal, w) {
			t.Errorf("refusal lacks %q", w)
		}
	}
}
