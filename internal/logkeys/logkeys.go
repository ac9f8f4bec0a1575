// Package logkeys holds the structured-log field keys every federa
// component uses, in one place so logs stay greppable across components.
package logkeys

const (
	Component = "component"
	Site      = "site"
	SpiffeID  = "spiffe_id"
	Job       = "job"
	Task      = "task"
	Round     = "round"
	Kind      = "kind"
	Addr      = "addr"
	Err       = "err"
	Reason    = "reason"
	Bytes     = "bytes"
	Status    = "status"
)
