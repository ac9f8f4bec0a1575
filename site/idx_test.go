package site

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// writeIDXPair writes n gzip'd 4×4 images (pixel k of image i is (i+k)%256)
// and their labels, i%3, as images.gz and labels.gz in dir.
func writeIDXPair(t *testing.T, dir string, n int) {
	t.Helper()
	images := binary.BigEndian.AppendUint32(nil, 0x00000803)
	for _, d := range []uint32{uint32(n), 4, 4} {
		images = binary.BigEndian.AppendUint32(images, d)
	}
	labels := binary.BigEndian.AppendUint32(nil, 0x00000801)
	labels = binary.BigEndian.AppendUint32(labels, uint32(n))
	for i := range n {
		for k := range 16 {
			images = append(images, byte(i+k))
		}
		labels = append(labels, byte(i%3))
	}
	for name, b := range map[string][]byte{"images.gz": images, "labels.gz": labels} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		w := gzip.NewWriter(f)
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIDXDataset: a site.yaml dataset of format idx, its two files named
// relative to site.yaml, is admitted and loaded like a CSV file: the
// header, the label profile and the table come from the IDX pair.
func TestIDXDataset(t *testing.T) {
	dir := t.TempDir()
	devIdentity(t, filepath.Join(dir, "id"))
	writeIDXPair(t, dir, 300)
	cfgPath := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(cfgPath, []byte(`identity: {dir: id}
coordinator: {address: "127.0.0.1:7443", id: "spiffe://example.org/coordinator", jurisdiction: eu}
datasets:
  - name: fmnist
    format: idx
    path: images.gz
    labels: labels.gz
    classes: [T-shirt/top, Trouser, Pullover]
    label: label
    default_classification: internal
state_dir: state
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadFile(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	ds := &cfg.Datasets[0]
	if ds.Labels != filepath.Join(dir, "labels.gz") {
		t.Fatalf("labels path %q not resolved against site.yaml's directory", ds.Labels)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })

	features, err := touched(ds, admitTask(nil, "label").GetSpec(), []string{"px0_0"})
	if err != nil || len(features) != 15 || features[0] != "px0_1" || slices.Contains(features, "label") {
		t.Fatalf("touched = %v, %v; want the 15 pixels but px0_0", features, err)
	}
	m, err := profileLabel(ds, "label")
	if err != nil || m.Classes != 3 || m.Numeric || m.SmallestClass != 100 {
		t.Fatalf("profileLabel = %+v, %v", m, err)
	}

	task := admitTask([]string{"px1_1", "px2_2"}, "label")
	task.Spec.Dataset = "fmnist"
	ad := a.admit(context.Background(), task, true)
	if ad.answer.GetOutcome() != federav1.Admission_OUTCOME_ALLOW {
		t.Fatalf("admission: %v", ad.answer)
	}
	p, err := a.load(task, ds, []string{"px1_1", "px2_2"}, ad)
	if err != nil {
		t.Fatal(err)
	}
	if p.train.Rows()+p.eval.Rows() != 300 || !slices.Equal(p.train.Features, []string{"px1_1", "px2_2"}) {
		t.Fatalf("loaded %d+%d rows of %v", p.train.Rows(), p.eval.Rows(), p.train.Features)
	}
	if got := p.train.Classes(); !slices.Equal(got, []string{"Pullover", "T-shirt/top", "Trouser"}) {
		t.Fatalf("classes %v", got)
	}
}

func TestIDXConfigErrors(t *testing.T) {
	dir := t.TempDir()
	writeIDXPair(t, dir, 3)
	csv := filepath.Join(dir, "d.csv")
	if err := os.WriteFile(csv, []byte("a,label\n1,x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "images.gz")
	for _, tc := range []struct {
		name string
		ds   Dataset
		want string
	}{
		{"idx without labels", Dataset{Name: "a", Format: "idx", Path: img}, "datasets[0].labels: required for format idx"},
		{"missing labels", Dataset{Name: "a", Format: "idx", Path: img, Labels: filepath.Join(dir, "nope.gz")}, "datasets[0].labels: stat"},
		{"labels for csv", Dataset{Name: "a", Path: csv, Labels: img}, "datasets[0].labels: only for format idx"},
		{"classes for csv", Dataset{Name: "a", Path: csv, Classes: []string{"x"}}, "datasets[0].classes: only for format idx"},
		{"duplicate class", Dataset{Name: "a", Format: "idx", Path: img, Labels: img, Classes: []string{"x", "y", "x"}}, `datasets[0].classes[2]: "x" is empty or listed twice`},
		{"xlsx", Dataset{Name: "a", Format: "xlsx", Path: csv}, `datasets[0].format: "xlsx" is not supported; valid: csv, idx, parquet, postgres`},
		{"postgres with a path", Dataset{Name: "a", Format: "postgres", Path: csv}, `datasets[0].path: not for format postgres`},
		{"postgres without a table or dsn", Dataset{Name: "a", Format: "postgres"}, `datasets[0].table: required for format postgres`},
		{"postgres dsn_env unset", Dataset{Name: "a", Format: "postgres", Table: "t", DSNEnv: "FEDERA_TEST_UNSET_DSN"}, `datasets[0].dsn_env: environment variable FEDERA_TEST_UNSET_DSN is not set or empty`},
		{"table on a csv", Dataset{Name: "a", Path: csv, Table: "t"}, `table, dsn_env and dsn_file are only for format postgres`},
		{"labels on parquet", Dataset{Name: "a", Format: "parquet", Path: csv, Labels: csv}, `labels: only for format idx (a parquet dataset`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&Config{Datasets: []Dataset{tc.ds}}).Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v lacks %q", err, tc.want)
			}
		})
	}
}
