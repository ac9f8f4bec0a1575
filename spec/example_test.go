package spec_test

import (
	"fmt"

	"github.com/federa-dev/federa/spec"
)

func ExampleParse() {
	j, err := spec.Parse("churn.yaml", []byte(`
name: churn
dataset: customers
label: churned
features: [age, tenure]
rounds: 20
sites: [eu/paris, us/boston]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(j.Name, j.Rounds, j.Sites)
	// Fields left out get their defaults.
	fmt.Println(j.Model.Type, j.BatchSize, *j.EvalFraction)

	_, err = spec.Parse("bad.yaml", []byte("name: churn\ndataset: customers\nrounds: 0\nround: 5\n"))
	fmt.Println(err)
	// Output:
	// churn 20 [eu/paris us/boston]
	// logreg 32 0.2
	// job spec bad.yaml: line 4: field round not found (see docs/jobs.md for valid fields)
}
