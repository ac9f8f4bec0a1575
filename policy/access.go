package policy

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// AccessQuery is the document the coordinator's access policy defines.
const AccessQuery = "data.federa.access.decision"

//go:embed access
var accessFS embed.FS

// DefaultAccess returns the embedded access policy folder (policy/access:
// access.rego and its tests).
func DefaultAccess() fs.FS { return sub(accessFS, "access") }

// Caller is who is calling, as mTLS proved it and the coordinator's config
// describes it.
type Caller struct {
	ID string
	// Kind is "user", "site", "coordinator" or "other".
	Kind  string
	Roles []string
	// AdminOf lists the sites a user is site-admin of.
	AdminOf []string
	// Site is a site's name ("eu/paris"); Listed says the coordinator's
	// config lists it.
	Site   string
	Listed bool
}

// Resource is what an RPC acts on; each RPC sets what applies to it.
type Resource struct {
	JobOwner string
	Site     string
	TaskSite string
}

// AccessRequest is one question to the access policy; accessInput maps it
// to the input document policy/access/access.rego reads.
type AccessRequest struct {
	Caller   Caller
	RPC      string // "Service.Method", e.g. "JobService.SubmitJob"
	Resource Resource
}

// AccessDecision is the access policy's answer.
type AccessDecision struct {
	Allow   bool
	Reasons []string
}

// Access is the coordinator's compiled access policy. Decisions depend only
// on the request, so they are remembered (bounded): a busy coordinator asks
// OPA once per distinct (caller, RPC, resource). Safe for concurrent use.
type Access struct {
	pq rego.PreparedEvalQuery

	mu    sync.Mutex
	cache map[accessKey]AccessDecision
}

// accessKey identifies a request for the decision cache. A caller's
// roles come from the coordinator's config, fixed for the process, so the
// ID stands for them.
type accessKey struct {
	Caller, RPC string
	Resource    Resource
}

const accessCacheMax = 8192

// LoadAccess compiles an access policy folder (every .rego file under dir
// except tests, with its data files), strictly, and checks that it answers
// AccessQuery with a decision of the right shape.
func LoadAccess(ctx context.Context, dir string) (*Access, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("load access policy %q: %w", dir, err)
	}
	a, err := loadAccess(ctx, os.DirFS(dir), ".", dir)
	if err != nil {
		return nil, fmt.Errorf("load access policy %q: %w", dir, err)
	}
	return a, nil
}

// LoadDefaultAccess compiles the embedded access policy.
func LoadDefaultAccess(ctx context.Context) (*Access, error) {
	a, err := loadAccess(ctx, DefaultAccess(), ".", "policy/access")
	if err != nil {
		return nil, fmt.Errorf("load built-in access policy: %w", err)
	}
	return a, nil
}

func loadAccess(ctx context.Context, fsys fs.FS, root, display string) (*Access, error) {
	snap, err := readSnapshot(fsys, root, false)
	if err != nil {
		return nil, err
	}
	if !snap.hasPolicy() {
		return nil, ErrNoPolicy
	}
	compiler, store, err := compile(ctx, snap, display)
	if err != nil {
		return nil, err
	}
	pq, err := rego.New(
		rego.Query(AccessQuery),
		rego.Compiler(compiler),
		rego.Store(store),
		rego.StoreReadAST(true),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	a := &Access{pq: pq, cache: map[accessKey]AccessDecision{}}
	// Validated on a sample, as the site policy is: a policy that fails to
	// evaluate or answers in the wrong shape never loads.
	if _, err := a.eval(ctx, AccessRequest{Caller: Caller{ID: "spiffe://example.org/user/sample", Kind: "user"}, RPC: "JobService.ListJobs"}); err != nil {
		return nil, err
	}
	return a, nil
}

// Decide answers req. An evaluation error denies, with the error as the
// reason.
func (a *Access) Decide(ctx context.Context, req AccessRequest) AccessDecision {
	key := accessKey{Caller: req.Caller.ID, RPC: req.RPC, Resource: req.Resource}
	a.mu.Lock()
	d, ok := a.cache[key]
	a.mu.Unlock()
	if ok {
		return d
	}
	d, err := a.eval(ctx, req)
	if err != nil {
		// Not remembered: the next call asks again.
		return AccessDecision{Reasons: []string{"access policy error: " + err.Error()}}
	}
	a.mu.Lock()
	if len(a.cache) >= accessCacheMax {
		clear(a.cache)
	}
	a.cache[key] = d
	a.mu.Unlock()
	return d
}

func (a *Access) eval(ctx context.Context, req AccessRequest) (AccessDecision, error) {
	in, err := ast.InterfaceToValue(accessInput(req))
	if err != nil {
		return AccessDecision{}, err
	}
	rs, err := a.pq.Eval(ctx, rego.EvalParsedInput(in))
	if err != nil {
		return AccessDecision{}, fmt.Errorf("evaluate %s: %w", AccessQuery, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return AccessDecision{}, fmt.Errorf("%s is undefined; the policy must always define it", AccessQuery)
	}
	m, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return AccessDecision{}, fmt.Errorf("%s: want an object {allow, reasons}, got %T", AccessQuery, rs[0].Expressions[0].Value)
	}
	allow, ok := m["allow"].(bool)
	if !ok {
		return AccessDecision{}, fmt.Errorf("%s.allow: want a boolean, got %T", AccessQuery, m["allow"])
	}
	d := AccessDecision{Allow: allow}
	rsn, _ := m["reasons"].([]any)
	for _, r := range rsn {
		s, ok := r.(string)
		if !ok {
			return AccessDecision{}, fmt.Errorf("%s.reasons: want strings, got %T", AccessQuery, r)
		}
		d.Reasons = append(d.Reasons, s)
	}
	if !d.Allow && len(d.Reasons) == 0 {
		d.Reasons = []string{"no rule of the access policy allows it"}
	}
	return d, nil
}

// accessInput is the request as the policy's input document (plain JSON
// types, no struct tags to honour at evaluation).
func accessInput(req AccessRequest) map[string]any {
	c := req.Caller
	return map[string]any{
		"caller": map[string]any{
			"id": c.ID, "kind": c.Kind, "roles": strSlice(c.Roles), "admin_of": strSlice(c.AdminOf),
			"site": c.Site, "listed": c.Listed,
		},
		"rpc": req.RPC,
		"resource": map[string]any{
			"job_owner": req.Resource.JobOwner, "site": req.Resource.Site, "task_site": req.Resource.TaskSite,
		},
	}
}

func strSlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// Error is the refusal as a caller reads it: who, what, and why not.
func (d AccessDecision) Error(caller, rpc string) error {
	if d.Allow {
		return nil
	}
	return errors.New(caller + " may not call " + rpc + ": " + strings.Join(d.Reasons, "; "))
}
