// Package models holds federa's model code: the tensor and weight types
// that travel between sites and the coordinator, multinomial logistic
// regression (trained locally with gorgonia autodiff, evaluated with plain
// float math), standardization from federated moments, update aggregation
// (FedAvg, and the robust median, trimmed-mean and Krum strategies), and
// the safetensors model file format.
//
// The package does no network or disk I/O except the safetensors helpers,
// which work on io.Reader/io.Writer with thin path-based wrappers
// (SaveModel, LoadModel). It has no global state; all randomness is derived
// from seeds passed in by the caller.
package models
