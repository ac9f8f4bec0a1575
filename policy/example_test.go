package policy_test

import (
	"context"
	"fmt"

	"github.com/federa-dev/federa/policy"
)

// Load the embedded default policy and ask it about a training job that
// reads a health column.
func Example() {
	ctx := context.Background()
	engine, err := policy.LoadFS(ctx, policy.Default(), ".")
	if err != nil {
		panic(err)
	}

	in := policy.SampleInput() // features age, ward and diagnosis (special category), DP on
	d, err := engine.Admission(ctx, in)
	if err != nil {
		panic(err)
	}
	fmt.Printf("allow=%v obligations=%+v\n", d.Allow, d.Obligations)

	in.Job.Privacy.DP = nil // the same job without differential privacy
	d, _ = engine.Admission(ctx, in)
	fmt.Printf("allow=%v reasons=%q\n", d.Allow, d.Reasons)

	// Every outgoing message is checked too.
	out := policy.SampleEgress()
	out.Egress.Records = 3
	e, _ := engine.Egress(ctx, out)
	fmt.Printf("egress allow=%v reasons=%q\n", e.Allow, e.Reasons)
	// Output:
	// allow=true obligations={MinRecords:10 RequireDP:true MaxEpsilon:8 MaxRounds:0 PrivacyBudget:{Epsilon:8 Delta:1e-05} DropColumns:[patient_name] Unknown:map[]}
	// allow=false reasons=["column \"diagnosis\" is special-category data and may only be used with differential privacy (epsilon <= 8)"]
	// egress allow=false reasons=["the model_update rests on 3 records; at least 10 are required"]
}
