// Package sim starts a whole federation in one process — a dev CA, a
// coordinator and site agents, each with its own identity and state
// directory — talking real gRPC over real mTLS on loopback. `federa demo`
// and the integration tests use it; nothing in it is faked.
package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/coordinator"
	"github.com/federa-dev/federa/internal/logkeys"
	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/site"
)

// DefaultTrustDomain is the demo's SPIFFE trust domain.
const DefaultTrustDomain = "federa.demo"

// SiteSpec is one site of the federation and its data file.
type SiteSpec struct {
	Name    string // "<jurisdiction>/<name>", e.g. "eu/paris"
	Dataset string // the name the site serves the file under
	Path    string // the CSV file, or the IDX images file
	// Format, Labels and Classes are as in site.Dataset: Format is "csv"
	// (also when empty) or "idx"; Labels is the IDX labels file and
	// Classes names its label values 0, 1, ….
	Format  string
	Labels  string
	Classes []string
	// Table and DSNEnv are a postgres dataset's table and the environment
	// variable holding its connection string (format postgres).
	Table  string
	DSNEnv string
	// Columns and DefaultClassification describe the data to the site's
	// policy (see site.Dataset); the default here is "internal".
	Columns               []site.Column
	DefaultClassification string
}

// DemoUsers are the users a sim knows, with their roles: alice
// submits jobs, auditor reads the audit log, mallory has a valid SVID and
// no role at all. Each site also has an admin, named by SiteAdmin.
var DemoUsers = map[string][]string{
	"alice":   {"data-scientist"},
	"auditor": {"auditor"},
	"mallory": nil,
}

// SiteAdmin is the demo user who administers site, and that user's role:
// for "eu/paris", user "admin-eu-paris" (a "/" is not allowed in a SPIFFE
// path segment) with role "site-admin:eu/paris".
func SiteAdmin(site string) (user, role string) {
	return "admin-" + strings.ReplaceAll(site, "/", "-"), "site-admin:" + site
}

// AllUsers is every user a sim with sites knows: DemoUsers, sorted,
// then one admin per site.
func AllUsers(sites []SiteSpec) []string {
	users := slices.Sorted(maps.Keys(DemoUsers))
	for _, s := range sites {
		u, _ := SiteAdmin(s.Name)
		users = append(users, u)
	}
	return users
}

// Roles are the roles of a user of this sim (nil for none).
func (n *Net) Roles(user string) []string {
	if r, ok := DemoUsers[user]; ok {
		return r
	}
	for _, s := range n.opts.Sites {
		if u, role := SiteAdmin(s.Name); u == user {
			return []string{role}
		}
	}
	return nil
}

func (n *Net) users() map[string][]string {
	out := map[string][]string{}
	for _, u := range n.opts.Users {
		id, err := attest.UserID(n.td, u)
		if err == nil {
			out[id.String()] = n.Roles(u)
		}
	}
	return out
}

// Options configures Start. Dir and Sites are required.
type Options struct {
	Dir         string
	TrustDomain string
	Sites       []SiteSpec
	// Users are the user identities to issue, from DemoUsers or SiteAdmin
	// (default: alice, auditor, mallory; AllUsers adds the site admins).
	// Users get long-lived SVIDs (attest.DefaultSVIDTTL) that are not
	// rotated.
	Users []string
	Log   *slog.Logger
	// Heartbeat is the coordinator's heartbeat interval (default 1s, so a
	// dead site is noticed quickly in a demo).
	Heartbeat time.Duration
	// Coordinator, if set, adjusts the coordinator's config before start.
	Coordinator func(*coordinator.Config)
	// Site, if set, adjusts each site's config before start.
	Site func(name string, cfg *site.Config)
	// SiteOptions, if set, are each site's options (site.WithBeforeTask,
	// site.WithNoiseSeed): what a simulation asks of a site that no
	// site's config can say.
	SiteOptions func(name string) []site.Option
	// PolicyDir, if set, is every site's policy folder; empty means the
	// built-in default policy.
	PolicyDir string
	// CoordinatorJurisdiction is where the coordinator runs (default "eu").
	CoordinatorJurisdiction string
	// SVIDTTL is how long the daemons' SVIDs live (default
	// attest.DefaultSVIDTTL). The coordinator and every site read theirs
	// from their identity directory with an attest.DirSource, and sim
	// re-issues each one into its directory every SVIDTTL/2, so a job
	// longer than the TTL runs across rotations, as under SPIRE.
	SVIDTTL time.Duration
	// Listen is the coordinator's address (default 127.0.0.1:0, a free
	// port; see Addr).
	Listen string
}

