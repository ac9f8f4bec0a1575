package dataset_test

import (
	"fmt"

	"github.com/federa-dev/federa/dataset"
)

// A count and mean of one column, streamed: the rows are never all in
// memory, whatever the format.
func ExampleSource_Scan() {
	src := dataset.Source{Path: "../testdata/breast-cancer/sg-singapore.csv"}
	n, sum, malignant := 0, 0.0, 0
	err := src.Scan([]string{"mean_radius", "label"}, func(row []dataset.Value) error {
		if !row[0].Num {
			return fmt.Errorf("mean_radius %q is not a number", row[0].S)
		}
		n++
		sum += row[0].F
		if row[1].S == "malignant" {
			malignant++
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d rows, mean radius %.2f, %d malignant\n", n, sum/float64(n), malignant)
	// Output:
	// 108 rows, mean radius 14.71, 51 malignant
}
