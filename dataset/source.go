package dataset

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Source names a site's data: the format and the files holding it. It is
// the one place that knows which formats exist; callers load, read the
// header and count values through it without caring which format it is.
type Source struct {
	Format string // "csv" (also when empty) or "idx"
	Path   string // the CSV file, or the IDX images file
	// Labels is the IDX labels file (format idx only).
	Labels string
	// Classes names the IDX label values 0, 1, …, in order (format idx
	// only); empty means the values are read as decimal strings "0", "1", ….
	Classes []string
}

// format is what each data format provides to a Source.
type format interface {
	load(s Source, opts Options) (*Table, error)
	header(s Source) ([]string, error)
	valueCounts(s Source, column string, limit int) (map[string]int, bool, error)
}

// formats are the formats a Source may name. Adding a format is adding
// an entry here and a file implementing format.
var formats = map[string]format{
	"csv": csvFormat{},
	"idx": idxFormat{},
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

// csvFormat is a CSV file with a header row (LoadCSV).
type csvFormat struct{}

func (csvFormat) load(s Source, opts Options) (*Table, error) { return LoadCSV(s.Path, opts) }
func (csvFormat) header(s Source) ([]string, error)           { return ReadHeader(s.Path) }
func (csvFormat) valueCounts(s Source, column string, limit int) (map[string]int, bool, error) {
	return ValueCounts(s.Path, column, limit)
}
