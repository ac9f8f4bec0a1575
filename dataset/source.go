package dataset

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
)

// Source names a site's data: the format and the files (or the database
// table) holding it. It is the one place that knows which formats exist;
// callers load, read the header, count values and scan through it without
// caring which format it is.
//
// Source prints and logs without its DSN (String, GoString, LogValue), so a
// Source in a log line or an error message cannot leak a password.
type Source struct {
	// Format is "csv" (also when empty), "idx", "parquet" or "postgres".
	Format string
	// Path is the CSV file, the IDX images file or the Parquet file.
	Path string
	// Labels is the IDX labels file (format idx only).
	Labels string
	// Classes names the IDX label values 0, 1, …, in order (format idx
	// only); empty means the values are read as decimal strings "0", "1", ….
	Classes []string
	// DSN is the PostgreSQL connection string (format postgres only), a
	// postgres:// URL or libpq key=value pairs. It holds a password, so the
	// caller reads it from an environment variable or a file, never from
	// site.yaml itself, and nothing here prints or logs it.
	DSN string
	// Table is the PostgreSQL table or view to read (format postgres
	// only): "name" or "schema.name", each part quoted as an identifier.
	Table string
}

// String describes the source without its DSN.
func (s Source) String() string {
	f := s.Format
	if f == "" {
		f = "csv"
	}
	if f == "postgres" {
		return "postgres table " + s.Table
	}
	return f + " " + s.Path
}

// GoString is String, so %#v cannot print the DSN either.
func (s Source) GoString() string { return "dataset.Source(" + s.String() + ")" }

// LogValue logs the source without its DSN.
func (s Source) LogValue() slog.Value { return slog.StringValue(s.String()) }

// format is what each data format provides to a Source.
type format interface {
	load(s Source, opts Options) (*Table, error)
	header(s Source) ([]string, error)
	valueCounts(s Source, column string, limit int) (map[string]int, bool, error)
	scan(s Source, columns []string, fn func(row []Value) error) error
}

// formats are the formats a Source may name. Adding a format is adding
// an entry here and a file implementing format.
var formats = map[string]format{
	"csv":      csvFormat{},
	"idx":      idxFormat{},
	"parquet":  parquetFormat{},
	"postgres": postgresFormat{},
}

// Formats returns the format names a Source accepts, sorted.
func Formats() []string { return slices.Sorted(maps.Keys(formats)) }

func (s Source) format() (format, error) {
	name := s.Format
	if name == "" {
		name = "csv"
	}
	f, ok := formats[name]
	if !ok {
		return nil, &Error{Path: s.Path, Msg: fmt.Sprintf("format %q is not supported; valid: %s", s.Format, strings.Join(Formats(), ", "))}
	}
	return f, nil
}

// Load reads the source into a Table; opts as for LoadCSV.
func (s Source) Load(opts Options) (*Table, error) {
	f, err := s.format()
	if err != nil {
		return nil, err
	}
	return f.load(s, opts)
}

// Header returns the source's column names without reading its rows.
func (s Source) Header() ([]string, error) {
	f, err := s.format()
	if err != nil {
		return nil, err
	}
	return f.header(s)
}

// ValueCounts counts the rows holding each value of one column, as
// ValueCounts does for a CSV file.
func (s Source) ValueCounts(column string, limit int) (map[string]int, bool, error) {
	f, err := s.format()
	if err != nil {
		return nil, false, err
	}
	return f.valueCounts(s, column, limit)
}

// csvFormat is format "csv", the default: a CSV file with a header row,
// read by LoadCSV, ReadHeader and ValueCounts. Its scan (scan.go) shares
// their reader: a leading BOM skipped, blank lines skipped, quoting as
// encoding/csv, cells trimmed, and errors naming the line.
type csvFormat struct{}

func (csvFormat) load(s Source, opts Options) (*Table, error) { return LoadCSV(s.Path, opts) }
func (csvFormat) header(s Source) ([]string, error)           { return ReadHeader(s.Path) }
func (csvFormat) valueCounts(s Source, column string, limit int) (map[string]int, bool, error) {
	return ValueCounts(s.Path, column, limit)
}
