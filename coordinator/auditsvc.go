package coordinator

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/federa-dev/federa/attest/auditlog"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

type auditService struct {
	federav1.UnimplementedAuditServiceServer
	c *Coordinator
}

// head is the latest checkpoint and its size.
func (s *auditService) head() ([]byte, auditlog.Checkpoint, error) {
	cp, err := s.c.auditLog.LatestCheckpoint()
	if err != nil {
		return nil, auditlog.Checkpoint{}, status.Errorf(codes.FailedPrecondition, "no signed checkpoint yet: %v", err)
	}
	h, err := auditlog.VerifyCheckpoint(cp, s.c.auditKey)
	if err != nil {
		return nil, auditlog.Checkpoint{}, status.Errorf(codes.Internal, "own checkpoint: %v", err)
	}
	return cp, h, nil
}

func (s *auditService) Checkpoint(ctx context.Context, _ *federav1.AuditCheckpointRequest) (*federav1.AuditCheckpointResponse, error) {
	cp, _, err := s.head()
	if err != nil {
		return nil, err
	}
	return &federav1.AuditCheckpointResponse{Checkpoint: cp, LogKey: s.c.auditKey}, nil
}

func (s *auditService) Export(_ *federav1.AuditExportRequest, stream federav1.AuditService_ExportServer) error {
	_, h, err := s.head()
	if err != nil {
		return err
	}
	for i := int64(0); i < h.Size; i++ {
		leaf, err := s.c.auditLog.Entry(i)
		if err != nil {
			return status.Errorf(codes.Internal, "entry %d: %v", i, err)
		}
		if err := stream.Send(&federav1.AuditLeaf{Index: i, Leaf: leaf}); err != nil {
			return err
		}
	}
	return nil
}

func (s *auditService) Proof(ctx context.Context, req *federav1.AuditProofRequest) (*federav1.AuditProofResponse, error) {
	cp, h, err := s.head()
	if err != nil {
		return nil, err
	}
	if req.GetIndex() < 0 || req.GetIndex() >= h.Size {
		return nil, status.Errorf(codes.InvalidArgument, "entry %d is not covered by the latest checkpoint (size %d)", req.GetIndex(), h.Size)
	}
	leaf, err := s.c.auditLog.Entry(req.GetIndex())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "entry: %v", err)
	}
	proof, err := s.c.auditLog.InclusionProof(req.GetIndex(), h.Size)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "proof: %v", err)
	}
	out := &federav1.AuditProofResponse{Leaf: leaf, Checkpoint: cp}
	for _, p := range proof {
		out.InclusionProof = append(out.InclusionProof, append([]byte(nil), p[:]...))
	}
	return out, nil
}
