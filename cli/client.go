package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"

	"github.com/federa-dev/federa/attest"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// clientFlags are the flags every command that talks to a coordinator takes.
type clientFlags struct {
	addr     string
	identity string
	workload string
	coordID  string
	output   string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	f.registerConn(cmd)
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "output format: text or json")
}

// registerConn registers the connection flags only, for commands whose -o
// means something else.
func (f *clientFlags) registerConn(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.addr, "coordinator", envOr("FEDERA_COORDINATOR", "127.0.0.1:7443"), "coordinator address host:port (env FEDERA_COORDINATOR)")
	cmd.Flags().StringVar(&f.identity, "identity", envOr("FEDERA_IDENTITY", ""), "identity directory with svid.pem, key.pem, bundle.pem (env FEDERA_IDENTITY)")
	cmd.Flags().StringVar(&f.workload, "workload-api", envOr("FEDERA_WORKLOAD_API", ""), "SPIFFE Workload API address instead of --identity, e.g. unix:///run/spire/agent.sock (env FEDERA_WORKLOAD_API)")
	cmd.Flags().StringVar(&f.coordID, "coordinator-id", "", "the coordinator's SPIFFE ID (default: spiffe://<your trust domain>/coordinator)")
}

// dial opens an mTLS connection that accepts only the coordinator's ID.
func (f *clientFlags) dial() (*grpc.ClientConn, error) {
	if err := checkOutput(f.output); err != nil {
		return nil, err
	}
	var id attest.Source
	var err error
	switch {
	case f.workload != "":
		if id, err = attest.NewWorkloadAPISource(context.Background(), f.workload, 0); err != nil {
			return nil, fmt.Errorf("flag --workload-api: %w", err)
		}
	case f.identity == "":
		return nil, fmt.Errorf("flag --identity: required (or set FEDERA_IDENTITY): a directory with svid.pem, key.pem and bundle.pem; or --workload-api")
	default:
		if id, err = attest.LoadIdentity(f.identity); err != nil {
			return nil, fmt.Errorf("flag --identity: %w", err)
		}
	}
	coord := attest.CoordinatorID(id.ID().TrustDomain())
	if f.coordID != "" {
		if coord, err = spiffeid.FromString(f.coordID); err != nil {
			return nil, fmt.Errorf("flag --coordinator-id: %q is not a SPIFFE ID: %v", f.coordID, err)
		}
	}
	cc, err := grpc.NewClient(f.addr, append(tlsHints(id, coord, f.addr), grpc.WithTransportCredentials(attest.ClientCredentials(id, attest.AllowIDs(coord), nil)))...)
	if err != nil {
		return nil, fmt.Errorf("connect to coordinator %s: %w", f.addr, err)
	}
	return cc, nil
}

func (f *clientFlags) jobs() (federav1.JobServiceClient, func(), error) {
	cc, err := f.dial()
	if err != nil {
		return nil, nil, err
	}
	return federav1.NewJobServiceClient(cc), func() { cc.Close() }, nil
}
