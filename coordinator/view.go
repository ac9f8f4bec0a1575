package coordinator

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/federa-dev/federa/attest"
	"github.com/federa-dev/federa/policy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// A job record grows with its rounds (up to maxRoundSummaries of them,
// each listing its participants), its sites and its feature columns (a
// 500,000-column job's names alone are 4 MB). GetJob and WatchJob send a
// view of it within these budgets, far below gRPC's 4 MiB message limit
// together; ListRounds, ListJobSites and ListFeatures page through the
// rest.
const (
	viewRoundsBytes   = 1 << 20
	viewSitesBytes    = 512 << 10
	viewFeaturesBytes = 512 << 10
)

// Page sizes of ListJobs (and ListQueries), ListRounds, ListJobSites and
// ListFeatures. A page also stops at pageBytes.
const (
	defaultJobsPage     = 100
	maxJobsPage         = 1000
	defaultRoundsPage   = 100
	maxRoundsPage       = 1000
	defaultSitesPage    = 100
	maxSitesPage        = 1000
	defaultFeaturesPage = 10_000
	maxFeaturesPage     = 100_000
	pageBytes           = 2 << 20
)

// shallowJob is a new Job whose fields are j's, sharing their values: the
// view functions replace its lists with sub-slices of j's and never
// change what they share (a published record is never changed: updates
// work on a clone).
func shallowJob(j *federav1.Job) *federav1.Job {
	v := &federav1.Job{}
	dst := v.ProtoReflect()
	j.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		dst.Set(fd, val)
		return true
	})
	return v
}

// jobView is j as GetJob and WatchJob send it: the newest rounds, the
// first sites and the first features that fit their budgets, saying how
// many of each it left out. A record within the budgets is sent as it is.
func jobView(j *federav1.Job) *federav1.Job {
	rounds := fitNewest(j.GetRounds(), viewRoundsBytes, func(r *federav1.RoundSummary) int { return proto.Size(r) })
	sites := fitFirst(j.GetSites(), viewSitesBytes, func(s *federav1.SiteSummary) int { return proto.Size(s) })
	features := fitFirst(j.GetFeatures(), viewFeaturesBytes, func(f string) int { return len(f) })
	if len(rounds) == len(j.GetRounds()) && len(sites) == len(j.GetSites()) && len(features) == len(j.GetFeatures()) {
		return j
	}
	v := shallowJob(j)
	v.Rounds, v.Sites, v.Features = rounds, sites, features
	v.RoundsOmitted = int32(len(j.GetRounds()) - len(rounds))
	v.SitesOmitted = int32(len(j.GetSites()) - len(sites))
	v.FeaturesOmitted = int32(len(j.GetFeatures()) - len(features))
	return v
}

// jobSummary is j as ListJobs sends it: the last round only, no sites or
// features.
func jobSummary(j *federav1.Job) *federav1.Job {
	v := shallowJob(j)
	if n := len(j.GetRounds()); n > 1 {
		v.Rounds, v.RoundsOmitted = j.GetRounds()[n-1:], int32(n-1)
	}
	v.Sites, v.SitesOmitted = nil, int32(len(j.GetSites()))
	v.Features, v.FeaturesOmitted = nil, int32(len(j.GetFeatures()))
	return v
}

// fitFirst is the longest prefix of xs whose sizes (plus 4 bytes of
// framing each) add up to at most budget.
func fitFirst[T any](xs []T, budget int, size func(T) int) []T {
	n := 0
	for i, x := range xs {
		if n += size(x) + 4; n > budget {
			return xs[:i]
		}
	}
	return xs
}

// fitNewest is the longest suffix of xs whose sizes (plus 4 bytes of
// framing each) add up to at most budget.
func fitNewest[T any](xs []T, budget int, size func(T) int) []T {
	n := 0
	for i := len(xs) - 1; i >= 0; i-- {
		if n += size(xs[i]) + 4; n > budget {
			return xs[i+1:]
		}
	}
	return xs
}

