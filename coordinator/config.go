package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/internal/config"
	"github.com/federa-dev/federa/internal/httpserve"
)

// Defaults for Config fields left at their zero value.
const (
	DefaultListen            = "127.0.0.1:7443"
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultSiteWaitTimeout   = 30 * time.Second
)

// File is coordinator.yaml as an operator writes it (docs/configuration.md).
type File struct {
	Listen   string `yaml:"listen"`
	StateDir string `yaml:"state_dir"`
	// Identity is where the coordinator's SVID comes from, and the bundles
	// of the other trust domains its sites live in.
	Identity attest.IdentityConfig `yaml:"identity"`
	// Sites lists the SPIFFE IDs of the sites allowed to connect.
	Sites []string `yaml:"sites"`
	// Users lists user SPIFFE IDs and their roles.
	Users []struct {
		ID    string   `yaml:"id"`
		Roles []string `yaml:"roles"`
	} `yaml:"users"`
	// AccessPolicy is a folder of Rego defining data.federa.access.decision,
	// in place of the built-in access policy (policy/access).
	AccessPolicy      string          `yaml:"access_policy"`
	HeartbeatInterval config.Duration `yaml:"heartbeat_interval"`
	SiteWaitTimeout   config.Duration `yaml:"site_wait_timeout"`
	// Limits bound the connections and streams peers may hold open.
	Limits LimitsFile `yaml:"limits"`
	// HTTP is the opt-in plain-HTTP address for /metrics and the jobs
	// page (docs/operations.md).
	HTTP     httpserve.File `yaml:"http"`
	LogLevel string         `yaml:"log_level"`
}

