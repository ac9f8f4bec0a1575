package models_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"

	"github.com/federa-dev/federa/models"
)

// siteData makes a site's private rows: two features, labelled "high"
// (class 1) when their sum exceeds 10.
func siteData(seed uint64, n int) (*mat.Dense, []int) {
	rng := rand.New(rand.NewPCG(seed, 0))
	X := mat.NewDense(n, 2, nil)
	y := make([]int, n)
	for i := range n {
		a, b := 10*rng.Float64(), 10*rng.Float64()
		X.Set(i, 0, a)
		X.Set(i, 1, b)
		if a+b > 10 {
			y[i] = 1
		}
	}
	return X, y
}

// Example runs a small federated job end to end: sites share only moments
// and trained weights, the coordinator standardizes and averages, and the
// result is exported as a safetensors model that predicts on raw rows.
func Example() {
	ctx := context.Background()
	type site struct {
		X *mat.Dense
		y []int
	}
	var sites []site
	for seed := range uint64(3) {
		X, y := siteData(seed, 200)
		sites = append(sites, site{X, y})
	}

	// Standardization from federated moments.
	var moments models.Moments
	for _, s := range sites {
		if err := moments.Merge(models.ComputeMoments(s.X)); err != nil {
			log.Fatal(err)
		}
	}
	scaler := moments.Scaler()

	// Five rounds of FedAvg.
	agg, err := models.NewAggregator("fedavg", models.AggregatorParams{})
	if err != nil {
		log.Fatal(err)
	}
	global := models.NewLogReg(2, 2)
	for round := range 5 {
		var updates []models.Update
		for i, s := range sites {
			res, err := models.TrainLogReg(ctx, global, scaler.Apply(s.X), s.y, models.TrainConfig{
				Epochs: 2, BatchSize: 32, LearningRate: 0.5, Seed: int64(10*round + i),
			})
			if err != nil {
				log.Fatal(err)
			}
			updates = append(updates, models.Update{Weights: res.Weights, Examples: res.Examples})
		}
		if global, err = agg.Aggregate(global, updates); err != nil {
			log.Fatal(err)
		}
	}

	Xtest, ytest := siteData(99, 500)
	correct, _, err := models.EvaluateLogReg(global, scaler.Apply(Xtest), ytest)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("held-out accuracy above 95%:", float64(correct)/500 > 0.95)

	// Export, reload and predict on raw (unstandardized) rows.
	var file bytes.Buffer
	err = models.WriteSafetensors(&file, &models.Model{
		Architecture: models.ArchLogReg,
		Features:     []string{"a", "b"},
		Classes:      []string{"low", "high"},
		Label:        "level",
		Scaler:       scaler,
		Weights:      global,
		Metadata:     map[string]string{"federa.job_id": "example"},
	})
	if err != nil {
		log.Fatal(err)
	}
	model, err := models.ReadSafetensors(&file)
	if err != nil {
		log.Fatal(err)
	}
	pred, err := model.Predict(mat.NewDense(2, 2, []float64{1, 2, 9, 8}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(model.Classes[pred.Classes[0]], model.Classes[pred.Classes[1]], model.Metadata["federa.job_id"])
	// Output:
	// held-out accuracy above 95%: true
	// low high example
}

func ExampleFedAvg() {
	vec := func(v ...float32) models.Weights {
		return models.Weights{"w": {Name: "w", Shape: []int{len(v)}, Data: v}}
	}
	// A site with 3 examples counts three times as much as one with 1.
	avg, err := models.FedAvg{}.Aggregate(vec(0, 0), []models.Update{
		{Weights: vec(4, 8), Examples: 1},
		{Weights: vec(0, 4), Examples: 3},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(avg["w"].Data)
	// Output: [1 5]
}
