package policy

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
)

type bundleKeys struct {
	privPEM, pubPEM []byte
}

func newBundleKeys(t *testing.T) bundleKeys {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return bundleKeys{
		privPEM: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}),
		pubPEM:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
	}
}

// writeBundle builds the default policy (plus extra modules) into a signed
// bundle, the way `opa build --signing-key` does.
func writeBundle(t *testing.T, file string, keys bundleKeys, keyID string, extra map[string]string) {
	t.Helper()
	var b bundle.Bundle
	b.Manifest.Init()
	b.Data = map[string]any{}
	err := fs.WalkDir(Default(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(Default(), p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(p, ".rego"):
			b.Modules = append(b.Modules, bundle.ModuleFile{URL: "/" + p, Path: "/" + p, Raw: raw})
		case p == "data.json":
			return json.Unmarshal(raw, &b.Data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range extra {
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: "/" + name, Path: "/" + name, Raw: []byte(src)})
	}
	if keys.privPEM != nil {
		if err := b.GenerateSignature(bundle.NewSigningConfig(string(keys.privPEM), "RS256", ""), keyID, true); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).UseModulePath(true).DisableFormat(true).Write(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadBundle(t *testing.T) {
	dir := t.TempDir()
	keys := newBundleKeys(t)
	key := BundleKey{KeyID: "site-ops", PublicKeyPEM: keys.pubPEM}
	signed := filepath.Join(dir, "policy.tar.gz")
	writeBundle(t, signed, keys, "site-ops", nil)

	e, err := LoadBundle(t.Context(), signed, key)
	if err != nil {
		t.Fatalf("signed bundle: %v", err)
	}
	folder, err := LoadFS(t.Context(), Default(), ".")
	if err != nil {
		t.Fatal(err)
	}
	// The bundle decides exactly as the folder it was built from.
	for _, in := range []Input{SampleInput(), SampleEgress()} {
		a, _ := e.Admission(t.Context(), in)
		b, _ := folder.Admission(t.Context(), in)
		if a.Allow != b.Allow || strings.Join(a.Reasons, "|") != strings.Join(b.Reasons, "|") {
			t.Fatalf("bundle %+v, folder %+v", a, b)
		}
	}

	refused := []struct {
		name  string
		build func(file string)
		key   BundleKey
		want  string
	}{
		{"unsigned", func(f string) { writeBundle(t, f, bundleKeys{}, "", nil) }, key, "signature"},
		{"signed by another key", func(f string) { writeBundle(t, f, newBundleKeys(t), "site-ops", nil) }, key, "verif"},
		{"no key configured", func(f string) { writeBundle(t, f, keys, "site-ops", nil) }, BundleKey{}, "no verification key"},
		{"not a bundle", func(f string) { os.WriteFile(f, []byte("hello"), 0o644) }, key, "policy.tar.gz"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "policy.tar.gz")
			tt.build(f)
			_, err := LoadBundle(t.Context(), f, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// TestBundleWatcherReloadsOnlySignedBundles: a newly signed bundle replaces
// the policy; a tampered or unsigned one leaves the previous in force.
func TestBundleWatcherReloadsOnlySignedBundles(t *testing.T) {
	dir := t.TempDir()
	keys := newBundleKeys(t)
	key := BundleKey{KeyID: "site-ops", PublicKeyPEM: keys.pubPEM}
	file := filepath.Join(dir, "policy.tar.gz")
	writeBundle(t, file, keys, "site-ops", nil)
	log, logs := newTestLogger()
	w, err := NewBundleWatcher(t.Context(), file, key, log)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first := w.Current().Revision()
	suspend := map[string]string{"suspend.rego": "package federa\n\ndeny contains \"suspended\" if true\n"}

	// An unsigned bundle with a stricter rule: refused, previous stays.
	writeBundle(t, file, bundleKeys{}, "", suspend)
	waitFor(t, "the refusal in the log", func() bool { return strings.Contains(logs.String(), "reload failed") })
	if w.Current().Revision() != first {
		t.Fatal("an unsigned bundle replaced the policy")
	}
	// The same, signed: it takes effect.
	writeBundle(t, file, keys, "site-ops", suspend)
	waitFor(t, "the signed bundle to load", func() bool { return w.Current().Revision() != first })
	d, _ := w.Current().Admission(t.Context(), SampleInput())
	if d.Allow || !strings.Contains(strings.Join(d.Reasons, " "), "suspended") {
		t.Fatalf("signed update not in force: %+v", d)
	}
	// The bundle file removed: deny all.
	os.Remove(file)
	waitFor(t, "deny all", func() bool { return w.Current().Revision() == "deny-all" })
}
