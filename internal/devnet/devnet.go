// Package devnet starts a whole federation in one process — a dev CA, a
// coordinator and site agents, each with its own identity and state
// directory — talking real gRPC over real mTLS on loopback. `federa demo`
// and the integration tests use it; nothing in it is faked.
package devnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/coordinator"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/site"
)

// DefaultTrustDomain is the demo's SPIFFE trust domain.
const DefaultTrustDomain = "federa.demo"

// SiteSpec is one site of the federation and its data file.
type SiteSpec struct {
	Name    string // "<jurisdiction>/<name>", e.g. "eu/paris"
	Dataset string // the name the site serves the file under
	Path    string // the CSV file
	// Columns and DefaultClassification describe the data to the site's
	// policy (see site.Dataset); the default here is "internal".
	Columns               []site.Column
	DefaultClassification string
}

// DemoUsers are the users a devnet issues identities for, with their roles.
var DemoUsers = map[string][]string{
	"alice":   {"data-scientist"},
	"auditor": {"auditor"},
	"mallory": nil,
}

func (n *Net) users() map[string][]string {
	out := map[string][]string{}
	for _, u := range n.opts.Users {
		id, err := attest.UserID(n.td, u)
		if err == nil {
			out[id.String()] = DemoUsers[u]
		}
	}
	return out
}

// Options configures Start. Dir and Sites are required.
type Options struct {
	Dir         string
	TrustDomain string
	Sites       []SiteSpec
	Users       []string // user identities to issue (default: alice)
	Log         *slog.Logger
	// Heartbeat is the coordinator's heartbeat interval (default 1s, so a
	// dead site is noticed quickly in a demo).
	Heartbeat time.Duration
	// Coordinator, if set, adjusts the coordinator's config before start.
	Coordinator func(*coordinator.Config)
	// Site, if set, adjusts each site's config before start.
	Site func(name string, cfg *site.Config)
	// PolicyDir, if set, is every site's policy folder; empty means the
	// built-in default policy.
	PolicyDir string
	// CoordinatorJurisdiction is where the coordinator runs (default "eu").
	CoordinatorJurisdiction string
}

// Net is a running federation.
type Net struct {
	opts    Options
	td      spiffeid.TrustDomain
	CA      *attest.CA
	coordID *attest.Identity
	addr    string

	mu    sync.Mutex
	coord *coordinator.Coordinator
	cDone chan error
	cStop context.CancelFunc
	sites map[string]*siteProc
}

type siteProc struct {
	spec   SiteSpec
	id     *attest.Identity
	agent  *site.Agent
	cancel context.CancelFunc
	done   chan error
}

// Paths inside Dir.
func (n *Net) CoordinatorDir() string { return filepath.Join(n.opts.Dir, "coordinator") }
func (n *Net) SiteDir(name string) string {
	return filepath.Join(n.opts.Dir, "sites", strings.ReplaceAll(name, "/", "-"))
}
func (n *Net) IdentityDir(name string) string { return filepath.Join(n.opts.Dir, "identities", name) }

