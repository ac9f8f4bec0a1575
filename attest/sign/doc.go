// Package sign signs federa's released models so that anyone can check
// them offline with the stock cosign CLI, and verifies them again in Go for
// `federa model verify`.
//
// Two artifacts sit beside a model file, both sigstore bundles v0.3
// (media type application/vnd.dev.sigstore.bundle.v0.3+json):
//
//   - SignBlob: a message signature over the model bytes, with the
//     model's SHA-256 digest;
//   - SignProvenance: a DSSE envelope around an in-toto Statement v1 whose
//     subject is the model and whose predicate (Provenance) records the job
//     spec, sites, rounds, policy revisions, privacy budget spent and the
//     audit-log checkpoint that produced it.
//
// Both are signed with a long-lived ECDSA P-256 key (LoadOrCreate), not with
// Fulcio certificates, and carry no transparency-log entry: a federation
// has no reason to publish its releases to the public Rekor, and an
// air-gapped verifier must still succeed. The public key file signing.pub is
// therefore the whole root of trust, and cosign is told so:
//
//	cosign trusted-root create --out empty_root.json
//	cosign verify-blob --key signing.pub --insecure-ignore-tlog=true \
//	  --trusted-root empty_root.json --new-bundle-format \
//	  --bundle model.safetensors.sigstore.json model.safetensors
//	cosign verify-blob-attestation --key signing.pub --insecure-ignore-tlog=true \
//	  --trusted-root empty_root.json --new-bundle-format \
//	  --type https://federa.dev/provenance/v1 \
//	  --bundle model.safetensors.provenance.sigstore.json model.safetensors
//
// The empty trusted root is needed only because cosign insists on one with
// --new-bundle-format; with --key it trusts nothing in it.
package sign
