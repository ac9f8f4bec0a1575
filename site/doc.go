// Package site is the agent that runs inside a regulated data centre, next
// to the data. It only ever dials out: it opens one mTLS stream to the
// coordinator (whose SPIFFE ID it checks), receives tasks, computes on local
// files, and sends back only aggregates — column moments, model weights,
// evaluation counts. No task handler has access to a way of sending a row.
//
// Embedding:
//
//	a, err := site.New(site.Config{Identity: id, CoordinatorAddr: addr,
//		CoordinatorID: coordID, Datasets: []site.Dataset{{Name: "breast-cancer", Path: "eu.csv"}}})
//	if err != nil { ... }
//	defer a.Close()
//	err = a.Run(ctx) // reconnects with backoff until ctx is cancelled
package site
