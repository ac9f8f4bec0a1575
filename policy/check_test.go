package policy

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPasses(t *testing.T) {
	for _, dir := range []string{"default", "packs/eu-gdpr-example", "packs/us-hipaa-example", "packs/sg-pdpa-example"} {
		t.Run(dir, func(t *testing.T) {
			if err := Check(context.Background(), dir); err != nil {
				t.Error(err)
			}
		})
	}
	if err := CheckFS(context.Background(), Default(), "."); err != nil {
		t.Errorf("CheckFS(Default()): %v", err)
	}
}

func TestCheckListsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a.rego":      "package federa\n\nallow if {\n",
		"b.rego":      "package federa\n\ndeny[msg] { msg := 1 }\n",
		"data.json":   "{\n  \"federa\": {\n    \"limits\": 8,\n  }\n}\n",
		"c/data.yaml": "federa:\n  a: [1, 2\n",
		"list.json":   "[1, 2]",
	})
	err := Check(context.Background(), dir)
	if err == nil {
		t.Fatal("Check passed")
	}
	var problems Problems
	if !errors.As(err, &problems) || len(problems) < 5 {
		t.Fatalf("Check = %v, want a problem per broken file", err)
	}
	for _, want := range []string{
		filepath.Join(dir, "a.rego") + ":",
		filepath.Join(dir, "b.rego") + ":3",
		filepath.Join(dir, "data.json") + ":4",
		filepath.Join(dir, "c/data.yaml"),
		filepath.Join(dir, "list.json") + ":1: a data file must hold an object",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error lacks %q:\n%v", want, err)
		}
	}
}

func TestCheckStrictAndData(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{
			name: "unused variable in a test",
			files: map[string]string{
				"p.rego":      "package p\n\nx := 1\n",
				"p_test.rego": "package p_test\n\ntest_x if {\n\ty := 2\n\tdata.p.x == 1\n}\n",
			},
			want: "p_test.rego:4: rego_compile_error: assigned var y unused",
		},
		{
			name: "default policy with invalid site data",
			files: map[string]string{
				"data.json": `{"federa": {"limits": {"max_epsilon": "8", "min_records": 10}}}`,
			},
			want: "data.federa.limits.max_epsilon must be a number greater than 0, got 8",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.name == "default policy with invalid site data" {
				copyDefault(t, dir)
			}
			writeFiles(t, dir, tt.files)
			err := Check(context.Background(), dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
