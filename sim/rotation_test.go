package sim_test

import (
	"context"
	"crypto/x509"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/federa-dev/federa/coordinator"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/sim"
	"github.com/federa-dev/federa/site"
	"github.com/federa-dev/federa/spec"
)

// siteStream is one SiteService.Connect stream as the coordinator saw it:
// who, when, and the certificate the site presented in its handshake.
type siteStream struct {
	site string
	at   time.Time
	cert *x509.Certificate
}

// streamLog records every site stream the coordinator accepts.
type streamLog struct {
	mu      sync.Mutex
	streams []siteStream
}

func (l *streamLog) option() grpc.ServerOption {
	return grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if info.FullMethod == federav1.SiteService_Connect_FullMethodName {
			if p, ok := peer.FromContext(ss.Context()); ok {
				if tlsInfo, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(tlsInfo.State.PeerCertificates) > 0 {
					cert := tlsInfo.State.PeerCertificates[0]
					l.mu.Lock()
					l.streams = append(l.streams, siteStream{site: cert.URIs[0].String(), at: time.Now(), cert: cert})
					l.mu.Unlock()
				}
			}
		}
		return h(srv, ss)
	})
}

func (l *streamLog) of(site string) []siteStream {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []siteStream
	for _, s := range l.streams {
		if strings.HasSuffix(s.site, "/site/"+site) {
			out = append(out, s)
		}
	}
	return out
}

// cutProxy forwards TCP to the coordinator and can cut every connection
// through it at once, as a network blip or a load balancer recycling
// connections would; new connections go through again.
type cutProxy struct {
	lis net.Listener
	wg  sync.WaitGroup

	mu     sync.Mutex
	target string
	conns  []net.Conn
}

func newCutProxy(t *testing.T) *cutProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{lis: lis}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		lis.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) addr() string { return p.lis.Addr().String() }

func (p *cutProxy) setTarget(addr string) {
	p.mu.Lock()
	p.target = addr
	p.mu.Unlock()
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target := p.target
		p.mu.Unlock()
		out, err := net.Dial("tcp", target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(in, out)
		go pipe(out, in)
	}
}

