package auditlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// GenerateKey makes an Ed25519 note key pair named name. skey is secret;
// vkey ("name+hash+base64key") is what verifiers and witnesses configure.
func GenerateKey(name string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("generate note key %q: %w", name, err)
	}
	// note.GenerateKey does not check the name; NewSigner does, and a key
	// that cannot be loaded is better refused now.
	if _, err := note.NewSigner(skey); err != nil {
		return "", "", fmt.Errorf("generate note key %q: name must be non-empty, without spaces or '+': %w", name, err)
	}
	return skey, vkey, nil
}

// VerifierKey derives the verifier key from a signer key, so only the
// secret needs storing and the two can never disagree.
func VerifierKey(skey string) (string, error) {
	// PRIVATE+KEY+<name>+<hash>+<base64(alg || seed)>
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("derive verifier key: malformed signer key")
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		return "", fmt.Errorf("derive verifier key: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("derive verifier key: not an Ed25519 signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return "", fmt.Errorf("derive verifier key: %w", err)
	}
	return vkey, nil
}

// LoadOrCreateKey returns the signer stored in dir for name, creating the
// key on first use, and its verifier key. The key file is <name>.key
// (characters outside [A-Za-z0-9._-] become _) with mode 0600; a key file
// others can read is refused, as ssh does, because a leaked log key lets
// anyone sign a rewritten history.
func LoadOrCreateKey(dir, name string) (note.Signer, string, error) {
	path := filepath.Join(dir, keyFileName(name))
	skey, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		s, _, genErr := GenerateKey(name)
		if genErr != nil {
			return nil, "", genErr
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, "", fmt.Errorf("create key %s: %w", path, err)
		}
		// Losing a creation race is fine: read what the winner wrote.
		if err := createFileExclusive(path, []byte(s+"\n"), 0o600); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, "", err
		}
		skey, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, "", fmt.Errorf("load key %s: %w", path, err)
	}
	if runtime.GOOS != "windows" {
		st, err := os.Stat(path)
		if err != nil {
			return nil, "", fmt.Errorf("load key %s: %w", path, err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, "", fmt.Errorf("load key %s: mode %04o lets others read it; chmod 600 %s", path, st.Mode().Perm(), path)
		}
	}
	k := strings.TrimSpace(string(skey))
	signer, err := note.NewSigner(k)
	if err != nil {
		return nil, "", fmt.Errorf("load key %s: %w", path, err)
	}
	if signer.Name() != name {
		return nil, "", fmt.Errorf("load key %s: key is named %q, want %q", path, signer.Name(), name)
	}
	vkey, err := VerifierKey(k)
	if err != nil {
		return nil, "", fmt.Errorf("load key %s: %w", path, err)
	}
	return signer, vkey, nil
}

func keyFileName(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, name) + ".key"
}
