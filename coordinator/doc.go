// Package coordinator is federa's central daemon. It takes jobs from data
// scientists (JobService), keeps one stream open to every connected site
// agent (SiteService), runs each job as a sequence of rounds, aggregates
// model updates, checkpoints after every round and resumes from the last
// checkpoint after a crash.
//
// A round's bookkeeping — who was asked, who answered, whether the quorum
// is met or the deadline passed — is the pure state machine in collect.go;
// this package's other files do the network and the disk around it.
//
// Embedding:
//
//	cfg := coordinator.Config{Listen: "127.0.0.1:0", StateDir: dir, Identity: id, Sites: siteIDs}
//	c, err := coordinator.New(cfg)
//	if err != nil { ... }
//	defer c.Close()
//	go c.Run(ctx) // serves until ctx is cancelled
package coordinator