// cut closes every connection through the proxy.
func (p *cutProxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// TestJobRunsAcrossSVIDRotations runs a job that outlives the daemons'
// first SVIDs, across two rotations of each. eu/paris reaches the
// coordinator through a proxy that cuts its connection once its first SVID
// has expired; the other two sites keep the stream they opened at the
// start. The job's third round waits at every site until all of that has
// happened, so the job spans it however fast or slow the machine.
func TestJobRunsAcrossSVIDRotations(t *testing.T) {
	const ttl = 3 * time.Second
	const gateRound = 3
	proxy := newCutProxy(t)
	streams := &streamLog{}
	gate := make(chan struct{})
	start := time.Now()
	n, logs := startNet(t, sim.Options{
		SVIDTTL:     ttl,
		Coordinator: func(c *coordinator.Config) { c.ServerOptions = append(c.ServerOptions, streams.option()) },
		Site: func(name string, c *site.Config) {
			if name == "eu/paris" {
				proxy.setTarget(c.CoordinatorAddr)
				c.CoordinatorAddr = proxy.addr()
			}
		},
		SiteOptions: func(string) []site.Option {
			return []site.Option{site.WithBeforeTask(func(ctx context.Context, task *federav1.Task) {
				if task.GetKind() == federav1.TaskKind_TASK_KIND_TRAIN && task.GetRound() == gateRound {
					select {
					case <-gate:
					case <-ctx.Done():
					}
				}
			})}
		},
	})

	j := demoSpec()
	j.Rounds = 6
	// The gated round lasts as long as the rotations take to happen; its
	// deadline must not be what ends it.
	j.RoundTimeout = spec.Duration(10 * hangBound)
	c, closeFn, err := n.Dial("alice")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	job, err := c.SubmitJob(context.Background(), &federav1.SubmitJobRequest{Spec: j.Proto()})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}

	// Once paris's first SVID has expired, and it and the coordinator hold
	// their next ones, cut its connection: it must come back with a fresh
	// SVID, and find the coordinator presenting a fresh one too (an expired
	// coordinator certificate would be refused).
	first := streams.of("eu/paris")
	if len(first) != 1 {
		t.Fatalf("paris opened %d streams before the job, want 1", len(first))
	}
	for _, who := range []string{"/coordinator", "/site/eu/paris"} {
		waitFor(t, who+" to rotate its SVID", func() bool { return rotations(logs.String(), who) >= 1 })
	}
	time.Sleep(time.Until(first[0].cert.NotAfter.Add(200 * time.Millisecond))) // a point in time, not a guess
	proxy.cut()
	cutAt := time.Now()
	// A new stream is opened only after the old session ended; then wait
	// for its welcome, so the coordinator asks paris again from the next
	// round on.
	waitFor(t, "paris to open a new stream after the cut", func() bool { return len(streams.of("eu/paris")) > 1 })
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	if err := n.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	// The other two sites' first SVIDs expire under their open streams, and
	// every daemon rotates twice, while the job waits at the gate.
	for _, who := range []string{"/coordinator", "/site/eu/paris", "/site/sg/singapore", "/site/us/boston"} {
		waitFor(t, who+" to rotate its SVID twice", func() bool { return rotations(logs.String(), who) >= 2 })
	}
	for _, s := range []string{"sg/singapore", "us/boston"} {
		if ss := streams.of(s); len(ss) > 0 {
			time.Sleep(time.Until(ss[0].cert.NotAfter.Add(200 * time.Millisecond)))
		}
	}
	close(gate)

	final := waitFinal(t, c, job.GetId())
	if final.GetStatus() != federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		t.Fatalf("job %s: %s", final.GetStatus(), final.GetMessage())
	}
	if got := int(final.GetRoundsCompleted()); got != j.Rounds || len(final.GetRounds()) != j.Rounds {
		t.Fatalf("rounds completed %d, round summaries %d; want %d (a rotation lost a round)", got, len(final.GetRounds()), j.Rounds)
	}
	t.Logf("job ran %s, %.1f SVID lifetimes", time.Since(start).Round(time.Millisecond), time.Since(start).Seconds()/ttl.Seconds())

	t.Run("paris reconnected with a new SVID and took part again", func(t *testing.T) {
		ps := streams.of("eu/paris")
		if len(ps) < 2 {
			t.Fatalf("paris opened %d streams; the cut should have made it reconnect", len(ps))
		}
		re := ps[len(ps)-1]
		if !re.at.After(cutAt) || !re.at.After(first[0].cert.NotAfter) {
			t.Fatalf("reconnect at %s; cut at %s, first SVID expired at %s", re.at, cutAt, first[0].cert.NotAfter)
		}
		if re.cert.SerialNumber.Cmp(first[0].cert.SerialNumber) == 0 {
			t.Fatalf("paris presented the same serial %x after reconnecting", re.cert.SerialNumber)
		}
		if !re.at.Before(re.cert.NotAfter) {
			t.Fatalf("paris reconnected at %s with an SVID valid until %s", re.at, re.cert.NotAfter)
		}
		last := final.GetRounds()[len(final.GetRounds())-1]
		if !slices.Contains(last.GetParticipants(), "eu/paris") {
			t.Fatalf("paris is not among the last round's participants %v", last.GetParticipants())
		}
	})

	t.Run("open streams outlived their certificates", func(t *testing.T) {
		for _, s := range []string{"sg/singapore", "us/boston"} {
			ss := streams.of(s)
			if len(ss) != 1 {
				t.Fatalf("%s opened %d streams, want 1 (nothing cut it)", s, len(ss))
			}
			if !time.Now().After(ss[0].cert.NotAfter) {
				t.Fatalf("%s's first SVID (until %s) has not expired yet; the job was too short", s, ss[0].cert.NotAfter)
			}
			for _, r := range final.GetRounds() {
				if !slices.Contains(r.GetParticipants(), s) {
					t.Fatalf("%s missed round %d (participants %v)", s, r.GetRound(), r.GetParticipants())
				}
			}
		}
	})

	t.Run("every daemon rotated at least twice", func(t *testing.T) {
		for _, who := range []string{"/coordinator", "/site/eu/paris", "/site/sg/singapore", "/site/us/boston"} {
			if n := rotations(logs.String(), who); n < 2 {
				t.Errorf("%s rotated %d times, want at least 2", who, n)
			}
		}
		if strings.Contains(logs.String(), "refused peer") {
			t.Errorf("a handshake was refused during rotation:\n%s", grepLines(logs.String(), "refused peer"))
		}
	})
}

// rotations counts the identity rotations a daemon (its SPIFFE ID's path,
// e.g. "/site/eu/paris") logged.
func rotations(logs, who string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `msg="identity rotated"`) && strings.Contains(line, sim.DefaultTrustDomain+who+" ") {
			n++
		}
	}
	return n
}

func grepLines(s, sub string) string {

	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
