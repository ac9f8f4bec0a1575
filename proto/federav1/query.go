package federav1

// MaxQueryWireBytes bounds a query stage's request (Task.query_request)
// and a site's answer (TaskResult.query_partials). It keeps every message
// of a query below gRPC's 4 MiB default receive limit with room for the
// envelope, on both ends; the coordinator refuses to send a larger stage
// and a site refuses to send larger partials, each saying so.
const MaxQueryWireBytes = 3 << 20

// MaxQuerySpecBytes bounds SubmitQueryRequest.spec (analytics.MaxQueryBytes).
const MaxQuerySpecBytes = 1 << 20
