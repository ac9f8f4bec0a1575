package cli

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/coordinator"
	"github.com/federa-dev/federa/site"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// devIdentities makes a dev CA and issues an SVID for each id into the
// directory named beside it.
func devIdentities(t *testing.T, ids map[string]string) *attest.CA {
	t.Helper()
	ca, err := attest.NewCA(spiffeid.RequireTrustDomainFromString("example.org"))
	if err != nil {
		t.Fatal(err)
	}
	for id, dir := range ids {
		if err := ca.IssueToDir(spiffeid.RequireFromString(id), time.Hour, dir); err != nil {
			t.Fatal(err)
		}
	}
	return ca
}

// TestInitConfigsStart: the configs `coordinator init` and `site init`
// write load with the daemons' own loaders from any working directory,
// start the daemons, and run a job to the end under the built-in policy.
// The paths were typed relative to one working directory and the daemons
// are started from another, so a path written relative to the wrong one
// fails here.
func TestInitConfigsStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a coordinator and a site and trains; skipped with -short")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "etc")
	alice := filepath.Join(dir, "alice")
	devIdentities(t, map[string]string{
		"spiffe://example.org/coordinator":   filepath.Join(conf, "coordinator", "identity"),
		"spiffe://example.org/site/eu/paris": filepath.Join(conf, "paris", "identity"),
		"spiffe://example.org/user/alice":    alice,
	})
	data, err := filepath.Abs("../testdata/breast-cancer/eu-paris.csv")
	if err != nil {
		t.Fatal(err)
	}
	// Typed from dir: the config paths and the data path are relative.
	t.Chdir(dir)
	relData, err := filepath.Rel(dir, data)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	coordYAML := filepath.Join("etc", "coordinator", "coordinator.yaml")
	siteYAML := filepath.Join("etc", "paris", "site.yaml")
	out, errs, code := execute(t, "coordinator", "init", coordYAML, "--listen", addr, "--site", "eu/paris", "--user", "alice=data-scientist")
	if code != 0 || !strings.Contains(out, "it loads") {
		t.Fatalf("coordinator init: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = execute(t, "site", "init", siteYAML, "--coordinator", addr, "--jurisdiction", "eu", "--dataset", "breast-cancer="+relData)
	if code != 0 || !strings.Contains(out, "it loads") {
		t.Fatalf("site init: exit %d\n%s%s", code, out, errs)
	}
	siteBody, _ := os.ReadFile(siteYAML)
	coordBody, _ := os.ReadFile(coordYAML)
	coordYAML, siteYAML = filepath.Join(dir, coordYAML), filepath.Join(dir, siteYAML)

	t.Run("every field is written and explained", func(t *testing.T) {
		for _, c := range []struct {
			name string
			typ  reflect.Type
			body string
		}{{"site.yaml", reflect.TypeFor[site.File](), string(siteBody)}, {"coordinator.yaml", reflect.TypeFor[coordinator.File](), string(coordBody)}} {
			for _, key := range yamlKeys(c.typ, "") {
				if key == "log_level" { // reserved: the --log-level flag sets it
					continue
				}
				leaf := key[strings.LastIndex(key, ".")+1:]
				if !strings.Contains(c.body, leaf+":") {
					t.Errorf("%s from init does not mention %s", c.name, key)
				}
			}
			if !strings.Contains(c.body, "relative to the directory this file is in") {
				t.Errorf("%s does not say what relative paths are relative to", c.name)
			}
		}
		if !strings.Contains(string(siteBody), "default_classification: internal") || !strings.Contains(string(siteBody), "Left\n    # out, it is personal") {
			t.Errorf("site.yaml does not set and explain default_classification:\n%s", siteBody)
		}
	})

	// Started from elsewhere, as a service manager would.
	t.Chdir(t.TempDir())
	ccfg, err := coordinator.LoadFile(coordYAML, nil)
	if err != nil {
		t.Fatalf("the coordinator.yaml init wrote does not load: %v\n%s", err, coordBody)
	}
	if want := filepath.Join(conf, "coordinator", "state"); ccfg.StateDir != want {
		t.Errorf("state_dir resolves to %s, want %s (beside the file)", ccfg.StateDir, want)
	}
	scfg, err := site.LoadFile(siteYAML, nil)
	if err != nil {
		t.Fatalf("the site.yaml init wrote does not load: %v\n%s", err, siteBody)
	}
	c, err := coordinator.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := site.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- c.Run(ctx) }()
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("daemon: %v", err)
			}
		}
		a.Close()
		c.Close()
	})

	job := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(job, []byte("name: init-check\ndataset: breast-cancer\nlabel: label\nmodel: {type: logreg}\nrounds: 2\nmin_sites: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var submitted string
	for deadline := time.Now().Add(time.Minute); ; {
		out, errs, code = execute(t, "job", "submit", job, "--coordinator", addr, "--identity", alice, "--watch")
		if code == 0 {
			submitted = out
			break
		}
		if time.Now().After(deadline) || !strings.Contains(errs, "Unavailable") {
			t.Fatalf("a job on the init configs: exit %d\n%s%s", code, out, errs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(submitted, "round 2/2") {
		t.Fatalf("the job did not run its rounds:\n%s", submitted)
	}

	t.Run("an existing file is kept unless --force", func(t *testing.T) {
		before, _ := os.ReadFile(siteYAML)
		_, errs, code := execute(t, "site", "init", siteYAML, "--coordinator", "other.example.org:7443", "--jurisdiction", "us", "--dataset", "x="+data)
		if code == 0 || !strings.Contains(errs, "--force") {
			t.Fatalf("init over an existing file: exit %d: %s", code, errs)
		}
		if after, _ := os.ReadFile(siteYAML); string(after) != string(before) {
			t.Fatal("init without --force changed the existing file")
		}
		_, errs, code = execute(t, "site", "init", siteYAML, "--coordinator", "other.example.org:7443", "--jurisdiction", "us", "--dataset", "x="+data, "--force")
		if after, _ := os.ReadFile(siteYAML); code != 0 || !strings.Contains(string(after), "other.example.org:7443") {
			t.Fatalf("init --force: exit %d: %s", code, errs)
		}
	})
}

// TestInitRefusesBadFlags: each bad flag is named, with what is valid.
func TestInitRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	data, _ := filepath.Abs("../testdata/breast-cancer/eu-paris.csv")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"site", "init", filepath.Join(dir, "a.yaml"), "--dataset", "bc=" + data}, "flag --jurisdiction: required"},
		{[]string{"site", "init", filepath.Join(dir, "b.yaml"), "--jurisdiction", "eu"}, "flag --dataset: required"},
		{[]string{"site", "init", filepath.Join(dir, "c.yaml"), "--jurisdiction", "eu", "--dataset", "bc=" + data, "--default-classification", "secret"}, "valid: public, internal, personal, special_category"},
		{[]string{"site", "init", filepath.Join(dir, "d.yaml"), "--jurisdiction", "eu", "--dataset", "bc=" + data, "--label", "nope"}, `flag --label: "nope" is not a column`},
		{[]string{"site", "init", filepath.Join(dir, "e.yaml"), "--jurisdiction", "eu", "--dataset", "bc=/no/such.csv"}, "/no/such.csv"},
		{[]string{"coordinator", "init", filepath.Join(dir, "f.yaml")}, "flag --site: required"},
		{[]string{"coordinator", "init", filepath.Join(dir, "g.yaml"), "--site", "paris"}, `flag --site "paris"`},
		{[]string{"coordinator", "init", filepath.Join(dir, "h.yaml"), "--site", "eu/paris", "--user", "alice"}, "want NAME=ROLE"},
	} {
		_, errs, code := execute(t, tc.args...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want it to contain %q", tc.args, code, errs, tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a refused init left files behind: %v", entries)
	}
}

// yamlKeys lists the yaml keys of a config struct, nested ones dotted.
func yamlKeys(typ reflect.Type, prefix string) []string {
	var out []string
	for f := range typ.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		out = append(out, key)
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft.PkgPath() != "github.com/federa-dev/federa/internal/config" {
			out = append(out, yamlKeys(ft, key+".")...)
		}
	}
	return out
}