// pageSize checks a request's page size: 0 means def, and it must lie in
// 1 to most.
func pageSize(n int32, def, most int) (int, error) {
	switch {
	case n == 0:
		return def, nil
	case n < 0 || int(n) > most:
		return 0, status.Errorf(codes.InvalidArgument, "field page_size: %d; valid: 1 to %d, or 0 for %d", n, most, def)
	}
	return int(n), nil
}

func badToken(t string) error {
	return status.Errorf(codes.InvalidArgument, "field page_token: %q is not a token this coordinator gave; pass next_page_token from the previous page, or \"\" for the first", t)
}

// ListJobs pages through the jobs the caller may read (those the access
// policy lets them GetJob: a data scientist's own; every job for an
// operator), oldest first, each as a summary (jobSummary).
func (s *jobService) ListJobs(ctx context.Context, req *federav1.ListJobsRequest) (*federav1.ListJobsResponse, error) {
	id, err := attest.PeerID(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "an mTLS SPIFFE identity is required")
	}
	caller := s.c.callerOf(id)
	jobs, next, err := pageByCreation(s.c.jobRecords(), req.GetPageToken(), req.GetPageSize(), func(j *federav1.Job) (*federav1.Job, bool) {
		d := s.c.access.Decide(ctx, policy.AccessRequest{Caller: caller, RPC: "JobService.GetJob", Resource: policy.Resource{JobOwner: j.GetRequester()}})
		if !d.Allow {
			return nil, false
		}
		return jobSummary(j), true
	})
	if err != nil {
		return nil, err
	}
	return &federav1.ListJobsResponse{Jobs: jobs, NextPageToken: next}, nil
}

// created is what pageByCreation orders by: jobs and queries.
type created interface {
	proto.Message
	GetCreatedUnixMs() int64
	GetId() string
}

// pageByCreation returns one page of all (sorted by creation time, then
// id): the items after token that view lets the caller see, as view
// shows them, at most size (0: defaultJobsPage; up to maxJobsPage) and
// pageBytes of them, with the token of the next page ("" at the end). The
// token is the creation time and id of the last item returned, so items
// added while a client pages neither repeat nor shift the pages.
func pageByCreation[T created](all []T, token string, size int32, view func(T) (T, bool)) ([]T, string, error) {
	n, err := pageSize(size, defaultJobsPage, maxJobsPage)
	if err != nil {
		return nil, "", err
	}
	var afterMs int64
	var afterID string
	if token != "" {
		ms, rest, ok := strings.Cut(token, "/")
		v, err := strconv.ParseInt(ms, 10, 64)
		if !ok || err != nil || rest == "" {
			return nil, "", badToken(token)
		}
		afterMs, afterID = v, rest
	}
	var page []T
	bytes := 0
	for _, it := range all {
		if token != "" && cmp.Or(cmp.Compare(it.GetCreatedUnixMs(), afterMs), strings.Compare(it.GetId(), afterID)) <= 0 {
			continue
		}
		v, ok := view(it)
		if !ok {
			continue
		}
		if len(page) == n || (len(page) > 0 && bytes+proto.Size(v) > pageBytes) {
			last := page[len(page)-1]
			return page, fmt.Sprintf("%d/%s", last.GetCreatedUnixMs(), last.GetId()), nil
		}
		page = append(page, v)
		bytes += proto.Size(v)
	}
	return page, "", nil
}

// jobRecords is every job's latest record, oldest first (by creation
// time, then id).
func (c *Coordinator) jobRecords() []*federav1.Job {
	c.mu.Lock()
	jobs := make([]*federav1.Job, 0, len(c.jobs))
	for _, js := range c.jobs {
		jobs = append(jobs, js.job)
	}
	c.mu.Unlock()
	slices.SortFunc(jobs, func(a, b *federav1.Job) int {
		return cmp.Or(cmp.Compare(a.GetCreatedUnixMs(), b.GetCreatedUnixMs()), strings.Compare(a.GetId(), b.GetId()))
	})
	return jobs
}

