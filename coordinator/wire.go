package coordinator

import (
	"google.golang.org/grpc"

	federav1 "github.com/federa-dev/federa/proto/federav1"
	"github.com/federa-dev/federa/transfer"
)

// serverCodec is transfer.Codec: a SiteMessage carrying a tensor chunk
// gets its payload in a reused buffer, released once the chunk is handled
// (releaseChunkPayload), instead of a fresh megabyte. A round's updates
// pass through the coordinator a megabyte at a time, and in a profile of
// the round the fresh memory's page faults, not the summing or hashing,
// were most of the coordinator's CPU.
func serverCodec() grpc.ServerOption { return grpc.ForceServerCodecV2(transfer.NewCodec()) }

// releaseChunkPayload returns a handled chunk's payload for reuse: what
// handles a chunk (transfer.Assembler, transfer.SumStream,
// federav1.RingAssembler) copies or consumes its payload and keeps none
// of it, so once handleSiteMessage returned the buffer is free.
func releaseChunkPayload(m *federav1.SiteMessage) { transfer.ReleasePayload(m.GetChunk()) }
