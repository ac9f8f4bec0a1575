package cli

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// remoteAudit reads the audit log of a running coordinator through its
// AuditService (the caller needs the auditor role).
type remoteAudit struct {
	c     federav1.AuditServiceClient
	close func()
}

func (f *clientFlags) audit() (*remoteAudit, error) {
	if f.output == "" {
		f.output = "text"
	}
	cc, err := f.dial()
	if err != nil {
		return nil, err
	}
	return &remoteAudit{c: federav1.NewAuditServiceClient(cc), close: func() { cc.Close() }}, nil
}

func (r *remoteAudit) checkpoint(cmd *cobra.Command) ([]byte, string, error) {
	resp, err := r.c.Checkpoint(cmd.Context(), &federav1.AuditCheckpointRequest{})
	if err != nil {
		return nil, "", rpcErr("audit checkpoint", err)
	}
	return resp.GetCheckpoint(), resp.GetLogKey(), nil
}

// export writes the log as `federa audit export` does, from the server's
// entries (up to its latest checkpoint).
func (r *remoteAudit) export(cmd *cobra.Command, w io.Writer) error {
	stream, err := r.c.Export(cmd.Context(), &federav1.AuditExportRequest{})
	if err != nil {
		return rpcErr("audit export", err)
	}
	for {
		leaf, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return rpcErr("audit export", err)
		}
		if _, err := fmt.Fprintf(w, "{\"index\":%d,\"leaf\":%q,\"entry\":%s}\n", leaf.GetIndex(),
			base64.StdEncoding.EncodeToString(leaf.GetLeaf()), leaf.GetLeaf()); err != nil {
			return err
		}
	}
}

// exportBuffer is the whole export in memory, for verify and show.
func (r *remoteAudit) exportBuffer(cmd *cobra.Command) (*bytes.Buffer, error) {
	var buf bytes.Buffer
	return &buf, r.export(cmd, &buf)
}
