package sim_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/cli"
	"github.com/federa-dev/federa/sim"
)

// TestCLIExplainsRefusedCertificates: a coordinator refuses an expired,
// foreign or unlisted client certificate with one TLS alert ("bad
// certificate", or a closed connection when the client had already
// written); the command line says what to check, and names the expiry
// when that is the reason. Real certificates over real mTLS.
func TestCLIExplainsRefusedCertificates(t *testing.T) {
	n, _ := startNet(t, sim.Options{})
	evil, err := attest.NewCA(spiffeid.RequireTrustDomainFromString("evil.example"))
	if err != nil {
		t.Fatal(err)
	}
	past := *n.CA
	past.Now = func() time.Time { return time.Now().Add(-3 * time.Hour) }
	write := func(ca *attest.CA, id string, trust *x509bundle.Bundle) string {
		svid, err := ca.Issue(spiffeid.RequireFromString(id), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "id")
		if err := attest.WriteIdentity(dir, svid, trust); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, tt := range []struct {
		name string
		dir  string
		args []string
		want []string
	}{
		{"expired", write(&past, "spiffe://federa.demo/user/alice", n.CA.Bundle()), nil,
			[]string{"refused your certificate: it expired at ", "get a new one"}},
		{"from another CA", write(evil, "spiffe://evil.example/user/alice", n.CA.Bundle()), []string{"--coordinator-id", "spiffe://federa.demo/coordinator"},
			[]string{"issued by a CA the coordinator trusts", "spiffe://evil.example/user/alice is a user", "refused peer"}},
		{"not listed", write(n.CA, "spiffe://federa.demo/ops/zoe", n.CA.Bundle()), nil,
			[]string{"spiffe://federa.demo/ops/zoe is a user (spiffe://<trust domain>/user/<name>, given roles under users in coordinator.yaml) or a site listed under sites"}},
		{"a coordinator of another trust domain expected", write(evil, "spiffe://evil.example/user/alice", n.CA.Bundle()), nil,
			[]string{"spiffe://federa.demo/coordinator is not an allowed peer", "you expect the coordinator to be spiffe://evil.example/coordinator", "pass it as --coordinator-id"}},
		{"a bundle that does not vouch for the coordinator", write(n.CA, "spiffe://federa.demo/user/alice", evil.Bundle()), nil,
			[]string{"not signed by a CA in your trust bundle"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := cli.Execute(context.Background(), append([]string{"job", "list", "--coordinator", n.Addr(), "--identity", tt.dir}, tt.args...), &out, &errb)
			if code == 0 {
				t.Fatalf("job list succeeded: %s", out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr %q\nlacks %q", errb.String(), w)
				}
			}
		})
	}
}
