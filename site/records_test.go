package site

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJournalCutsTornTail: a record a crash left half written (no newline
// at the end of the file) is cut off by the next append, so the record
// appended after it stays whole and readable, and the earlier records are
// kept. chaos TestSiteKill9AtFailpoints kills a site at that point.
func TestJournalCutsTornTail(t *testing.T) {
	for _, tc := range []struct{ name, before, want string }{
		{"torn after whole records", "{\"n\":1}\n{\"n\":2}\n{\"n\":", "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"},
		{"torn first record", "{\"n\":", "{\"n\":3}\n"},
		{"whole", "{\"n\":1}\n", "{\"n\":1}\n{\"n\":3}\n"},
		{"torn after a long record", "{\"n\":\"" + strings.Repeat("x", 10000) + "\"}\n{\"n\"", "{\"n\":\"" + strings.Repeat("x", 10000) + "\"}\n{\"n\":3}\n"},
		{"torn long first record", "{\"n\":\"" + strings.Repeat("x", 10000), "{\"n\":3}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "egress.jsonl")
			if err := os.WriteFile(path, []byte(tc.before), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := newJournal(dir, "egress.jsonl").append(map[string]int{"n": 3}); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Fatalf("journal:\n%q\nwant\n%q", b, tc.want)
			}
			for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
				var v map[string]any
				if err := json.Unmarshal([]byte(line), &v); err != nil {
					t.Fatalf("line %d is not a whole record: %v", i+1, err)
				}
			}
		})
	}
}
