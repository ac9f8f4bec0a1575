package auditlog

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// FuzzParseEntry: whatever ParseEntry accepts re-encodes to exactly the
// same bytes, so every accepted entry has one byte form.
func FuzzParseEntry(f *testing.F) {
	for i := range 8 {
		e := sampleEntry(f, i, "")
		e.Time = time.Date(2026, 3, 1, 10, 0, 0, i*1000, time.UTC)
		b, err := e.Canonical()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"data":{"a":[1,2.5,-0.001,1e+300,null,true,{"b":"\u00e9"}]},"time":"2026-01-01T00:00:00Z","type":"x"}`))
	f.Add([]byte(`{"time":"2026-01-01T00:00:00.000000001Z","type":"round"}`))
	f.Add([]byte(`{"data":{"n":1.0},"time":"2026-01-01T00:00:00Z","type":"x"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEntry(b)
		if err != nil {
			return
		}
		c, err := e.Canonical()
		if err != nil {
			t.Fatalf("accepted %q but cannot re-encode it: %v", b, err)
		}
		if !bytes.Equal(c, b) {
			t.Fatalf("accepted %q, re-encodes as %q", b, c)
		}
		if _, err := ParseEntry(c); err != nil {
			t.Fatalf("second parse of %q: %v", c, err)
		}
	})
}

// FuzzCheckpoint feeds arbitrary notes to VerifyCheckpoint, and arbitrary
// texts signed with the real log key, so the checkpoint parser is reached
// past the signature check. Whatever is accepted must describe itself
// exactly: re-marshalling the tree head gives back the signed text.
func FuzzCheckpoint(f *testing.F) {
	signer, vkey := testKey(f, "federa.test/log")
	witness, _ := testKey(f, "site.paris")
	text := marshalCheckpoint("federa.test/log", 42, tlog.Hash{1, 2, 3})
	signed, err := note.Sign(&note.Note{Text: string(text)}, signer)
	if err != nil {
		f.Fatal(err)
	}
	cosigned, err := CoSign(signed, vkey, witness)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Add(cosigned)
	f.Add(text)
	f.Add([]byte("federa.test/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"))
	f.Add([]byte("federa.test/log\n042\nAQID\nextension\n"))
	f.Add([]byte("federa.test/log\n-1\n\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if cp, err := VerifyCheckpoint(msg, vkey); err == nil {
			mustDescribe(t, msg, cp)
		}
		// msg as a checkpoint body, signed by the log.
		if !strings.HasSuffix(string(msg), "\n") {
			return
		}
		note2, err := note.Sign(&note.Note{Text: string(msg)}, signer)
		if err != nil {
			return
		}
		cp, err := VerifyCheckpoint(note2, vkey)
		if err != nil {
			return
		}
		mustDescribe(t, note2, cp)
		if cp.Size < 0 || cp.Origin == "" || strings.Contains(cp.Origin, "\n") {
			t.Fatalf("accepted %+v", cp)
		}
	})
}

func mustDescribe(t *testing.T, msg []byte, cp Checkpoint) {
	t.Helper()
	n, err := openUnverified(msg)
	if err != nil {
		t.Fatalf("verified note does not parse: %v", err)
	}
	if got := marshalCheckpoint(cp.Origin, cp.Size, cp.Root); string(got) != n.Text {
		t.Fatalf("accepted text %q, describes itself as %q", n.Text, got)
	}
}
