package sign_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/federa-dev/federa/attest/sign"
)

// cosignVersion is the cosign release our bundles are checked against; the
// Makefile's cosign target builds the same one.
const cosignVersion = "v2.6.5"

// cosignBinary finds the cosign CLI: $FEDERA_COSIGN, else .cache/bin/cosign
// under the module root, where `make cosign` puts it. The test fails rather
// than skips without it: this is the test that shows a user with nothing
// but cosign can check a release, and a skip would hide its absence in CI.
func cosignBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FEDERA_COSIGN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("FEDERA_COSIGN=%s: %v", p, err)
		}
		return p
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, ".cache", "bin", "cosign")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("cosign %s is not built (%v).\n"+
			"Build it once with `make cosign` in %s (5-10 minutes on 2 cores the first time, seconds after), or point FEDERA_COSIGN at a cosign %s binary.",
			cosignVersion, err, root, cosignVersion)
	}
	return p
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
}

type cosignRunner struct {
	bin, dir string
	env      []string
}

// run runs cosign in the test directory with an empty home, so a user's
// ~/.sigstore (a cached TUF root, say) cannot make the test pass or fail.
func (c cosignRunner) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = c.dir
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	t.Logf("$ cosign %s\n%s(exit: %v)", strings.Join(args, " "), out, errOrZero(err))
	return string(out), err
}

func errOrZero(err error) any {
	if err == nil {
		return 0
	}
	return err
}

func TestCosignVerifiesBundles(t *testing.T) {
	bin := cosignBinary(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	cosign := cosignRunner{bin: bin, dir: dir, env: []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"TUF_ROOT=" + filepath.Join(home, ".sigstore", "root"),
	}}

	out, err := cosign.run(t, "version")
	if err != nil {
		t.Fatalf("cosign version: %v", err)
	}
	if v := regexp.MustCompile(`GitVersion:\s*(\S+)`).FindStringSubmatch(out); v == nil || v[1] != cosignVersion {
		t.Fatalf("%s is not cosign %s; rebuild it with `make cosign`", bin, cosignVersion)
	}

	// A release directory as a user receives it.
	s, err := sign.LoadOrCreate(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	model := make([]byte, 64<<10)
	for i := range model {
		model[i] = byte(i * 7)
	}
	writeFile(t, dir, "model.safetensors", model)
	writeFile(t, dir, "other.pub", other.PublicKeyPEM())
	if err := os.Link(filepath.Join(dir, "keys", "signing.pub"), filepath.Join(dir, "signing.pub")); err != nil {
		t.Fatal(err)
	}
	blobBundle, err := sign.SignBlob(s, model)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "model.safetensors.sigstore.json", blobBundle)
	sum := sha256.Sum256(model)
	st, err := sign.Statement("model.safetensors", hex.EncodeToString(sum[:]), testProvenance)
	if err != nil {
		t.Fatal(err)
	}
	provBundle, err := sign.SignProvenance(s, st)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "prov.sigstore.json", provBundle)

	if _, err := cosign.run(t, "trusted-root", "create", "--out", "empty_root.json"); err != nil {
		t.Fatalf("cosign trusted-root create: %v", err)
	}

	verifyBlob := func(key string) []string {
		return []string{"verify-blob", "--key", key, "--insecure-ignore-tlog=true",
			"--trusted-root", "empty_root.json", "--new-bundle-format",
			"--bundle", "model.safetensors.sigstore.json", "model.safetensors"}
	}
	verifyAtt := func(key, predicateType string) []string {
		return []string{"verify-blob-attestation", "--key", key, "--insecure-ignore-tlog=true",
			"--trusted-root", "empty_root.json", "--new-bundle-format",
			"--type", predicateType, "--bundle", "prov.sigstore.json", "model.safetensors"}
	}

	type check struct {
		name    string
		args    []string
		wantOK  bool
		wantOut string
	}
	runChecks := func(t *testing.T, checks []check) {
		for _, c := range checks {
			t.Run(c.name, func(t *testing.T) {
				out, err := cosign.run(t, c.args...)
				if c.wantOK && err != nil {
					t.Fatalf("cosign refused a good bundle: %v\n%s", err, out)
				}
				if !c.wantOK && err == nil {
					t.Fatalf("cosign accepted a bad one:\n%s", out)
				}
				var exit *exec.ExitError
				if err != nil && !errors.As(err, &exit) {
					t.Fatalf("cosign did not run: %v", err)
				}
				if !strings.Contains(out, c.wantOut) {
					t.Errorf("cosign output lacks %q:\n%s", c.wantOut, out)
				}
			})
		}
	}

	t.Run("intact", func(t *testing.T) {
		runChecks(t, []check{
			{"verify-blob", verifyBlob("signing.pub"), true, "Verified OK"},
			{"verify-blob-attestation", verifyAtt("signing.pub", sign.ProvenancePredicateType), true, "Verified OK"},
			{"verify-blob wrong key", verifyBlob("other.pub"), false, "invalid signature"},
			{"verify-blob-attestation wrong key", verifyAtt("other.pub", sign.ProvenancePredicateType), false, "could not verify envelope"},
			// cosign's "custom" type means its own predicate URI, not ours.
			{"verify-blob-attestation wrong type", verifyAtt("signing.pub", "custom"), false, "invalid predicate type"},
		})
	})
	if t.Failed() {
		return
	}

	model[len(model)/2] ^= 0x01
	writeFile(t, dir, "model.safetensors", model)
	t.Run("one byte flipped", func(t *testing.T) {
		runChecks(t, []check{
			{"verify-blob", verifyBlob("signing.pub"), false, "invalid signature"},
			{"verify-blob-attestation", verifyAtt("signing.pub", sign.ProvenancePredicateType), false, "does not match any digest in statement"},
		})
	})
}

func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(fmt.Errorf("write %s: %w", name, err))
	}
}
