package attest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoadSourceConfigBadInput: what an operator can get wrong in the
// identity: section fails at start-up, at once, with one error that names
// the setting. (Corrupt files inside an identity directory are covered
// file by file by TestLoadIdentityErrors; trust_domains entries by
// TestTrustDomainConfigErrors.)
func TestLoadSourceConfigBadInput(t *testing.T) {
	ca := tdCA(t, tdHospital)
	notASocket := tdWrite(t, "agent.sock", []byte("a regular file"))
	unreadableSVID := tdCoordinatorDir(t, ca)
	if err := os.Remove(filepath.Join(unreadableSVID, SVIDFile)); err != nil {
		t.Fatal(err)
	}
	// A directory where the file should be: unreadable for root too.
	if err := os.Mkdir(filepath.Join(unreadableSVID, SVIDFile), 0o700); err != nil {
		t.Fatal(err)
	}
	badBundle := tdCoordinatorDir(t, ca)
	if err := os.WriteFile(filepath.Join(badBundle, BundleFile), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A socket that exists but that nobody serves any more.
	deadSock := filepath.Join(t.TempDir(), "dead.sock")
	lis, err := net.Listen("unix", deadSock)
	if err != nil {
		t.Fatal(err)
	}
	lis.(*net.UnixListener).SetUnlinkOnClose(false)
	lis.Close()

	tests := []struct {
		name string
		cfg  IdentityConfig
		want []string
	}{
		{"workload API socket does not exist", IdentityConfig{WorkloadAPI: "unix://" + filepath.Join(t.TempDir(), "agent.sock")},
			[]string{"field identity.workload_api:", "agent.sock", "no such file", "is the SPIRE agent running"}},
		{"workload API socket is a plain file", IdentityConfig{WorkloadAPI: "unix://" + notASocket},
			[]string{"field identity.workload_api:", "connection refused"}},
		{"workload API socket nobody serves", IdentityConfig{WorkloadAPI: "unix://" + deadSock},
			[]string{"field identity.workload_api:", "connection refused"}},
		{"SVID file unreadable", IdentityConfig{Dir: unreadableSVID},
			[]string{"field identity.dir:", SVIDFile, "is a directory"}},
		{"bundle.pem does not parse", IdentityConfig{Dir: badBundle},
			[]string{"field identity.dir:", BundleFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			src, err := LoadSourceConfig(context.Background(), tt.cfg, nil)
			if err == nil {
				closeSource(src)
				t.Fatal("loaded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			// Not after the Workload API's 30 s wait for a first SVID. The
			// bound tells the two apart (failing at once takes
			// milliseconds), with room for a loaded machine.
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %s to fail; want at once, not after the 30s wait for a first SVID", d)
			}
		})
	}
}
