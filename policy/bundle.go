package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// BundleKey is the public key a site trusts to sign its policy bundles,
// as OPA's bundle verification names it.
type BundleKey struct {
	// KeyID is the key's name; the bundle's signature must name it.
	KeyID string
	// PublicKeyPEM is the verification key (RSA or ECDSA public key, PEM).
	PublicKeyPEM []byte
	// Algorithm is the JWT algorithm, e.g. RS256 or ES256 (default RS256).
	Algorithm string
}

// LoadBundle reads a signed OPA bundle (.tar.gz, as `opa build --signing-key`
// writes it), verifies its signature and every file's digest against key,
// and compiles its modules and data exactly as Load compiles a folder.
// An unsigned bundle, one signed with another key, or one whose files do
// not match their signed digests is an error: a site never runs a policy
// its operator did not sign.
func LoadBundle(ctx context.Context, file string, key BundleKey) (*Engine, error) {
	if key.KeyID == "" || len(key.PublicKeyPEM) == 0 {
		return nil, fmt.Errorf("load site policy bundle %q: no verification key configured (policy.bundle_key and policy.bundle_key_id)", file)
	}
	alg := key.Algorithm
	if alg == "" {
		alg = "RS256"
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("load site policy bundle %q: %w", file, err)
	}
	defer f.Close()
	vc := bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{
		key.KeyID: {Key: string(key.PublicKeyPEM), Algorithm: alg},
	}, key.KeyID, "", nil)
	b, err := bundle.NewReader(f).
		WithBundleVerificationConfig(vc).
		WithRegoVersion(ast.RegoV1).
		WithSizeLimitBytes(64 << 20).
		Read()
	if err != nil {
		return nil, fmt.Errorf("load site policy bundle %q: %w", file, err)
	}
	if len(b.Signatures.Signatures) == 0 {
		return nil, fmt.Errorf("load site policy bundle %q: the bundle is not signed", file)
	}
	// Lay the verified bundle out as a folder and compile it with the same
	// code as a folder, so a bundle and the folder it was built from decide
	// alike.
	files := fstest.MapFS{}
	for _, m := range b.Modules {
		p := path.Clean(m.Path)
		if p == "." || p == "/" {
			return nil, fmt.Errorf("load site policy bundle %q: a module has no path", file)
		}
		files[trimSlash(p)] = &fstest.MapFile{Data: m.Raw}
	}
	if len(b.Data) > 0 {
		data, err := json.Marshal(b.Data)
		if err != nil {
			return nil, fmt.Errorf("load site policy bundle %q: data: %w", file, err)
		}
		files["data.json"] = &fstest.MapFile{Data: data}
	}
	e, err := LoadFS(ctx, files, ".")
	if err != nil {
		return nil, fmt.Errorf("load site policy bundle %q: %w", file, err)
	}
	return e, nil
}

func trimSlash(p string) string {
	for len(p) > 0 && p[0] == '/' {
		p = p[1:]
	}
	return p
}