// ListRounds pages through a job's round summaries, oldest first. The
// page token is the number of the last round returned: the record drops
// its oldest summaries past maxRoundSummaries, and a number, unlike a
// position, stays put when it does.
func (s *jobService) ListRounds(_ context.Context, req *federav1.ListRoundsRequest) (*federav1.ListRoundsResponse, error) {
	j, _, _, ok := s.c.snapshot(req.GetJobId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "job %q not found", req.GetJobId())
	}
	size, err := pageSize(req.GetPageSize(), defaultRoundsPage, maxRoundsPage)
	if err != nil {
		return nil, err
	}
	rounds := j.GetRounds()
	if t := req.GetPageToken(); t != "" {
		after, err := strconv.ParseInt(t, 10, 32)
		if err != nil {
			return nil, badToken(t)
		}
		i, _ := slices.BinarySearchFunc(rounds, int32(after)+1, func(r *federav1.RoundSummary, n int32) int { return cmp.Compare(r.GetRound(), n) })
		rounds = rounds[i:]
	}
	page := fitFirst(rounds[:min(size, len(rounds))], pageBytes, func(r *federav1.RoundSummary) int { return proto.Size(r) })
	if len(page) == 0 && len(rounds) > 0 {
		page = rounds[:1] // one summary is far below the limit (maxSiteRounds)
	}
	resp := &federav1.ListRoundsResponse{Rounds: page, Total: int64(len(j.GetRounds()))}
	if len(page) < len(rounds) {
		resp.NextPageToken = strconv.Itoa(int(page[len(page)-1].GetRound()))
	}
	return resp, nil
}

// ListFeatures pages through a job's feature columns in the model's
// order. The page token is the position after the last column returned
// (the columns never change once agreed).
func (s *jobService) ListFeatures(_ context.Context, req *federav1.ListFeaturesRequest) (*federav1.ListFeaturesResponse, error) {
	j, _, _, ok := s.c.snapshot(req.GetJobId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "job %q not found", req.GetJobId())
	}
	size, err := pageSize(req.GetPageSize(), defaultFeaturesPage, maxFeaturesPage)
	if err != nil {
		return nil, err
	}
	all := j.GetFeatures()
	from := 0
	if t := req.GetPageToken(); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > len(all) {
			return nil, badToken(t)
		}
		from = n
	}
	page := fitFirst(all[from:min(from+size, len(all))], pageBytes, func(f string) int { return len(f) })
	resp := &federav1.ListFeaturesResponse{Features: page, Total: int64(len(all))}
	if end := from + len(page); end < len(all) {
		resp.NextPageToken = strconv.Itoa(end)
	}
	return resp, nil
}

// ListJobSites pages through a job's site summaries, sorted by site. The
// page token is the name of the last site returned (a site joining a
// resumed job lands in its place, never shifting the pages).
func (s *jobService) ListJobSites(_ context.Context, req *federav1.ListJobSitesRequest) (*federav1.ListJobSitesResponse, error) {
	j, _, _, ok := s.c.snapshot(req.GetJobId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "job %q not found", req.GetJobId())
	}
	size, err := pageSize(req.GetPageSize(), defaultSitesPage, maxSitesPage)
	if err != nil {
		return nil, err
	}
	sites := j.GetSites()
	if t := req.GetPageToken(); t != "" {
		i, found := slices.BinarySearchFunc(sites, t, func(s *federav1.SiteSummary, name string) int { return strings.Compare(s.GetSite(), name) })
		if found {
			i++
		}
		sites = sites[i:]
	}
	page := fitFirst(sites[:min(size, len(sites))], pageBytes, func(s *federav1.SiteSummary) int { return proto.Size(s) })
	if len(page) == 0 && len(sites) > 0 {
		page = sites[:1] // one summary is far below the limit (its admission's reasons are bounded)
	}
	resp := &federav1.ListJobSitesResponse{Sites: page, Total: int64(len(j.GetSites()))}
	if len(page) < len(sites) {
		resp.NextPageToken = page[len(page)-1].GetSite()
	}
	return resp, nil
}
