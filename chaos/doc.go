// Package chaos runs the real federa binary as separate processes — a
// coordinator and sites, each in its own Linux network namespace joined to
// a bridge by a veth link — and breaks things the way production does:
// kill -9 at a random point, a cut link, a slow link (toxiproxy, embedded),
// a full disk. Every trial records a history (the job as clients saw it,
// the audit log, the sites' egress journals and privacy ledgers) and a
// checker asserts the invariants federa promises. The package holds only
// tests; docs/reliability.md has the scenarios, the trials run and the
// command that reruns each.
package chaos
