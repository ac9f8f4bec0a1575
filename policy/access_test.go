package policy

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

func TestAccessPolicyRegoTests(t *testing.T) {
	results, err := runTests(context.Background(), DefaultAccess(), ".", "policy/access", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 15 {
		t.Errorf("ran %d Rego tests, want the whole suite (≥ 15)", len(results))
	}
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s", r)
		}
	}
}

func TestAccessDecide(t *testing.T) {
	a, err := LoadDefaultAccess(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	alice := Caller{ID: "spiffe://td/user/alice", Kind: "user", Roles: []string{"data-scientist"}}
	mallory := Caller{ID: "spiffe://td/user/mallory", Kind: "user"}
	ctx := context.Background()

	d := a.Decide(ctx, AccessRequest{Caller: alice, RPC: "JobService.SubmitJob"})
	if !d.Allow || len(d.Reasons) != 0 {
		t.Errorf("alice submitting: got %+v, want allowed without reasons", d)
	}
	d = a.Decide(ctx, AccessRequest{Caller: mallory, RPC: "JobService.SubmitJob"})
	err = d.Error(mallory.ID, "JobService.SubmitJob")
	want := "spiffe://td/user/mallory may not call JobService.SubmitJob: it needs the data-scientist role"
	if d.Allow || err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("mallory submitting: got %+v / %v, want denied with %q", d, err, want)
	}
	// A remembered decision is the same decision.
	if d2 := a.Decide(ctx, AccessRequest{Caller: mallory, RPC: "JobService.SubmitJob"}); d2.Allow || d2.Reasons[0] != d.Reasons[0] {
		t.Errorf("second answer %+v differs from first %+v", d2, d)
	}
	// Same caller, another resource: not confused by the cache.
	own := a.Decide(ctx, AccessRequest{Caller: alice, RPC: "JobService.GetJob", Resource: Resource{JobOwner: alice.ID}})
	other := a.Decide(ctx, AccessRequest{Caller: alice, RPC: "JobService.GetJob", Resource: Resource{JobOwner: "spiffe://td/user/bob"}})
	if !own.Allow || other.Allow {
		t.Errorf("alice reading own job: %+v (want allowed); bob's: %+v (want denied)", own, other)
	}
}

func TestAccessCacheIsBounded(t *testing.T) {
	a, err := LoadDefaultAccess(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := Caller{ID: "spiffe://td/user/alice", Kind: "user", Roles: []string{"data-scientist"}}
	for i := range accessCacheMax + 10 {
		a.Decide(context.Background(), AccessRequest{Caller: c, RPC: "JobService.GetJob", Resource: Resource{JobOwner: fmt.Sprint("spiffe://td/user/u", i)}})
	}
	a.mu.Lock()
	n := len(a.cache)
	a.mu.Unlock()
	if n == 0 || n > accessCacheMax {
		t.Errorf("cache holds %d decisions, want at most %d", n, accessCacheMax)
	}
}

func TestLoadAccessErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no policy", map[string]string{"data.json": "{}"}, "no .rego"},
		{"syntax error", map[string]string{"a.rego": "package federa.access\n\ndecision := {\n"}, "a.rego:"},
		{"undefined decision", map[string]string{"a.rego": "package federa.access\n\nallow := true\n"}, "data.federa.access.decision is undefined"},
		{"wrong shape", map[string]string{"a.rego": "package federa.access\n\ndecision := true\n"}, "want an object {allow, reasons}"},
		{"allow not a boolean", map[string]string{"a.rego": "package federa.access\n\ndecision := {\"allow\": \"yes\"}\n"}, "allow: want a boolean"},
		{"reason not a string", map[string]string{"a.rego": "package federa.access\n\ndecision := {\"allow\": false, \"reasons\": [1]}\n"}, "reasons: want strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			_, err := LoadAccess(ctx, dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadAccess: %v, want an error containing %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the folder", err)
			}
		})
	}
	if _, err := LoadAccess(ctx, "/does/not/exist"); err == nil || !strings.Contains(err.Error(), "/does/not/exist") {
		t.Errorf("missing folder: %v", err)
	}
}

func TestCustomAccessPolicyLoads(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.rego": `package federa.access

decision := {"allow": input.rpc == "JobService.ListJobs", "reasons": []}
`})
	a, err := LoadAccess(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	d := a.Decide(context.Background(), AccessRequest{RPC: "JobService.SubmitJob"})
	if d.Allow || d.Reasons[0] != "no rule of the access policy allows it" {
		t.Errorf("got %+v, want denied with the fallback reason", d)
	}
}