// Start issues identities and starts the coordinator and every site.
func Start(opts Options) (*Net, error) {
	if opts.Dir == "" || len(opts.Sites) == 0 {
		return nil, errors.New("devnet: Dir and Sites are required")
	}
	if opts.TrustDomain == "" {
		opts.TrustDomain = DefaultTrustDomain
	}
	if len(opts.Users) == 0 {
		opts.Users = []string{"alice", "auditor", "mallory"}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = time.Second
	}
	if opts.CoordinatorJurisdiction == "" {
		opts.CoordinatorJurisdiction = "eu"
	}
	td, err := spiffeid.TrustDomainFromString(opts.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("devnet: trust domain: %w", err)
	}
	n := &Net{opts: opts, td: td, sites: map[string]*siteProc{}}
	if n.CA, err = loadOrCreateCA(filepath.Join(opts.Dir, "ca"), td); err != nil {
		return nil, err
	}
	n.coordID, err = n.issue("coordinator", attest.CoordinatorID(td))
	if err != nil {
		return nil, err
	}
	for _, u := range opts.Users {
		uid, err := attest.UserID(td, u)
		if err != nil {
			return nil, fmt.Errorf("devnet: user %q: %w", u, err)
		}
		if _, err := n.issue(u, uid); err != nil {
			return nil, err
		}
	}
	for i := range opts.Sites {
		if opts.Sites[i].DefaultClassification == "" {
			// The demo data: de-identified measurements.
			opts.Sites[i].DefaultClassification = "internal"
		}
	}
	for _, s := range opts.Sites {
		sid, err := attest.SiteID(td, s.Name)
		if err != nil {
			return nil, fmt.Errorf("devnet: %w", err)
		}
		id, err := n.issue(strings.ReplaceAll(s.Name, "/", "-"), sid)
		if err != nil {
			return nil, err
		}
		n.sites[s.Name] = &siteProc{spec: s, id: id}
	}
	if err := n.StartCoordinator(); err != nil {
		return nil, err
	}
	for _, s := range opts.Sites {
		if err := n.StartSite(s.Name); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

func loadOrCreateCA(dir string, td spiffeid.TrustDomain) (*attest.CA, error) {
	if _, err := os.Stat(filepath.Join(dir, attest.CAKeyFile)); err == nil {
		return attest.LoadCA(dir)
	}
	ca, err := attest.NewCA(td)
	if err != nil {
		return nil, err
	}
	return ca, ca.Save(dir)
}

func (n *Net) issue(name string, id spiffeid.ID) (*attest.Identity, error) {
	dir := n.IdentityDir(name)
	if err := n.CA.IssueToDir(id, attest.DefaultSVIDTTL, dir); err != nil {
		return nil, err
	}
	return attest.LoadIdentity(dir)
}

// SiteIDs are the SPIFFE IDs of every site.
func (n *Net) SiteIDs() []spiffeid.ID {
	var out []spiffeid.ID
	for _, s := range n.opts.Sites {
		id, _ := attest.SiteID(n.td, s.Name)
		out = append(out, id)
	}
	return out
}

// Addr is the coordinator's address.
func (n *Net) Addr() string { return n.addr }

// Coordinator is the running coordinator (nil while stopped).
func (n *Net) Coordinator() *coordinator.Coordinator {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.coord
}

// StartCoordinator starts (or restarts, on the same address and state) the
// coordinator.
func (n *Net) StartCoordinator() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.coord != nil {
		return errors.New("devnet: coordinator already running")
	}
	listen := n.addr
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	cfg := coordinator.Config{
		Listen:            listen,
		StateDir:          n.CoordinatorDir(),
		Identity:          n.coordID,
		Sites:             n.SiteIDs(),
		HeartbeatInterval: n.opts.Heartbeat,
		SiteWaitTimeout:   30 * time.Second,
		Users:             n.users(),
		Log:               n.opts.Log,
	}
	if n.opts.Coordinator != nil {
		n.opts.Coordinator(&cfg)
	}
	var c *coordinator.Coordinator
	var err error
	// A restarted coordinator wants its old port back; the kernel may hold
	// it for a moment after the previous listener closed.
	for i := 0; i < 50; i++ {
		if c, err = coordinator.New(cfg); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	n.addr = c.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	n.coord, n.cStop, n.cDone = c, cancel, done
	return nil
}

// StopCoordinator stops the coordinator abruptly: no job is told anything,
// as in a crash. Durable state is whatever the store had committed.
func (n *Net) StopCoordinator() error {
	n.mu.Lock()
	c, stop, done := n.coord, n.cStop, n.cDone
	n.coord = nil
	n.mu.Unlock()
	if c == nil {
		return nil
	}
	err := c.Close()
	stop()
	<-done
	return err
}

// StartSite starts (or restarts) a site agent.
func (n *Net) StartSite(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.sites[name]
	if !ok {
		return fmt.Errorf("devnet: no site %q", name)
	}
	if p.agent != nil {
		return fmt.Errorf("devnet: site %s already running", name)
	}
	cfg := site.Config{
		PolicyDir:               n.opts.PolicyDir,
		CoordinatorJurisdiction: n.opts.CoordinatorJurisdiction,
		Identity:                p.id,
		CoordinatorAddr:         n.addr,
		CoordinatorID:           attest.CoordinatorID(n.td),
		Datasets: []site.Dataset{{Name: p.spec.Dataset, Path: p.spec.Path, Format: "csv",
			Columns: p.spec.Columns, DefaultClassification: p.spec.DefaultClassification}},
		StateDir:     n.SiteDir(name),
		ReconnectMin: 100 * time.Millisecond,
		ReconnectMax: time.Second,
		Log:          n.opts.Log,
	}
	if n.opts.Site != nil {
		n.opts.Site(name, &cfg)
	}
	a, err := site.New(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	p.agent, p.cancel, p.done = a, cancel, done
	return nil
}

// StopSite stops a site agent; its stream drops as if the process died.
func (n *Net) StopSite(name string) {
	n.mu.Lock()
	p := n.sites[name]
	var cancel context.CancelFunc
	var done chan error
	if p != nil && p.agent != nil {
		cancel, done = p.cancel, p.done
		p.agent.Close()
		p.agent = nil
	}
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// WaitConnected waits until every running site has a live stream.
func (n *Net) WaitConnected(ctx context.Context) error {
	for {
		all := true
		n.mu.Lock()
		for _, p := range n.sites {
			if p.agent != nil && !p.agent.Connected() {
				all = false
			}
		}
		n.mu.Unlock()
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devnet: sites did not connect: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Dial returns a JobService client authenticated as user.
func (n *Net) Dial(user string) (federav1.JobServiceClient, func(), error) {
	id, err := attest.LoadIdentity(n.IdentityDir(user))
	if err != nil {
		return nil, nil, err
	}
	cc, err := grpc.NewClient(n.addr, grpc.WithTransportCredentials(attest.ClientCredentials(id, attest.AllowIDs(attest.CoordinatorID(n.td)), nil)))
	if err != nil {
		return nil, nil, err
	}
	return federav1.NewJobServiceClient(cc), func() { cc.Close() }, nil
}

// Close stops every site and the coordinator.
func (n *Net) Close() error {
	for _, s := range n.opts.Sites {
		n.StopSite(s.Name)
	}
	return n.StopCoordinator()
}
