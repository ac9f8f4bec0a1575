package sim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
)

// TestSilentSiteIsDropped: a site whose connection stays open but says
// nothing (a hung process, a half-open TCP connection) is dropped after
// three missed heartbeats, so rounds do not wait on it until their
// deadline.
func TestSilentSiteIsDropped(t *testing.T) {
	const heartbeat = 200 * time.Millisecond
	n, logs := startNet(t, sim.Options{Heartbeat: heartbeat})
	n.StopSite("us/boston")
	cc := dialAs(t, n, identityFor(t, n.CA, "spiffe://federa.demo/site/us/boston"))
	// Only bounds a hang: were the site never dropped, Recv would end with
	// this context's DeadlineExceeded, which does not say "missed its
	// heartbeats".
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	stream, err := federav1.NewSiteServiceClient(cc).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The coordinator starts counting silence once it has the hello, so
	// time taken from before the hello is sent is never shorter than the
	// silence it allowed, however loaded the machine.
	start := time.Now()
	if err := stream.Send(&federav1.SiteMessage{Body: &federav1.SiteMessage_Hello{Hello: &federav1.Hello{Datasets: []string{"breast-cancer"}}}}); err != nil {
		t.Fatal(err)
	}
	m, err := stream.Recv()
	if err != nil || m.GetWelcome().GetSite() != "us/boston" {
		t.Fatalf("welcome: %v %v", m, err)
	}
	for err == nil {
		_, err = stream.Recv() // say nothing (an audit sync may still arrive); wait to be dropped
	}
	waited := time.Since(start)
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "missed its heartbeats") {
		t.Fatalf("got %v", err)
	}
	if waited < 3*heartbeat {
		t.Fatalf("dropped %s after the hello; want no sooner than 3 heartbeats (%s)", waited, 3*heartbeat)
	}
	// How much longer than 3 heartbeats it took says how loaded the machine
	// is, not which rule dropped the site: the logged reason says that.
	waitLogLine(t, logs, `msg="site disconnected"`, "site=us/boston ", `reason="no message for 600ms"`)
}
