package coordinator

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// grpcLimit is gRPC's default receive limit, which every read of a job
// must stay under.
const grpcLimit = 4 << 20

// bigJob is the record of a 1,000-site job over 500,000 columns after
// maxRoundSummaries rounds: about 26 MB, every round listing its
// participants.
func bigJob() *federav1.Job {
	const sites, columns = 1000, 500_000
	j := &federav1.Job{Id: "job-big", Status: federav1.JobStatus_JOB_STATUS_RUNNING, Spec: &federav1.JobSpec{Name: "big", Rounds: 5000}}
	names := make([]string, sites)
	for i := range names {
		names[i] = fmt.Sprintf("eu/hospital-%04d", i)
		// Each site's admission says why at length: 1.1 MB of summaries.
		j.Sites = append(j.Sites, &federav1.SiteSummary{Site: names[i], TrainRows: 1000, Admission: &federav1.Admission{
			Outcome: federav1.Admission_OUTCOME_ALLOW, PolicyRevision: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			Reasons: []string{strings.Repeat("allowed: every column is described and none is personal. ", 16)}}})
	}
	for r := 4001; r <= 4000+maxRoundSummaries; r++ {
		j.Rounds = append(j.Rounds, &federav1.RoundSummary{Round: int32(r), Participants: names, TrainLoss: 0.5})
	}
	for c := range columns {
		j.Features = append(j.Features, fmt.Sprintf("feature_%06d", c))
	}
	j.RoundsCompleted = 5000
	return j
}

