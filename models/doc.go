// Package models holds federa's model code: the tensor and weight types
// that travel between sites and the coordinator, the architectures behind
// one Arch interface (logreg, mlp, linreg; defined as a gorgonia graph in
// graph_net.go and trained by a gonum kernel tested against it), local
// optimizers, standardization from federated moments, update aggregation
// (FedAvg, FedProx, the server optimizers and the robust median,
// trimmed-mean and Krum strategies), and the safetensors model file format.
//
// The package does no network or disk I/O except the safetensors helpers,
// which work on io.Reader/io.Writer with thin path-based wrappers
// (SaveModel, LoadModel). It has no global state; all randomness is derived
// from seeds passed in by the caller.
package models
