package devnet_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/internal/devnet"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// TestSilentSiteIsDropped: a site whose connection stays open but says
// nothing (a hung process, a half-open TCP connection) is dropped after
// three missed heartbeats, so rounds do not wait on it until their
// deadline.
func TestSilentSiteIsDropped(t *testing.T) {
	n, logs := startNet(t, devnet.Options{Heartbeat: 200 * time.Millisecond})
	n.StopSite("us/boston")
	cc := dialAs(t, n, identityFor(t, n.CA, "spiffe://federa.demo/site/us/boston"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := federav1.NewSiteServiceClient(cc).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Hello{Hello: &federav1.Hello{Datasets: []string{"breast-cancer"}}}}); err != nil {
		t.Fatal(err)
	}
	m, err := stream.Recv()
	if err != nil || m.GetWelcome().GetSite() != "us/boston" {
		t.Fatalf("welcome: %v %v", m, err)
	}
	start := time.Now()
	_, err = stream.Recv() // say nothing; wait to be dropped
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "missed its heartbeats") {
		t.Fatalf("got %v", err)
	}
	if waited := time.Since(start); waited < 500*time.Millisecond || waited > 5*time.Second {
		t.Fatalf("dropped after %s; want about 3 heartbeats (600ms)", waited)
	}
	if !strings.Contains(logs.String(), "no message for 600ms") {
		t.Fatalf("drop not logged:\n%s", logs.String())
	}
}
