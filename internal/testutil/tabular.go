package testutil

import (
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/parquet-go/parquet-go"
)

// Tabular test data in the other formats a site reads: a CSV file written
// as Parquet, or copied into a PostgreSQL table, value for value.

// orderedGroup is a parquet.Group whose fields keep the given order (a
// plain Group sorts them by name), so a file's columns can follow a CSV's.
type orderedGroup struct {
	parquet.Group
	order []string
}

func (g orderedGroup) Fields() []parquet.Field {
	f := g.Group.Fields()
	slices.SortStableFunc(f, func(a, b parquet.Field) int {
		return slices.Index(g.order, a.Name()) - slices.Index(g.order, b.Name())
	})
	return f
}

// WriteParquet writes a flat file: rows[i][j] is column j of row i, a
// zero parquet.Value (parquet.NullValue) being a null.
func WriteParquet(t testing.TB, path string, names []string, nodes []parquet.Node, rows [][]parquet.Value, opts ...parquet.WriterOption) {
	t.Helper()
	g := orderedGroup{Group: parquet.Group{}, order: names}
	for j, n := range names {
		g.Group[n] = nodes[j]
	}
	schema := parquet.NewSchema("row", g)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := parquet.NewWriter(f, append([]parquet.WriterOption{schema}, opts...)...)
	batch := make([]parquet.Row, 0, 256)
	flush := func() {
		if _, err := w.WriteRows(batch); err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	for _, r := range rows {
		row := make(parquet.Row, len(r))
		for j, v := range r {
			def := 0
			if nodes[j].Optional() && !v.IsNull() {
				def = 1
			}
			row[j] = v.Level(0, def, j)
		}
		batch = append(batch, row)
		if len(batch) == cap(batch) {
			flush()
		}
	}
	flush()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// ParquetVariant is how a CSV file is turned into Parquet: the plain default,
// or the shapes other writers produce (pyarrow: optional, dictionary,
// snappy; many row groups and small pages that rows straddle).
type ParquetVariant struct {
	Name      string
	Optional  bool
	Dict      bool
	Ints      bool // integral columns as INT64 rather than DOUBLE
	RowGroup  int64
	PageBytes int
	Snappy    bool
}

// CSVToParquet writes the CSV file at csvPath as Parquet: columns whose
// every cell is a number become DOUBLE (or INT64), the others STRING.
func CSVToParquet(t testing.TB, csvPath, out string, v ParquetVariant) {
	t.Helper()
	recs := ReadCSV(t, csvPath)
	header, body := recs[0], recs[1:]
	kinds := make([]byte, len(header)) // 'd'ouble, 'i'nt, 's'tring
	for j := range header {
		kinds[j] = 'i'
		for _, r := range body {
			x, err := strconv.ParseFloat(r[j], 64)
			switch {
			case err != nil:
				kinds[j] = 's'
			case x != math.Trunc(x) || !v.Ints:
				if kinds[j] == 'i' {
					kinds[j] = 'd'
				}
			}
		}
	}
	nodes := make([]parquet.Node, len(header))
	for j, k := range kinds {
		var n parquet.Node
		switch k {
		case 'd':
			n = parquet.Leaf(parquet.DoubleType)
		case 'i':
			n = parquet.Int(64)
		default:
			n = parquet.String()
		}
		if v.Dict {
			n = parquet.Encoded(n, &parquet.RLEDictionary)
		}
		if v.Optional {
			n = parquet.Optional(n)
		}
		nodes[j] = n
	}
	rows := make([][]parquet.Value, len(body))
	for i, r := range body {
		rows[i] = make([]parquet.Value, len(r))
		for j, c := range r {
			switch kinds[j] {
			case 'd':
				x, _ := strconv.ParseFloat(c, 64)
				rows[i][j] = parquet.DoubleValue(x)
			case 'i':
				x, _ := strconv.ParseFloat(c, 64)
				rows[i][j] = parquet.Int64Value(int64(x))
			default:
				rows[i][j] = parquet.ByteArrayValue([]byte(c))
			}
		}
	}
	var opts []parquet.WriterOption
	if v.RowGroup > 0 {
		opts = append(opts, parquet.MaxRowsPerRowGroup(v.RowGroup))
	}
	if v.PageBytes > 0 {
		opts = append(opts, parquet.PageBufferSize(v.PageBytes))
	}
	if v.Snappy {
		opts = append(opts, parquet.Compression(&parquet.Snappy))
	}
	WriteParquet(t, out, header, nodes, rows, opts...)
}

// ReadCSV reads a whole CSV file's records, header first.
func ReadCSV(t testing.TB, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// LoadCSVTable creates table name from a CSV file, every column as sqlType
// except the label (text), and copies the rows in, in file order.
func LoadCSVTable(t testing.TB, conn *pgx.Conn, name, csvPath, sqlType string) {
	t.Helper()
	recs := ReadCSV(t, csvPath)
	header := recs[0]
	cols := make([]string, len(header))
	for j, c := range header {
		typ := sqlType
		if c == "label" {
			typ = "text"
		}
		cols[j] = pgx.Identifier{c}.Sanitize() + " " + typ
	}
	ctx := context.Background()
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", pgx.Identifier{name}.Sanitize(), strings.Join(cols, ", "))); err != nil {
		t.Fatal(err)
	}
	rows := make([][]any, len(recs)-1)
	for i, r := range recs[1:] {
		rows[i] = make([]any, len(r))
		for j, c := range r {
			rows[i][j] = c // as text: the server parses it as the column's type
		}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{name}, header, pgx.CopyFromRows(rows)); err != nil {
		t.Fatalf("copy %s into %s: %v", csvPath, name, err)
	}
}
