package dataset

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// postgresFormat is format "postgres": one PostgreSQL table or view
// (Source.Table) on the server Source.DSN names, read as a table whose
// columns are the relation's columns in order. Rows stream from one SELECT
// (pgx reads them off the socket as they come; nothing is materialized),
// in a read-only session. Column types:
//
//   - smallint, integer, bigint, real, double precision, numeric and
//     boolean (true is 1) are numbers, so they can be features;
//   - text, varchar, char and name are strings;
//   - any other type is read as its text (the server's ::text cast).
//
// Load follows LoadCSV's rules, naming the column and the row (from 1, in
// the order the server returned them) of a null or NaN feature or a null
// or empty label. Errors name the table as "postgres:<table>" and never
// carry the DSN or its password; what the server said goes in Error.Hint,
// which Redacted drops, since a server message may quote a value.
type postgresFormat struct{}

// pgTimeout bounds connecting and the metadata queries. The data query has
// no deadline (a large table takes as long as it takes); it ends when the
// rows do, or when fn stops the scan.
const pgTimeout = 30 * time.Second

// pgKind is how a column's values are scanned.
type pgKind int

const (
	pgText  pgKind = iota
	pgInt          // smallint, integer, bigint
	pgFloat        // real, double precision, numeric
	pgBool
	pgOther // read as ::text
)

func pgKindOf(oid uint32) pgKind {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		return pgInt
	case pgtype.Float4OID, pgtype.Float8OID, pgtype.NumericOID:
		return pgFloat
	case pgtype.BoolOID:
		return pgBool
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID:
		return pgText
	}
	return pgOther
}

// pgSource is an open connection to the server holding a Source's table,
// with the table's columns read.
type pgSource struct {
	name    string // "postgres:<table>", as errors name it
	ident   string // the table, quoted for SQL
	conn    *pgx.Conn
	secrets []string // the password as it may appear in text, scrubbed from errors
	header  []string
	types   []uint32 // column type OIDs, as header
}

// pgIdent quotes a table name "name" or "schema.name" for SQL.
func pgIdent(table string) (string, error) {
	parts := strings.Split(table, ".")
	if len(parts) > 3 {
		return "", fmt.Errorf("table name %q has %d dot-separated parts; want name or schema.name", table, len(parts))
	}
	for _, p := range parts {
		if p == "" {
			return "", fmt.Errorf("table name %q has an empty part; want name or schema.name", table)
		}
	}
	return pgx.Identifier(parts).Sanitize(), nil
}

func connectPG(s Source) (*pgSource, error) {
	ps := &pgSource{name: "postgres:" + s.Table}
	switch {
	case s.Table == "":
		return nil, &Error{Path: "postgres", Msg: "no table given; format postgres needs the table or view to read"}
	case s.DSN == "":
		return nil, &Error{Path: ps.name, Msg: "no connection string (dsn) given; format postgres needs one, read from an environment variable or a file"}
	}
	ident, err := pgIdent(s.Table)
	if err != nil {
		return nil, &Error{Path: ps.name, Msg: err.Error()}
	}
	ps.ident = ident
	cfg, err := pgx.ParseConfig(s.DSN)
	if err != nil {
		// pgx masks the password only on a best-effort basis in this
		// error, so none of its text is repeated.
		return nil, &Error{Path: ps.name, Msg: "cannot parse the connection string (dsn): want a postgres:// URL or libpq key=value pairs " +
			"(details withheld: the string may hold a password)"}
	}
	if cfg.Password != "" {
		ps.secrets = []string{cfg.Password, url.QueryEscape(cfg.Password), url.PathEscape(cfg.Password)}
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > pgTimeout {
		cfg.ConnectTimeout = pgTimeout
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "federa"
	}
	// A site only reads: even a view calling a function cannot write.
	cfg.RuntimeParams["default_transaction_read_only"] = "on"

	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	ps.conn, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, ps.error("cannot connect", err)
	}
	if err := ps.readHeader(ctx); err != nil {
		ps.close()
		return nil, err
	}
	return ps, nil
}

func (ps *pgSource) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps.conn.Close(ctx)
}

// readHeader reads the relation's column names and types from an empty
// result, which works for tables and views alike and needs only SELECT.
func (ps *pgSource) readHeader(ctx context.Context) error {
	rows, err := ps.conn.Query(ctx, "SELECT * FROM "+ps.ident+" LIMIT 0")
	if err != nil {
		return ps.error("cannot read the columns", err)
	}
	for _, fd := range rows.FieldDescriptions() {
		ps.header = append(ps.header, fd.Name)
		ps.types = append(ps.types, fd.DataTypeOID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return ps.error("cannot read the columns", err)
	}
	if len(ps.header) == 0 {
		return &Error{Path: ps.name, Msg: "the table has no columns"}
	}
	return nil
}

// error describes a failure while doing what, without the password and
// with the server's own words in the hint.
func (ps *pgSource) error(what string, err error) *Error {
	e := &Error{Path: ps.name}
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe):
		e.Column = pe.ColumnName
		switch pe.Code {
		case "42P01": // undefined_table
			e.Msg = what + ": no such table or view (or this user cannot see it; check the name and the schema)"
		case "42501": // insufficient_privilege
			e.Msg = what + ": permission denied; grant SELECT on the table to the connecting user"
		case "28P01", "28000": // invalid_password, invalid_authorization_specification
			e.Msg = what + ": the server refused the login; check the user and password in the connection string"
		default:
			e.Msg = fmt.Sprintf("%s: the server reported an error (SQLSTATE %s)", what, pe.Code)
		}
		e.Hint = "; server says: " + ps.scrub(pe.Message)
		e.Err = errors.New(e.Msg) // not pe: its fields may quote values
	case errors.Is(err, context.DeadlineExceeded):
		e.Msg = fmt.Sprintf("%s: timed out after %s", what, pgTimeout)
		e.Err = context.DeadlineExceeded
	default:
		e.Msg = what + ": " + ps.scrub(err.Error())
		// Not err itself: a pgconn.ConnectError carries the whole
		// configuration, password included.
		e.Err = errors.New(e.Msg)
	}
	return e
}