// Net is a running federation.
type Net struct {
	opts    Options
	td      spiffeid.TrustDomain
	CA      *attest.CA
	coordID *attest.DirSource
	addr    string

	// Every daemon's identity, closed last; and the rotator that
	// re-issues their SVIDs.
	daemons   []daemonIdentity
	rotStop   chan struct{}
	rotDone   chan struct{}
	closeOnce sync.Once

	mu    sync.Mutex
	coord *coordinator.Coordinator
	cDone chan error
	cStop context.CancelFunc
	sites map[string]*siteProc
}

// daemonIdentity is a daemon's watched identity directory.
type daemonIdentity struct {
	src *attest.DirSource
	dir string
}

type siteProc struct {
	spec     SiteSpec
	starting bool // site.New is running (StartSite)
	id       *attest.DirSource
	agent    *site.Agent
	cancel   context.CancelFunc
	done     chan error
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
		return nil, errors.New("sim: Dir and Sites are required")
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
	if opts.SVIDTTL == 0 {
		opts.SVIDTTL = attest.DefaultSVIDTTL
	}
	if opts.SVIDTTL < 0 {
		return nil, fmt.Errorf("sim: SVIDTTL %s is negative", opts.SVIDTTL)
	}
	td, err := spiffeid.TrustDomainFromString(opts.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("sim: trust domain: %w", err)
	}
	n := &Net{opts: opts, td: td, sites: map[string]*siteProc{}, addr: opts.Listen}
	if n.CA, err = loadOrCreateCA(filepath.Join(opts.Dir, "ca"), td); err != nil {
		return nil, err
	}
	for _, u := range opts.Users {
		uid, err := attest.UserID(td, u)
		if err != nil {
			return nil, fmt.Errorf("sim: user %q: %w", u, err)
		}
		if err := n.CA.IssueToDir(uid, attest.DefaultSVIDTTL, n.IdentityDir(u)); err != nil {
			return nil, err
		}
	}
	n.coordID, err = n.issueDaemon("coordinator", attest.CoordinatorID(td))
	if err != nil {
		n.Close()
		return nil, err
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
			n.Close()
			return nil, fmt.Errorf("sim: %w", err)
		}
		id, err := n.issueDaemon(strings.ReplaceAll(s.Name, "/", "-"), sid)
		if err != nil {
			n.Close()
			return nil, err
		}
		n.sites[s.Name] = &siteProc{spec: s, id: id}
	}
	n.rotStop, n.rotDone = make(chan struct{}), make(chan struct{})
	go n.rotate()
	if err := n.StartCoordinator(); err != nil {
		n.Close()
		return nil, err
	}
	// Sites start side by side: each compiles its policy, which takes
	// long enough that a thousand in a row would take minutes.
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, s := range opts.Sites {
		g.Go(func() error { return n.StartSite(s.Name) })
	}
	if err := g.Wait(); err != nil {
		n.Close()
		return nil, err
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

// issueDaemon writes a daemon's first SVID and watches its directory, as
// a daemon configured with identity.dir does.
func (n *Net) issueDaemon(name string, id spiffeid.ID) (*attest.DirSource, error) {
	dir := n.IdentityDir(name)
	if err := n.CA.IssueToDir(id, n.opts.SVIDTTL, dir); err != nil {
		return nil, err
	}
	src, err := attest.NewDirSource(dir, n.opts.Log)
	if err != nil {
		return nil, err
	}
	n.daemons = append(n.daemons, daemonIdentity{src: src, dir: dir})
	return src, nil
}

// rotate re-issues every daemon's SVID into its directory at half its
// TTL, the way a SPIRE agent renews before expiry; the daemons' DirSources
// pick the new files up.
func (n *Net) rotate() {
	defer close(n.rotDone)
	ttl := n.opts.SVIDTTL
	t := time.NewTicker(ttl / 2)
	defer t.Stop()
	for {
		select {
		case <-n.rotStop:
			return
		case <-t.C:
			for _, d := range n.daemons {
				if err := n.CA.IssueToDir(d.src.ID(), ttl, d.dir); err != nil {
					n.opts.Log.Error("sim: re-issue SVID", logkeys.SpiffeID, d.src.ID().String(), logkeys.Err, err)
				}
			}
		}
	}
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

// Site is the running agent of site name (nil while stopped).
func (n *Net) Site(name string) *site.Agent {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p, ok := n.sites[name]; ok {
		return p.agent
	}
	return nil
}

// StartCoordinator starts (or restarts, on the same address and state) the
// coordinator.
func (n *Net) StartCoordinator() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.coord != nil {
		return errors.New("sim: coordinator already running")
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
	// Everything the coordinator runs carries the profiler label
	// federa=coordinator (goroutines inherit it), so a CPU profile of the
	// whole federation can tell its share from the sites'.
	pprof.Do(context.Background(), pprof.Labels(ProfileLabel, "coordinator"), func(ctx context.Context) {
		// A restarted coordinator wants its old port back; the kernel may
		// hold it for a moment after the previous listener closed.
		for i := 0; i < 50; i++ {
			if c, err = coordinator.New(cfg); err == nil || !strings.Contains(err.Error(), "address already in use") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			return
		}
		n.addr = c.Addr()
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		n.coord, n.cStop, n.cDone = c, cancel, done
	})
	return err
}

// ProfileLabel is the runtime/pprof label key whose value, "coordinator"
// or "site", says which part of the federation a goroutine belongs to.
const ProfileLabel = "federa"

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
		return fmt.Errorf("sim: no site %q", name)
	}
	if p.agent != nil || p.starting {
		return fmt.Errorf("sim: site %s already running", name)
	}
	cfg := site.Config{
		PolicyDir:               n.opts.PolicyDir,
		CoordinatorJurisdiction: n.opts.CoordinatorJurisdiction,
		Identity:                p.id,
		CoordinatorAddr:         n.addr,
		CoordinatorID:           attest.CoordinatorID(n.td),
		Datasets: []site.Dataset{{Name: p.spec.Dataset, Path: p.spec.Path, Format: cmp.Or(p.spec.Format, "csv"),
			Labels: p.spec.Labels, Classes: p.spec.Classes, Table: p.spec.Table, DSNEnv: p.spec.DSNEnv,
			Columns: p.spec.Columns, DefaultClassification: p.spec.DefaultClassification}},
		StateDir:     n.SiteDir(name),
		ReconnectMin: 100 * time.Millisecond,
		ReconnectMax: time.Second,
		Log:          n.opts.Log,
	}
	// The site's admin, when this sim has one, may decide approvals
	// through the coordinator, as a site lists its admins in
	// approvals.remote_approvers.
	if admin, _ := SiteAdmin(name); slices.Contains(n.opts.Users, admin) {
		if id, err := attest.UserID(n.td, admin); err == nil {
			cfg.RemoteApprovers = []spiffeid.ID{id}
		}
	}
	if n.opts.Site != nil {
		n.opts.Site(name, &cfg)
	}
	// site.New compiles the policy: out of the lock, so sites start in
	// parallel.
	p.starting = true
	n.mu.Unlock()
	var a *site.Agent
	var err error
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	pprof.Do(ctx, pprof.Labels(ProfileLabel, "site"), func(ctx context.Context) {
		var opts []site.Option
		if n.opts.SiteOptions != nil {
			opts = n.opts.SiteOptions(name)
		}
		if a, err = site.New(cfg, opts...); err == nil {
			go func() { done <- a.Run(ctx) }()
		}
	})
	n.mu.Lock()
	p.starting = false
	if err != nil {
		cancel()
		return err
	}
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
			return fmt.Errorf("sim: sites did not connect: %w", ctx.Err())
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

// DialQueries returns a QueryService client authenticated as user.
func (n *Net) DialQueries(user string) (federav1.QueryServiceClient, func(), error) {
	id, err := attest.LoadIdentity(n.IdentityDir(user))
	if err != nil {
		return nil, nil, err
	}
	cc, err := grpc.NewClient(n.addr, grpc.WithTransportCredentials(attest.ClientCredentials(id, attest.AllowIDs(attest.CoordinatorID(n.td)), nil)))
	if err != nil {
		return nil, nil, err
	}
	return federav1.NewQueryServiceClient(cc), func() { cc.Close() }, nil
}

// Close stops, in order: the SVID rotator, every site, the coordinator,
// and the daemons' identity watchers. Safe to call more than once.
func (n *Net) Close() error {
	n.closeOnce.Do(func() {
		if n.rotStop != nil {
			close(n.rotStop)
			<-n.rotDone
		}
	})
	for _, s := range n.opts.Sites {
		n.StopSite(s.Name)
	}
	err := n.StopCoordinator()
	for _, d := range n.daemons {
		d.src.Close()
	}
	return err
}
