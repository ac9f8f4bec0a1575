package attest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadSourceErrors(t *testing.T) {
	tests := []struct {
		dir, api, want string
	}{
		{"", "", "field identity: required"},
		{"x", "unix:///run/spire/agent.sock", "not both"},
		{"", "/run/spire/agent.sock", "field identity.workload_api"},
		{filepath.Join(t.TempDir(), "missing"), "", "field identity.dir"},
	}
	for _, tt := range tests {
		_, err := LoadSource(context.Background(), tt.dir, tt.api, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadSource(%q, %q) = %v, want %q", tt.dir, tt.api, err, tt.want)
		}
	}
}

func TestWorkloadAPISourceWithoutAgent(t *testing.T) {
	sock := "unix://" + filepath.Join(t.TempDir(), "agent.sock")
	_, err := NewWorkloadAPISource(context.Background(), sock, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no SVID within") {
		t.Fatalf("got %v", err)
	}
}
