// Package transfer splits model weights into wire chunks and reassembles
// them, checking every chunk so a malformed or hostile stream is an error,
// never a panic or an unbounded allocation. Sum aggregates while the
// updates stream in: each chunk is checked, hashed and added to one
// example-weighted sum as it arrives, in the senders' order, so no update
// is held whole. It sits above both the wire
// package (proto/federav1) and the model package, so the wire format does not
// depend on the ML code.
package transfer
