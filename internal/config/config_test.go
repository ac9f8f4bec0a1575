package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// daemon is shaped like the coordinator's and site's files: nested
// sections, lists and durations.
type daemon struct {
	Listen   string `yaml:"listen"`
	Identity struct {
		Dir string `yaml:"dir"`
	} `yaml:"identity"`
	Sites     []string `yaml:"sites"`
	Heartbeat Duration `yaml:"heartbeat"`
	Workers   int      `yaml:"workers"`
}

const valid = `listen: 127.0.0.1:7443
identity:
  dir: /etc/federa/id
sites:
  - spiffe://example.org/site/eu/paris
heartbeat: 5s
workers: 4
`

func TestDecodeValid(t *testing.T) {
	var d daemon
	if err := Decode("c.yaml", []byte(valid), &d); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if d.Listen != "127.0.0.1:7443" || d.Identity.Dir != "/etc/federa/id" || len(d.Sites) != 1 ||
		d.Heartbeat.D() != 5*time.Second || d.Workers != 4 {
		t.Errorf("Decode = %+v", d)
	}
}

func TestDecodeLeavesUnsetFieldsAlone(t *testing.T) {
	d := daemon{Listen: "default:1", Workers: 9}
	if err := Decode("c.yaml", []byte("heartbeat: 1m\n"), &d); err != nil {
		t.Fatal(err)
	}
	if d.Listen != "default:1" || d.Workers != 9 || d.Heartbeat.D() != time.Minute {
		t.Errorf("Decode = %+v; want preset fields kept", d)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown field", "listen: x\nlisten_addr: y\n", []string{"config c.yaml", "line 2", "listen_addr"}},
		{"unknown nested field", "identity:\n  dir: d\n  path: p\n", []string{"config c.yaml", "line 3", "path"}},
		{"several unknown fields", "lisen: x\nworker: 3\n", []string{"line 1", "lisen", "line 2", "worker"}},
		{"wrong type", "workers: many\n", []string{"config c.yaml", "line 1", "many"}},
		{"list for a string", "listen: [a, b]\n", []string{"line 1"}},
		{"string for a list", "sites: spiffe://example.org/site/eu/paris\n", []string{"line 1"}},
		{"bad duration", "listen: x\nheartbeat: soon\n", []string{"config c.yaml", "line 2", `"soon" is not a duration`, "10s"}},
		{"duration without unit", "heartbeat: 5\n", []string{"line 1", `"5" is not a duration`}},
		{"duration as a mapping", "heartbeat:\n  seconds: 5\n", []string{"line 2", "want a duration"}},
		{"malformed", "listen: [x\n", []string{"config c.yaml", "line 1"}},
		{"tab indentation", "identity:\n\tdir: d\n", []string{"config c.yaml"}},
		{"empty", "", []string{"config c.yaml", "file is empty"}},
		{"whitespace", " \n\t\n", []string{"config c.yaml", "file is empty"}},
		{"comments only", "# listen: x\n", []string{"config c.yaml", "file is empty"}},
		{"two documents", valid + "---\n" + valid, []string{"config c.yaml", "more than one YAML document"}},
		{"trailing separator", valid + "---\n", []string{"more than one YAML document"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d daemon
			err := Decode("c.yaml", []byte(tt.yaml), &d)
			if err == nil {
				t.Fatalf("Decode accepted %q as %+v", tt.yaml, d)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "yaml: unmarshal errors") {
				t.Errorf("error %q keeps the decoder's preamble", err)
			}
		})
	}
}

func TestDecodeFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "coordinator.yaml")
	if err := os.WriteFile(good, []byte(valid), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("workers: 1\nwokers: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("valid", func(t *testing.T) {
		var d daemon
		if err := DecodeFile(good, &d); err != nil || d.Workers != 4 {
			t.Errorf("DecodeFile = %+v, %v", d, err)
		}
	})
	t.Run("error names the file", func(t *testing.T) {
		var d daemon
		err := DecodeFile(bad, &d)
		if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("DecodeFile(bad) = %v; want the path and line", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		missing := filepath.Join(dir, "missing.yaml")
		var d daemon
		err := DecodeFile(missing, &d)
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
			t.Errorf("DecodeFile(missing) = %v; want a not-exist error naming the path", err)
		}
	})
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string // "" means success
	}{
		{"90s", 90 * time.Second, ""},
		{"2m", 2 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"1.5s", 1500 * time.Millisecond, ""},
		{`"10s"`, 10 * time.Second, ""},
		{"0s", 0, ""},
		{"0", 0, ""},
		{"-5s", -5 * time.Second, ""},
		{"soon", 0, `line 1: field d: "soon" is not a duration; want e.g. 10s or 2m`},
		{"10", 0, `"10" is not a duration`},
		{"10 s", 0, `"10 s" is not a duration`},
		{"1d", 0, `"1d" is not a duration`},
		{`""`, 0, `"" is not a duration`},
		{"[10s]", 0, "line 1: field d: want a duration like 10s or 2m"},
		{"{s: 1}", 0, "want a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var v struct {
				D Duration `yaml:"d"`
			}
			err := Decode("d.yaml", []byte("d: "+tt.in+"\n"), &v)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if v.D.D() != tt.want {
				t.Errorf("D() = %s, want %s", v.D.D(), tt.want)
			}
		})
	}
}

