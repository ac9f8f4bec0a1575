// Package policy is how a federa site decides, with its own OPA (Rego)
// policy, what a task may touch and what may leave the site, to whom.
//
// For every task a site builds an [Input] (the job, the site's own
// description of the dataset with a classification per column, and the
// destination) and asks its [Engine] for an [Decision] on admission
// (data.federa.admission: allow, reasons, obligations, require_approval).
// For every outgoing message it sets [Input.Egress] and asks for an
// [EgressDecision] (data.federa.egress). A site enforces every obligation
// of an allowed decision, or refuses the task.
//
// An Engine is compiled once and evaluated many times ("prepare once,
// evaluate many"); [Load] compiles a folder of .rego and data files in
// strict mode and evaluates it on sample input before it is used, so a
// policy that cannot be evaluated never goes live. Every failure denies:
// an undefined decision is a deny with a reason, an evaluation error is a
// deny and an error, and [DenyAll] stands in when there is no policy.
// A [Watcher] keeps the engine of a folder current; a change that does not
// compile leaves the previous engine in force.
//
// The default policy is embedded ([Default]); [Packs] holds example
// jurisdiction data files, which are examples, not legal advice. [Test] and
// [Check] are the tooling behind `federa policy test` and `federa policy
// check`, and docs/policy.md describes the input, the decisions, the default
// rules and how to write a policy.
package policy
