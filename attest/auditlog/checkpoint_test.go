package auditlog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestCoSignatures(t *testing.T) {
	dir := t.TempDir()
	logSigner, logKey := testKey(t, "federa.test/log")
	w1, w1Key := testKey(t, "site.paris")
	w2, w2Key := testKey(t, "site.berlin")
	l := openTestLog(t, dir, logSigner)
	for i := range 4 {
		mustAppend(t, l, sampleEntry(t, i, ""))
	}
	cp := mustCheckpoint(t, l)

	one, err := CoSign(cp, logKey, w1)
	if err != nil {
		t.Fatal(err)
	}
	both, err := CoSign(one, logKey, w2)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(both), "\n— "); got != 3 {
		t.Fatalf("co-signed note has %d signature lines, want 3:\n%s", got, both)
	}

	t.Run("VerifyCheckpoint", func(t *testing.T) {
		tests := []struct {
			name    string
			msg     []byte
			keys    []string
			wantErr string
		}{
			{"log only", cp, nil, ""},
			{"log and both witnesses", both, []string{w1Key, w2Key}, ""},
			{"witness order does not matter", both, []string{w2Key, w1Key}, ""},
			{"extra signatures are fine", both, []string{w1Key}, ""},
			{"missing witness", one, []string{w1Key, w2Key}, "no co-signature by witness site.berlin"},
			{"witness key named twice", both, []string{w1Key, w1Key}, "used twice"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c, err := VerifyCheckpoint(tt.msg, logKey, tt.keys...)
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if c.Size != 4 || c.Root != l.Root() {
					t.Fatalf("checkpoint %+v", c)
				}
			})
		}
		if _, err := VerifyCheckpoint(cp, w1Key); err == nil {
			t.Fatal("a checkpoint verified with a witness key as the log key")
		}
	})

	t.Run("CoSign checks the log signature first", func(t *testing.T) {
		forged, _ := note.Sign(&note.Note{Text: "federa.test/log\n4\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"}, w2)
		if _, err := CoSign(forged, logKey, w1); err == nil {
			t.Fatal("co-signed a checkpoint the log never signed")
		}
	})

	t.Run("stored and verified", func(t *testing.T) {
		if err := l.AddCoSignature(one, w1Key); err != nil {
			t.Fatal(err)
		}
		if err := l.AddCoSignature(both, w2Key); err != nil {
			t.Fatal(err)
		}
		if err := l.AddCoSignature(both, w2Key); err != nil {
			t.Fatalf("adding the same co-signature twice: %v", err)
		}
		if err := l.AddCoSignature(cp, w1Key); err == nil {
			t.Fatal("stored a note without the witness's signature")
		}
		latest, err := l.LatestCheckpoint()
		if err != nil {
			t.Fatal(err)
		}
		c, err := VerifyCheckpoint(latest, logKey, w1Key, w2Key)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(c.Witnesses, ",") != "site.berlin,site.paris" {
			t.Fatalf("witnesses %v", c.Witnesses)
		}
		if again := mustCheckpoint(t, l); string(again) != string(latest) {
			t.Fatal("re-signing the same tree dropped the co-signatures")
		}
		mustAppend(t, l, sampleEntry(t, 9, ""))
		mustCheckpoint(t, l)
		l.Close()
		rep, err := Verify(dir, logKey, w1Key, w2Key)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Witnessed["site.paris"] != 4 || rep.Witnessed["site.berlin"] != 4 || rep.LatestCheckpoint != 5 {
			t.Fatalf("report %+v", rep)
		}
		_, w3Key := testKey(t, "site.rome")
		if _, err := Verify(dir, logKey, w3Key); err == nil || !strings.Contains(err.Error(), "site.rome co-signed no checkpoint") {
			t.Fatalf("Verify with a witness that never signed: %v", err)
		}
		// A co-signature edited on disk fails Verify for whoever trusts it.
		p := checkpointPath(dir, 4)
		b := readFile(t, p)
		i := strings.Index(string(b), "— site.paris ") + len("— site.paris ") + 12
		b[i] ^= 0x01
		writeFile(t, p, b)
		_, err = Verify(dir, logKey, w1Key)
		wantVerifyError(t, err, -1, cpAt(4))
	})
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	s, vkey, err := LoadOrCreateKey(dir, "federa.example/audit")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "federa.example_audit.key")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	if !strings.HasPrefix(vkey, "federa.example/audit+") {
		t.Fatalf("verifier key %q", vkey)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil || v.KeyHash() != s.KeyHash() {
		t.Fatalf("verifier %v does not match signer: %v", v, err)
	}
	s2, vkey2, err := LoadOrCreateKey(dir, "federa.example/audit")
	if err != nil || vkey2 != vkey || s2.KeyHash() != s.KeyHash() {
		t.Fatalf("reload gave a different key: %v", err)
	}
	msg, _ := note.Sign(&note.Note{Text: "x\n"}, s2)
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Fatalf("signature by the reloaded key: %v", err)
	}

	tests := []struct {
		name    string
		setup   func() (dir, name string)
		wantErr string
	}{
		{"readable by others", func() (string, string) {
			d := t.TempDir()
			LoadOrCreateKey(d, "k")
			os.Chmod(filepath.Join(d, "k.key"), 0o644)
			return d, "k"
		}, "chmod 600"},
		{"name differs from the stored key", func() (string, string) {
			d := t.TempDir()
			LoadOrCreateKey(d, "a.b")
			os.Rename(filepath.Join(d, "a.b.key"), filepath.Join(d, "a_b.key"))
			return d, "a/b"
		}, "want \"a/b\""},
		{"invalid name", func() (string, string) { return t.TempDir(), "has space" }, "name must be"},
		{"garbage", func() (string, string) {
			d := t.TempDir()
			os.WriteFile(filepath.Join(d, "g.key"), []byte("nope"), 0o600)
			return d, "g"
		}, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, name := tt.setup()
			_, _, err := LoadOrCreateKey(d, name)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	skey, vkey, err := GenerateKey("federa.example/audit")
	if err != nil {
		t.Fatal(err)
	}
	derived, err := VerifierKey(skey)
	if err != nil || derived != vkey {
		t.Fatalf("VerifierKey = %q, %v; want %q", derived, err, vkey)
	}
	if _, _, err := GenerateKey("a+b"); err == nil {
		t.Fatal("generated a key whose name note rejects")
	}
	if _, err := VerifierKey(vkey); err == nil {
		t.Fatal("derived a verifier key from a verifier key")
	}
}
