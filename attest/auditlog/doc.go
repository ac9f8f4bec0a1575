// Package auditlog is federa's signed, tamper-evident audit log, built
// from the machinery of Certificate Transparency.
//
// Every event that matters for trust (a job submitted, a site's admission
// decision, a round's update and aggregate digests, bytes leaving a site,
// privacy budget spent, a model released) is appended as an Entry. Entries
// hold digests, counts and decisions, never data values. Each entry has one
// canonical byte encoding, and those bytes are the leaves of an RFC 6962
// Merkle tree (golang.org/x/mod/sumdb/tlog). The log signs its tree head as
// a C2SP tlog-checkpoint note (golang.org/x/mod/sumdb/note, Ed25519), so:
//
//   - anyone holding an export and a checkpoint can check every entry
//     (VerifyExport), and a site can get a short proof that its entry is in
//     the tree (InclusionProof);
//   - a site that remembers a checkpoint can demand proof that every later
//     tree extends it (ConsistencyProof, Witness.Observe), so the
//     coordinator cannot rewrite history or show different sites different
//     histories without being caught;
//   - witnesses co-sign checkpoints (CoSign, AddCoSignature), which is what
//     makes a wholesale rewrite by the key holder visible.
//
// # Storage
//
// A log directory holds:
//
//	entries.log             records: uint32 length | uint32 CRC-32C | canonical entry JSON
//	hashes.bin              tlog stored hashes, 32 bytes each, in StoredHashIndex order
//	checkpoints/<size>.txt  one signed (and co-signed) checkpoint per tree size, kept forever
//	LOCK                    flock(2) held by the one process writing the log
//
// Append writes and fsyncs the records, then the hashes, before it returns:
// an acknowledged entry is durable. An Append whose write or fsync fails (a
// full disk) cuts the files back to where they ended and fsyncs that, so
// the same Log appends again once there is space. Open repairs what a crash can leave (a
// torn last record, stale hashes after the latest checkpoint) and refuses,
// with ErrDamaged, anything a crash cannot explain. Verify trusts nothing
// on disk but recomputes the tree from the entries.
package auditlog
