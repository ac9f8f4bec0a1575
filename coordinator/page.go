package coordinator

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/federa-dev/federa/attest/auditlog"
	"github.com/federa-dev/federa/coordinator/web"
	"github.com/federa-dev/federa/internal/httpserve"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// openHTTP binds the opt-in HTTP listener (Config.HTTP): /metrics, the
// read-only page (coordinator/web) and /healthz.
func (c *Coordinator) openHTTP() error {
	if !c.cfg.HTTP.Enabled() {
		return nil
	}
	mux := http.NewServeMux()
	if err := web.Register(mux, pageSource{c}, web.Options{Dev: c.cfg.HTTP.Dev, Addr: c.Addr(), Log: c.log, Now: c.cfg.Now}); err != nil {
		return err
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

// pageSource is what the page reads from the coordinator.
type pageSource struct{ c *Coordinator }

func (p pageSource) Jobs() []*federav1.Job {
	c := p.c
	c.mu.Lock()
	out := make([]*federav1.Job, 0, len(c.jobs))
	for _, js := range c.jobs {
		out = append(out, js.job)
	}
	c.mu.Unlock()
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
	return j, ok
}

// Audit reads the latest checkpoint and checks it: its signature against
// the log key and its root against the log's own tree at that size.
func (p pageSource) Audit() web.Audit {
	c := p.c
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
