package coordinator

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/coordinator/web"
	"github.com/federa-dev/federa/internal/httpserve"
	"github.com/federa-dev/federa/policy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// openHTTP binds the opt-in HTTP listener (Config.HTTP): /metrics, the
// read-only page (coordinator/web) and /healthz.
func (c *Coordinator) openHTTP() error {
	if !c.cfg.HTTP.Enabled() {
		return nil
	}
	mux := http.NewServeMux()
	src := pageSource{c: c}
	if r := c.cfg.HTTP.Reader; r != "" {
		src.reader = spiffeid.RequireFromString(r) // checked by Validate
	}
	if c.cfg.HTTP.Dev || !src.reader.IsZero() {
		if err := web.Register(mux, src, web.Options{Dev: c.cfg.HTTP.Dev, Addr: c.Addr(), Log: c.log, Now: c.cfg.Now}); err != nil {
			return err
		}
	} else {
		// Job data is read only through the access policy, as a caller
		// it can judge: without http.reader there is nobody to ask about.
		refuse := func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "the jobs page is off: set http.reader in coordinator.yaml to the SPIFFE ID the token reads as (the access policy then decides what it shows); /metrics needs only the token", http.StatusForbidden)
		}
		mux.HandleFunc("GET /{$}", refuse)
		mux.HandleFunc("GET /jobs/{id}", refuse)
	}
	s, err := httpserve.New(c.cfg.HTTP, c.metrics.reg, mux, c.log)
	if err != nil {
		return fmt.Errorf("coordinator config: %w", err)
	}
	c.http = s
	return nil
}

// HTTPAddr is the bound HTTP address, or "" when Config.HTTP is off.
func (c *Coordinator) HTTPAddr() string {
	if c.http == nil {
		return ""
	}
	return c.http.Addr()
}

// serveHTTP serves the HTTP listener in the background and returns the
// function that stops it and waits.
func (c *Coordinator) serveHTTP() func() {
	if c.http == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := c.http.Serve(ctx); err != nil {
			c.log.Error("http listener stopped", "err", err)
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// pageSource is what the page reads from the coordinator: as reader,
// through the access policy, unless reader is zero (dev mode).
type pageSource struct {
	c      *Coordinator
	reader spiffeid.ID
}

// may reports whether the reader may call rpc on res; every refusal is
// logged by the access check.
func (p pageSource) may(rpc string, res policy.Resource) bool {
	if p.reader.IsZero() {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.c.authorizeID(ctx, p.reader, rpc, res) == nil
}

func (p pageSource) Jobs() []*federav1.Job {
	c := p.c
	c.mu.Lock()
	all := make([]*federav1.Job, 0, len(c.jobs))
	for _, js := range c.jobs {
		all = append(all, js.job)
	}
	c.mu.Unlock()
	out := all[:0]
	for _, j := range all {
		if p.may(rpcName(federav1.JobService_GetJob_FullMethodName), policy.Resource{JobOwner: j.GetRequester()}) {
			out = append(out, j)
		}
	}
	slices.SortFunc(out, func(a, b *federav1.Job) int {
		if a.GetCreatedUnixMs() != b.GetCreatedUnixMs() {
			return int(b.GetCreatedUnixMs() - a.GetCreatedUnixMs())
		}
		return strings.Compare(a.GetId(), b.GetId())
	})
	return out
}

func (p pageSource) Job(id string) (*federav1.Job, bool) {
	j, _, _, ok := p.c.snapshot(id)
	if !ok || !p.may(rpcName(federav1.JobService_GetJob_FullMethodName), policy.Resource{JobOwner: j.GetRequester()}) {
		return nil, false // refused looks like not found, as GetJob's probing rule
	}
	return j, true
}

// Audit reads the latest checkpoint and checks it: its signature against
// the log key and its root against the log's own tree at that size.
func (p pageSource) Audit() web.Audit {
	c := p.c
	if !p.may(rpcName(federav1.AuditService_Checkpoint_FullMethodName), policy.Resource{}) {
		return web.Audit{Problem: fmt.Sprintf("not shown: the access policy does not let %s read the audit log", p.reader)}
	}
	a := web.Audit{Entries: c.auditLog.Size(), Bytes: dirBytes(c.auditLog.Dir())}
	cp, err := c.auditLog.LatestCheckpoint()
	if err != nil {
		return a // none signed yet
	}
	head, err := auditlog.VerifyCheckpoint(cp, c.auditKey)
	if err != nil {
		a.Problem = err.Error()
		return a
	}
	root, err := c.auditLog.RootAt(head.Size)
	if err != nil {
		a.Problem = err.Error()
		return a
	}
	if root != head.Root {
		a.Problem = fmt.Sprintf("its root at size %d differs from the log's own tree hash", head.Size)
		return a
	}
	a.Checkpoint = &web.Checkpoint{Size: head.Size, Root: base64.StdEncoding.EncodeToString(head.Root[:]), Witnesses: witnessCount(c, cp)}
	return a
}

// witnessCount is how many connected sites' witness keys verify on cp.
func witnessCount(c *Coordinator, cp []byte) int {
	c.mu.Lock()
	var keys []string
	for _, s := range c.sessions {
		if s.witnessKey != "" {
			keys = append(keys, s.witnessKey)
		}
	}
	c.mu.Unlock()
	n := 0
	for _, k := range keys {
		if h, err := auditlog.VerifyCheckpoint(cp, c.auditKey, k); err == nil && len(h.Witnesses) > 0 {
			n++
		}
	}
	return n
}
