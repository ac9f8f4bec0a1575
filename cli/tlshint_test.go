package cli

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"

	"github.com/federa-dev/federa/attest"
)

// TestClockSkewIsNotCalledAWrongCA: a coordinator whose SVID is not valid
// yet by this machine's clock (its CA's clock runs 10 minutes ahead) is
// refused with the reason attest gives — clock skew — and the command line
// adds no hint that the CA is the wrong one. A real handshake.
func TestClockSkewIsNotCalledAWrongCA(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ca, err := attest.NewCA(td)
	if err != nil {
		t.Fatal(err)
	}
	ahead := *ca
	ahead.Now = func() time.Time { return time.Now().Add(10 * time.Minute) }
	coordDir, aliceDir := filepath.Join(t.TempDir(), "coord"), filepath.Join(t.TempDir(), "alice")
	if err := ahead.IssueToDir(attest.CoordinatorID(td), time.Hour, coordDir); err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueToDir(spiffeid.RequireFromString("spiffe://example.org/user/alice"), time.Hour, aliceDir); err != nil {
		t.Fatal(err)
	}
	coord, err := attest.LoadIdentity(coordDir)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(attest.ServerCredentials(coord, func(spiffeid.ID) error { return nil }, nil)))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	var out, errb bytes.Buffer
	if code := Execute(context.Background(), []string{"job", "list", "--coordinator", lis.Addr().String(), "--identity", aliceDir}, &out, &errb); code == 0 {
		t.Fatalf("job list against a coordinator whose SVID is not valid yet succeeded: %s", out.String())
	}
	msg := errb.String()
	for _, w := range []string{"is valid only from", "clock skew"} {
		if !strings.Contains(msg, w) {
			t.Errorf("stderr lacks %q:\n%s", w, msg)
		}
	}
	if strings.Contains(msg, "not signed by a CA in your trust bundle") {
		t.Errorf("stderr blames the trust bundle for clock skew:\n%s", msg)
	}
}
