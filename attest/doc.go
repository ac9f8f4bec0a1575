// Package attest holds federa's trust machinery: who a process is (SPIFFE
// X.509-SVIDs from a development CA on disk, later the SPIFFE Workload
// API), and how two processes decide to trust each other (go-spiffe
// tlsconfig mTLS with an authorizer that names full SPIFFE IDs).
//
// The development CA exists so that a laptop, a demo and the test suite get
// real mutual TLS with real SPIFFE identities and no SPIRE deployment:
//
//	federa dev-ca init  --dir D --trust-domain example.org
//	federa dev-ca issue --dir D --id spiffe://example.org/site/eu/paris --out DIR
//
// DIR then holds svid.pem (the certificate chain), key.pem (PKCS#8 private
// key) and bundle.pem (the trust bundle), which LoadIdentity reads.
package attest
