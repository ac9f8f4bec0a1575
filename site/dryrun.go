package site

import (
	"context"
	"fmt"

	"github.com/federa-dev/federa/policy"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// PolicyInput builds the input the agent configured by cfg would give its
// admission policy for task, and loads that policy — without starting the
// agent or touching the data beyond its header. `federa policy eval` uses
// it so what an author tries is exactly what the agent decides.
func PolicyInput(ctx context.Context, cfg Config, t *federav1.Task) (policy.Input, *policy.Engine, error) {
	a := &Agent{cfg: cfg}
	var eng *policy.Engine
	var err error
	switch {
	case cfg.PolicyBundle != "":
		eng, err = policy.LoadBundle(ctx, cfg.PolicyBundle, cfg.PolicyBundleKey)
	case cfg.PolicyDir == "":
		eng, err = policy.LoadFS(ctx, policy.Default(), ".")
	default:
		eng, err = policy.Load(ctx, cfg.PolicyDir)
	}
	if err != nil {
		return policy.Input{}, nil, err
	}
	ds := a.findDataset(t.GetSpec().GetDataset())
	if ds == nil {
		return policy.Input{}, nil, fmt.Errorf("the site serves no dataset %q (it serves: %v)", t.GetSpec().GetDataset(), datasetNames(cfg))
	}
	features, err := touched(ds, t.GetSpec(), nil)
	if err != nil {
		return policy.Input{}, nil, err
	}
	label, err := profileLabel(ds, t.GetSpec().GetLabel())
	if err != nil {
		return policy.Input{}, nil, err
	}
	in := a.policyInput(t, ds, features)
	in.Site.Dataset.Label = label
	return in, eng, nil
}

func datasetNames(cfg Config) []string {
	var out []string
	for _, d := range cfg.Datasets {
		out = append(out, d.Name)
	}
	return out
}