// LoadFile reads and checks coordinator.yaml, returning a Config with the
// identity loaded. Relative paths (state_dir, access_policy, identity.dir,
// trust domain bundles) are taken relative to the file's directory, as in
// site.yaml, so the coordinator finds the same state from any working
// directory.
func LoadFile(path string, log *slog.Logger) (Config, error) {
	var f File
	// Problems with keys and values are reported together with those
	// found below, so one run names everything wrong in the file.
	var errs []error
	if err := config.DecodeFile(path, &f); err != nil {
		var fe *config.FieldErrors
		if !errors.As(err, &fe) {
			return Config{}, err
		}
		errs = append(errs, fe.Errs...)
	}
	base := filepath.Dir(path)
	cfg := Config{
		Listen:            f.Listen,
		StateDir:          relativeTo(base, f.StateDir),
		AccessPolicy:      relativeTo(base, f.AccessPolicy),
		HeartbeatInterval: f.HeartbeatInterval.D(),
		SiteWaitTimeout:   f.SiteWaitTimeout.D(),
		HTTP:              f.HTTP.Config(base),
	}
	for i, s := range f.Sites {
		id, err := spiffeid.FromString(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("field sites[%d]: %q is not a SPIFFE ID: %v (want spiffe://<trust-domain>/site/<jurisdiction>/<name>)", i, s, err))
			continue
		}
		cfg.Sites = append(cfg.Sites, id)
	}
	for i, u := range f.Users {
		id, err := spiffeid.FromString(u.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("field users[%d].id: %q is not a SPIFFE ID: %v (want spiffe://<trust-domain>/user/<name>)", i, u.ID, err))
			continue
		}
		if cfg.Users == nil {
			cfg.Users = map[string][]string{}
		}
		cfg.Users[id.String()] = u.Roles
	}
	// Reported beside the file's other problems; Validate checks it again
	// for configs built in code.
	if err := cfg.HTTP.Validate(); err != nil {
		errs = append(errs, err)
	}
	if l, err := f.Limits.limits(); err != nil {
		errs = append(errs, err)
	} else {
		cfg.Limits = l
	}
	if id, err := attest.LoadSourceConfig(context.Background(), f.Identity.RelativeTo(base), log); err != nil {
		errs = append(errs, err)
	} else {
		cfg.Identity = id
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// relativeTo is p taken relative to base, the directory of the file that
// names it; empty and absolute paths are left as they are.
func relativeTo(base, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// Config is everything a Coordinator needs. Its zero value plus StateDir,
// Identity and Sites is a working configuration.
type Config struct {
	// Listen is host:port; port 0 picks a free port (see Coordinator.Addr).
	Listen   string
	StateDir string
	Identity attest.Source
	// Sites are the site SPIFFE IDs allowed to connect; any other site is
	// refused at the TLS handshake.
	Sites             []spiffeid.ID
	HeartbeatInterval time.Duration
	// Users maps user SPIFFE IDs to their roles: data-scientist, auditor,
	// operator, site-admin:<site>. The access policy decides what each role
	// may call; sites' policies see the role a job was submitted under.
	Users map[string][]string
	// AccessPolicy is a folder with a replacement access policy; empty
	// means the built-in one.
	AccessPolicy string
	// SiteWaitTimeout is how long a job waits for enough of its sites to
	// be connected before it fails.
	SiteWaitTimeout time.Duration
	// Limits bound the connections and streams peers may hold open; zero
	// fields take their defaults (see Limits).
	Limits Limits
	// HTTP is the opt-in plain-HTTP listener for /metrics and the
	// read-only jobs page; its zero value serves nothing.
	HTTP httpserve.Config
	Log  *slog.Logger
	// ServerOptions are extra gRPC server options (tests use them to watch
	// the wire).
	ServerOptions []grpc.ServerOption
	// Clock is the time deadlines run on (default the wall clock); tests
	// inject one. Now, if set without Clock, stamps times only.
	Clock Clock
	// Now is Clock.Now once the config is in use.
	Now func() time.Time
}

// Validate reports every problem with the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if c.StateDir == "" {
		errs = append(errs, errors.New("field state_dir: required (where jobs and checkpoints are kept)"))
	}
	if c.Listen != "" {
		if err := config.CheckHostPort(c.Listen, DefaultListen); err != nil {
			errs = append(errs, fmt.Errorf("field listen: %w", err))
		}
	}
	if c.Identity == nil {
		errs = append(errs, errors.New("field identity: required"))
	}
	if len(c.Sites) == 0 {
		errs = append(errs, errors.New("field sites: list at least one site SPIFFE ID allowed to connect"))
	}
	seen := map[spiffeid.ID]bool{}
	names := map[string]spiffeid.ID{}
	for i, id := range c.Sites {
		name, ok := attest.SiteName(id)
		if !ok {
			errs = append(errs, fmt.Errorf("field sites[%d]: %s is not a site ID; want spiffe://<trust-domain>/site/<jurisdiction>/<name>", i, id))
		}
		switch other, dup := names[name]; {
		case seen[id]:
			errs = append(errs, fmt.Errorf("field sites[%d]: %s listed twice", i, id))
		case ok && dup:
			// Jobs, tasks and policies name sites without their trust domain.
			errs = append(errs, fmt.Errorf("field sites[%d]: %s and %s are both site %q; site names must be unique across trust domains", i, other, id, name))
		}
		seen[id], names[name] = true, id
	}
	for id, roles := range c.Users {
		sid, err := spiffeid.FromString(id)
		if err != nil || !attest.IsUser(sid) {
			errs = append(errs, fmt.Errorf("field users: %q is not a user ID; want spiffe://<trust-domain>/user/<name>", id))
		}
		for _, r := range roles {
			if err := c.checkRole(r); err != nil {
				errs = append(errs, fmt.Errorf("field users: %s: %w", id, err))
			}
		}
	}
	if c.HeartbeatInterval < 0 {
		errs = append(errs, fmt.Errorf("field heartbeat_interval: %s is negative", c.HeartbeatInterval))
	}
	if c.SiteWaitTimeout < 0 {
		errs = append(errs, fmt.Errorf("field site_wait_timeout: %s is negative", c.SiteWaitTimeout))
	}
	errs = append(errs, c.Limits.validate()...)
	if err := c.HTTP.Validate(); err != nil {
		errs = append(errs, err)
	}
	if r := c.HTTP.Reader; r != "" {
		if _, err := spiffeid.FromString(r); err != nil {
			errs = append(errs, fmt.Errorf("field http.reader: %q is not a SPIFFE ID (%v); want the user the token reads the jobs page as, e.g. spiffe://example.org/user/ops", r, err))
		}
	}
	return errors.Join(errs...)
}

// Roles a user may hold, besides site-admin:<site>.
var plainRoles = []string{"data-scientist", "auditor", "operator"}

func (c *Config) checkRole(r string) error {
	if slices.Contains(plainRoles, r) {
		return nil
	}
	site, ok := strings.CutPrefix(r, SiteAdminRole)
	if !ok {
		if r == "site-admin" {
			return fmt.Errorf("role %q must name its site: site-admin:<jurisdiction>/<name>, e.g. site-admin:eu/paris", r)
		}
		return fmt.Errorf("role %q is not valid; valid: %s, site-admin:<site>", r, strings.Join(plainRoles, ", "))
	}
	for _, id := range c.Sites {
		if name, _ := attest.SiteName(id); name == site {
			return nil
		}
	}
	return fmt.Errorf("role %q: %q is not a site in field sites", r, site)
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.SiteWaitTimeout == 0 {
		c.SiteWaitTimeout = DefaultSiteWaitTimeout
	}
	c.Limits.setDefaults()
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Clock != nil:
	case c.Now != nil:
		c.Clock = nowClock{now: c.Now}
	default:
		c.Clock = systemClock{}
	}
	c.Now = c.Clock.Now
}
