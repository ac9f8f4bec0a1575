package chaos

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/federa-dev/federa/attest"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// The job reads of a history go over one mTLS gRPC connection that the
// test process keeps to the coordinator, as alice, instead of a CLI
// process per read: a read through `federa job get` costs about 0.1 s of
// CPU (the process starting, its TLS handshake), and the scenarios read
// every few tens of milliseconds while they wait, so on a 2-core machine
// the reads alone took most of the package's CPU. The connection redials
// within 200 ms of a coordinator coming back. The CLI stays the client for
// everything else (submit, audit export), and `job get -o json` keeps
// being read for what it alone shows (budgetCovers).

var jobClients sync.Map // *federation -> federav1.JobServiceClient

func (f *federation) jobClient() federav1.JobServiceClient {
	if c, ok := jobClients.Load(f); ok {
		return c.(federav1.JobServiceClient)
	}
	id, err := attest.LoadIdentity(f.alice)
	if err != nil {
		f.t.Fatalf("alice's identity: %v", err)
	}
	coord := attest.CoordinatorID(id.ID().TrustDomain())
	cc, err := grpc.NewClient(f.addr,
		grpc.WithTransportCredentials(attest.ClientCredentials(id, attest.AllowIDs(coord), nil)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, MaxDelay: 200 * time.Millisecond}, MinConnectTimeout: 2 * time.Second}))
	if err != nil {
		f.t.Fatalf("connect to the coordinator: %v", err)
	}
	f.t.Cleanup(func() { cc.Close(); jobClients.Delete(f) })
	c, _ := jobClients.LoadOrStore(f, federav1.NewJobServiceClient(cc))
	return c.(federav1.JobServiceClient)
}

// readJob reads job id as `federa job get -o json` shows it; ok is false
// when the coordinator did not answer.
func (f *federation) readJob(id string) (jobJSON, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	j, err := f.jobClient().GetJob(ctx, &federav1.GetJobRequest{Id: id})
	if err != nil {
		return jobJSON{}, false
	}
	out := jobJSON{
		ID: j.GetId(), Status: strings.TrimPrefix(j.GetStatus().String(), "JOB_STATUS_"),
		Message: j.GetMessage(), RoundsCompleted: int(j.GetRoundsCompleted()),
	}
	for _, r := range j.GetRounds() {
		out.Rounds = append(out.Rounds, roundJSON{
			Round: int(r.GetRound()), Participants: r.GetParticipants(), Missing: r.GetMissing(),
			DurationMs: json.Number(strconv.FormatInt(r.GetDurationMs(), 10)), TrainPhaseMs: r.GetTrainPhaseMs(),
		})
	}
	return out, true
}
