// Package deploy holds federa's deployment files: a container build file,
// Kubernetes manifests and systemd units. It has no Go code of its own;
// its tests decode the manifests with the Kubernetes API types and check
// the properties an operator relies on.
package deploy