// TestJobReadsStayUnderTheLimit: GetJob of a 1,000-site, 1,000-round,
// 500,000-column job (a 27 MB record) sends a view far below gRPC's 4 MiB
// limit, with the newest rounds and counts of what it left out; paging
// ListRounds and ListFeatures returns every round and column exactly
// once, in order, each page under the limit; so does ListJobSites.
func TestJobReadsStayUnderTheLimit(t *testing.T) {
	j := bigJob()
	if n := proto.Size(j); n < 6*grpcLimit {
		t.Fatalf("the test record is only %d bytes", n)
	}
	c := &Coordinator{jobs: map[string]*jobState{j.GetId(): {job: j, changed: make(chan struct{})}}}
	svc := &jobService{c: c}
	ctx := context.Background()

	v, err := svc.GetJob(ctx, &federav1.GetJobRequest{Id: j.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if n := proto.Size(v); n > grpcLimit*3/4 {
		t.Fatalf("GetJob sends %d bytes; want well under gRPC's %d", n, grpcLimit)
	}
	t.Logf("a %d-byte record: GetJob sends %d bytes (%d rounds, %d sites, %d features; %d, %d, %d omitted)", proto.Size(j), proto.Size(v),
		len(v.GetRounds()), len(v.GetSites()), len(v.GetFeatures()), v.GetRoundsOmitted(), v.GetSitesOmitted(), v.GetFeaturesOmitted())
	if len(v.GetRounds()) == 0 || v.GetRounds()[len(v.GetRounds())-1].GetRound() != 5000 {
		t.Fatalf("GetJob's view does not end with the newest round")
	}
	if got := int(v.GetRoundsOmitted()) + len(v.GetRounds()); got != len(j.GetRounds()) {
		t.Errorf("rounds: %d sent + %d omitted, want %d", len(v.GetRounds()), v.GetRoundsOmitted(), len(j.GetRounds()))
	}
	if got := int(v.GetFeaturesOmitted()) + len(v.GetFeatures()); got != len(j.GetFeatures()) || v.GetFeaturesOmitted() == 0 {
		t.Errorf("features: %d sent + %d omitted, want %d with some omitted", len(v.GetFeatures()), v.GetFeaturesOmitted(), len(j.GetFeatures()))
	}
	if got := int(v.GetSitesOmitted()) + len(v.GetSites()); got != len(j.GetSites()) || v.GetSitesOmitted() == 0 {
		t.Errorf("sites: %d sent + %d omitted, want %d with some omitted", len(v.GetSites()), v.GetSitesOmitted(), len(j.GetSites()))
	}
	if len(j.GetRounds()) != maxRoundSummaries || len(j.GetFeatures()) != 500_000 {
		t.Fatal("the view changed the record it was made from")
	}

	var rounds []*federav1.RoundSummary
	pages := 0
	for token := ""; ; pages++ {
		resp, err := svc.ListRounds(ctx, &federav1.ListRoundsRequest{JobId: j.GetId(), PageToken: token, PageSize: maxRoundsPage})
		if err != nil {
			t.Fatal(err)
		}
		if n := proto.Size(resp); n > grpcLimit*3/4 {
			t.Fatalf("ListRounds page %d is %d bytes", pages, n)
		}
		if resp.GetTotal() != int64(len(j.GetRounds())) {
			t.Fatalf("ListRounds total %d, want %d", resp.GetTotal(), len(j.GetRounds()))
		}
		rounds = append(rounds, resp.GetRounds()...)
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
		if pages > len(j.GetRounds()) {
			t.Fatal("ListRounds does not end")
		}
	}
	if len(rounds) != len(j.GetRounds()) {
		t.Fatalf("ListRounds returned %d rounds in %d pages, want %d", len(rounds), pages+1, len(j.GetRounds()))
	}
	for i, r := range rounds {
		if r.GetRound() != j.GetRounds()[i].GetRound() {
			t.Fatalf("ListRounds item %d is round %d, want %d", i, r.GetRound(), j.GetRounds()[i].GetRound())
		}
	}
	if pages == 0 {
		t.Fatal("ListRounds sent 1,000 rounds of 1,000 participants in one page")
	}
	t.Logf("ListRounds: %d pages", pages+1)

	var sites []string
	for token := ""; ; {
		resp, err := svc.ListJobSites(ctx, &federav1.ListJobSitesRequest{JobId: j.GetId(), PageToken: token, PageSize: 300})
		if err != nil {
			t.Fatal(err)
		}
		if n := proto.Size(resp); n > grpcLimit*3/4 {
			t.Fatalf("ListJobSites page is %d bytes", n)
		}
		for _, s := range resp.GetSites() {
			sites = append(sites, s.GetSite())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
		if len(sites) > len(j.GetSites()) {
			t.Fatal("ListJobSites does not end")
		}
	}
	if len(sites) != len(j.GetSites()) {
		t.Fatalf("ListJobSites returned %d sites, want %d", len(sites), len(j.GetSites()))
	}
	for i, s := range sites {
		if s != j.GetSites()[i].GetSite() {
			t.Fatalf("ListJobSites item %d is %q, want %q", i, s, j.GetSites()[i].GetSite())
		}
	}

	var features []string
	for token := ""; ; {
		resp, err := svc.ListFeatures(ctx, &federav1.ListFeaturesRequest{JobId: j.GetId(), PageToken: token, PageSize: maxFeaturesPage})
		if err != nil {
			t.Fatal(err)
		}
		if n := proto.Size(resp); n > grpcLimit*3/4 {
			t.Fatalf("ListFeatures page is %d bytes", n)
		}
		features = append(features, resp.GetFeatures()...)
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(features) != len(j.GetFeatures()) {
		t.Fatalf("ListFeatures returned %d columns, want %d", len(features), len(j.GetFeatures()))
	}
	for i, f := range features {
		if f != j.GetFeatures()[i] {
			t.Fatalf("ListFeatures item %d is %q, want %q", i, f, j.GetFeatures()[i])
		}
	}

	for _, bad := range []struct {
		req  any
		call func() error
	}{
		{"page_size", func() error {
			_, err := svc.ListRounds(ctx, &federav1.ListRoundsRequest{JobId: j.GetId(), PageSize: maxRoundsPage + 1})
			return err
		}},
		{"page_token", func() error {
			_, err := svc.ListFeatures(ctx, &federav1.ListFeaturesRequest{JobId: j.GetId(), PageToken: "x"})
			return err
		}},
		{"page_token", func() error {
			_, err := svc.ListFeatures(ctx, &federav1.ListFeaturesRequest{JobId: j.GetId(), PageToken: "600000"})
			return err
		}},
	} {
		if err := bad.call(); err == nil {
			t.Errorf("a bad %s was accepted", bad.req)
		}
	}
}

// TestSmallJobViewIsTheRecord: a record within the budgets is sent as it
// is, with nothing omitted.
func TestSmallJobViewIsTheRecord(t *testing.T) {
	j := &federav1.Job{Id: "j", Rounds: []*federav1.RoundSummary{{Round: 1}}, Features: []string{"a"}, Sites: []*federav1.SiteSummary{{Site: "eu/a"}}}
	if v := jobView(j); v != j {
		t.Fatalf("a small record was rewritten: %v", v)
	}
}
