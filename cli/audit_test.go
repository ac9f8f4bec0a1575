package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditCommandsOnADemo runs a short demo, then verifies, exports and
// tampers with its audit log through the CLI.
func TestAuditCommandsOnADemo(t *testing.T) {
	state := t.TempDir()
	if out, errs, code := execute(t, "demo", "--state", state, "--rounds", "2", "-o", "json"); code != 0 {
		t.Fatalf("demo: %d\n%s\n%s", code, out, errs)
	} else {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var res map[string]any
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || res["audit_verified"] != true || res["audit_entries"].(float64) < 10 {
			t.Fatalf("demo result lacks a verified audit log: %v %v", res, err)
		}
	}
	out, errs, code := execute(t, "audit", "verify", "--state", state)
	if code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("verify: %d %s %s", code, out, errs)
	}
	key, _, _ := execute(t, "audit", "key", "--state", state)
	cp, _, _ := execute(t, "audit", "checkpoint", "--state", state)
	export := filepath.Join(t.TempDir(), "log.jsonl")
	if _, errs, code := execute(t, "audit", "export", "--state", state, "-o", export); code != 0 {
		t.Fatal(errs)
	}
	cpFile := filepath.Join(t.TempDir(), "cp.txt")
	os.WriteFile(cpFile, []byte(cp), 0o644)
	if out, errs, code := execute(t, "audit", "verify", "--file", export, "--checkpoint", cpFile, "--key", strings.TrimSpace(key)); code != 0 {
		t.Fatalf("verify export: %d %s %s", code, out, errs)
	}
	if out, _, code := execute(t, "audit", "proof", "--state", state, "--entry", "2"); code != 0 || !strings.Contains(out, "inclusion_proof") {
		t.Fatalf("proof: %d %s", code, out)
	}
	if out, _, code := execute(t, "audit", "show", "--state", state); code != 0 || !strings.Contains(out, "model_release") || !strings.Contains(out, "round") {
		t.Fatalf("show: %d %s", code, out)
	}

	// One flipped byte in an exported entry: caught, naming the entry.
	b, _ := os.ReadFile(export)
	lines := strings.SplitAfter(string(b), "\n")
	flipped := -1
	for i, l := range lines {
		if strings.Contains(l, `"allow":true`) {
			lines[i], flipped = strings.Replace(l, `"allow":true`, `"allow":false`, 1), i
			break
		}
	}
	if flipped < 0 {
		t.Fatal("the export holds no allowed decision to tamper with")
	}
	tampered := filepath.Join(t.TempDir(), "tampered.jsonl")
	os.WriteFile(tampered, []byte(strings.Join(lines, "")), 0o644)
	_, errs, code = execute(t, "audit", "verify", "--file", tampered, "--checkpoint", cpFile, "--key", strings.TrimSpace(key))
	if code == 0 || !strings.Contains(errs, fmt.Sprintf("entry %d", flipped)) {
		t.Fatalf("a tampered export verified: %d %s", code, errs)
	}
	// One flipped byte in the stored log: caught too.
	dir := filepath.Join(state, "coordinator", "audit")
	entries, _ := os.ReadDir(dir)
	var biggest string
	var size int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !e.IsDir() && info.Size() > size {
			biggest, size = e.Name(), info.Size()
		}
	}
	f := filepath.Join(dir, biggest)
	data, _ := os.ReadFile(f)
	data[len(data)/2] ^= 0x01
	os.WriteFile(f, data, 0o600)
	_, errs, code = execute(t, "audit", "verify", "--state", state)
	if code == 0 || !strings.Contains(errs, "does NOT verify") {
		t.Fatalf("a tampered log verified: %d %s", code, errs)
	}
}

// TestModelVerify: the demo's released model verifies with its bundle,
// provenance and the audit log; one flipped byte does not.
func TestModelVerify(t *testing.T) {
	state := t.TempDir()
	out, errs, code := execute(t, "demo", "--state", state, "--rounds", "2", "-o", "json")
	if code != 0 {
		t.Fatalf("demo: %d %s %s", code, out, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"model_bundle", "signing_key", "provenance_bundle"} {
		if _, err := os.Stat(res[k].(string)); err != nil {
			t.Fatalf("demo JSON %s: %v", k, err)
		}
	}
	model := res["model_path"].(string)
	if out, errs, code := execute(t, "model", "verify", model, "--state", state); code != 0 || !strings.Contains(out, "released at audit entry") {
		t.Fatalf("verify: %d %s %s", code, out, errs)
	}
	b, _ := os.ReadFile(model)
	b[len(b)-3] ^= 0x01
	os.WriteFile(model, b, 0o644)
	if _, errs, code := execute(t, "model", "verify", model); code == 0 || !strings.Contains(errs, "does NOT verify") {
		t.Fatalf("a tampered model verified: %d %s", code, errs)
	}
}
