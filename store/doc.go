// Package store keeps the coordinator's durable state: jobs, their round
// checkpoints and exported models. Every write is a single transaction that
// is fsynced before it returns, so whatever the coordinator acknowledged
// survives kill -9.
//
// Store is the extension point; Bolt (bbolt, pure Go, one file) is the
// embedded default.
package store
