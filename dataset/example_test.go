package dataset_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/federa-dev/federa/dataset"
)

func ExampleLoadCSV() {
	tab, err := dataset.LoadCSV("../testdata/breast-cancer/sg-singapore.csv", dataset.Options{Label: "label"})
	if err != nil {
		fmt.Println(err)
		return
	}
	classes := tab.Classes()
	y, err := tab.ClassIndex(classes)
	if err != nil {
		fmt.Println(err)
		return
	}
	train, eval := tab.Split(0.2, 1)
	fmt.Println(tab.Rows(), "rows,", len(tab.Features), "features, first", tab.Features[0])
	fmt.Println("classes:", classes, "first row is class", y[0])
	fmt.Println("train", train.Rows(), "eval", eval.Rows())
	// Output:
	// 108 rows, 30 features, first mean_radius
	// classes: [benign malignant] first row is class 1
	// train 86 eval 22
}

func ExampleError() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "breast.csv")
	data := "mean_radius,mean_texture,label\n17.99,10.38,malignant\nabc,17.77,benign\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		fmt.Println(err)
		return
	}

	_, err = dataset.LoadCSV(path, dataset.Options{Label: "label"})
	var de *dataset.Error
	if errors.As(err, &de) {
		fmt.Printf("%s:%d: column %q: %s\n", filepath.Base(de.Path), de.Line, de.Column, de.Msg)
	}
	// Output:
	// breast.csv:3: column "mean_radius": "abc" is not a number
}