func TestDurationRoundTrip(t *testing.T) {
	for _, d := range []time.Duration{0, time.Second, 90 * time.Second, 36*time.Hour + 1500*time.Millisecond} {
		in := struct {
			D Duration `yaml:"d"`
		}{Duration(d)}
		out, err := yaml.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if want := "d: " + d.String() + "\n"; string(out) != want {
			t.Errorf("Marshal(%s) = %q, want %q", d, out, want)
		}
		var back struct {
			D Duration `yaml:"d"`
		}
		if err := Decode("rt.yaml", out, &back); err != nil || back.D != in.D {
			t.Errorf("round trip of %s = %s, %v", d, back.D.D(), err)
		}
	}
}

// An operator fixes a file from one error: it names every problem with
// its line and key path, lists the keys valid where a key is unknown,
// and speaks YAML, not Go.
func TestDecodeReportsEveryProblemWithValidKeys(t *testing.T) {
	const file = `listne: 127.0.0.1:7443
identity:
  dri: /etc/federa/id
workers: many
heartbeat: soon
sites: spiffe://example.org/site/eu/paris
`
	var d daemon
	err := Decode("c.yaml", []byte(file), &d)
	var fe *FieldErrors
	if !errors.As(err, &fe) {
		t.Fatalf("Decode = %v; want *FieldErrors", err)
	}
	want := []string{
		"line 1: field listne: unknown; valid keys: listen, identity, sites, heartbeat, workers (did you mean listen?)",
		"line 3: field identity.dri: unknown; valid keys in identity: dir (did you mean dir?)",
		`line 4: field workers: "many" is not a whole number`,
		`line 5: field heartbeat: "soon" is not a duration; want e.g. 10s or 2m`,
		"line 6: field sites: want a list (one `- item` per line)",
	}
	if len(fe.Errs) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(fe.Errs), len(want), err)
	}
	for i, w := range want {
		if i < len(fe.Errs) && fe.Errs[i].Error() != w {
			t.Errorf("problem %d = %q\nwant        %q", i, fe.Errs[i], w)
		}
	}
	if !strings.HasPrefix(err.Error(), "config c.yaml: line 1:") {
		t.Errorf("error %q does not start by naming the file", err)
	}
	for _, goism := range []string{"in type", "config.daemon", "into int", "not found"} {
		if strings.Contains(err.Error(), goism) {
			t.Errorf("error names Go types (%q):\n%v", goism, err)
		}
	}
}

func TestDecodeKeepsTheFieldsItCouldRead(t *testing.T) {
	var d daemon
	err := Decode("c.yaml", []byte("listen: 127.0.0.1:1\nwokers: 3\nidentity:\n  dir: /id\n"), &d)
	if err == nil {
		t.Fatal("Decode accepted an unknown key")
	}
	if d.Listen != "127.0.0.1:1" || d.Identity.Dir != "/id" {
		t.Errorf("Decode = %+v; want the known fields decoded so the caller can check them too", d)
	}
}

func TestDecodeListElementsAndFloatsForCounts(t *testing.T) {
	type item struct {
		Name string `yaml:"name"`
	}
	var v struct {
		Items []item `yaml:"items"`
		N     int    `yaml:"n"`
	}
	err := Decode("c.yaml", []byte("items:\n  - name: a\n  - nmae: b\nn: 1.5\n"), &v)
	for _, w := range []string{
		"line 3: field items[1].nmae: unknown; valid keys in items[1]: name (did you mean name?)",
		`line 4: field n: "1.5" is not a whole number`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Decode = %v; want %q", err, w)
		}
	}
}