func (ps *pgSource) scrub(s string) string {
	for _, p := range ps.secrets {
		if p != "" {
			s = strings.ReplaceAll(s, p, "xxxxx")
		}
	}
	return s
}

// pgCell is the scan destination of one column.
type pgCell struct {
	kind pgKind
	i    pgtype.Int8
	f    pgtype.Float8
	b    pgtype.Bool
	t    pgtype.Text
}

func (c *pgCell) dest() any {
	switch c.kind {
	case pgInt:
		return &c.i
	case pgFloat:
		return &c.f
	case pgBool:
		return &c.b
	}
	return &c.t
}

func (c *pgCell) value() Value {
	switch c.kind {
	case pgInt:
		if !c.i.Valid {
			return Value{}
		}
		return intValue(c.i.Int64)
	case pgFloat:
		if !c.f.Valid {
			return Value{}
		}
		return floatValue(c.f.Float64)
	case pgBool:
		switch {
		case !c.b.Valid:
			return Value{}
		case c.b.Bool:
			return Value{S: "true", F: 1, Num: true}
		}
		return Value{S: "false", Num: true}
	}
	if !c.t.Valid {
		return Value{}
	}
	return Value{S: c.t.String}
}

// scan streams the requested columns with one SELECT.
func (ps *pgSource) scan(columns []string, fn func([]Value) error) error {
	idx, err := columnIndexes(ps.name, 0, ps.header, columns)
	if err != nil {
		return err
	}
	cells := make([]pgCell, len(idx))
	dests := make([]any, len(idx))
	list := make([]string, len(idx))
	for k, j := range idx {
		cells[k].kind = pgKindOf(ps.types[j])
		dests[k] = cells[k].dest()
		list[k] = pgx.Identifier{ps.header[j]}.Sanitize()
		if cells[k].kind == pgOther {
			list[k] += "::text"
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rows, err := ps.conn.Query(ctx, "SELECT "+strings.Join(list, ", ")+" FROM "+ps.ident)
	if err != nil {
		return ps.error("cannot read the rows", err)
	}
	// Cancelling first makes Close return at once instead of draining the
	// rows fn no longer wants.
	defer func() { cancel(); rows.Close() }()
	row := make([]Value, len(idx))
	for n := 1; rows.Next(); n++ {
		if err := rows.Scan(dests...); err != nil {
			e := ps.error(fmt.Sprintf("row %d: cannot read", n), err)
			var se pgx.ScanArgError
			if errors.As(err, &se) && se.ColumnIndex < len(columns) {
				e.Column = columns[se.ColumnIndex]
				e.Msg = fmt.Sprintf("row %d: cannot read the value", n)
				e.Hint = "; " + ps.scrub(se.Err.Error())
				e.Err = errors.New(e.Msg)
			}
			return e
		}
		for k := range cells {
			row[k] = cells[k].value()
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return ps.error("cannot read the rows", err)
	}
	return nil
}

func (ps *pgSource) typed() typedSource {
	return typedSource{
		name:   ps.name,
		header: ps.header,
		featureErr: func(name string) error {
			j := 0
			for j < len(ps.header) && ps.header[j] != name {
				j++
			}
			if k := pgKindOf(ps.types[j]); k != pgInt && k != pgFloat && k != pgBool {
				return &Error{Path: ps.name, Column: name, Msg: fmt.Sprintf(
					"is a %s column; a feature must be numeric (smallint, integer, bigint, real, double precision, numeric or boolean)", ps.typeName(ps.types[j]))}
			}
			return nil
		},
		scan: ps.scan,
	}
}

func (ps *pgSource) typeName(oid uint32) string {
	if t, ok := ps.conn.TypeMap().TypeForOID(oid); ok {
		return t.Name
	}
	return fmt.Sprintf("type OID %d", oid)
}

// size is the table's size on disk (0 for a view, or if the server will
// not say), the Table.Bytes of a load.
func (ps *pgSource) size() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	var n pgtype.Int8
	if err := ps.conn.QueryRow(ctx, "SELECT pg_total_relation_size(to_regclass($1))", ps.ident).Scan(&n); err != nil || !n.Valid {
		return 0
	}
	return n.Int64
}

func (postgresFormat) load(s Source, opts Options) (*Table, error) {
	ps, err := connectPG(s)
	if err != nil {
		return nil, err
	}
	defer ps.close()
	ts := ps.typed()
	ts.size = ps.size()
	return ts.load(opts)
}

func (postgresFormat) header(s Source) ([]string, error) {
	ps, err := connectPG(s)
	if err != nil {
		return nil, err
	}
	defer ps.close()
	return ps.header, nil
}

func (postgresFormat) valueCounts(s Source, column string, limit int) (map[string]int, bool, error) {
	ps, err := connectPG(s)
	if err != nil {
		return nil, false, err
	}
	defer ps.close()
	return ps.typed().valueCounts(column, limit)
}

func (postgresFormat) scan(s Source, columns []string, fn func([]Value) error) error {
	ps, err := connectPG(s)
	if err != nil {
		return err
	}
	defer ps.close()
	return ps.scan(columns, fn)
}
