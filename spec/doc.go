// Package spec is the job specification a data scientist writes: its YAML
// form, its validation, and its wire form. The CLI validates before it
// sends and the coordinator validates again on receipt, with the same code,
// so a user sees the same error whichever side catches it.
//
// Every field is documented in docs/jobs.md.
package spec
