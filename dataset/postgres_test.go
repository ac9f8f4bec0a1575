package dataset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/federa-dev/federa/internal/testutil"
)

func TestPostgres(t *testing.T) {
	start := time.Now()
	pg := testutil.StartPostgres(t)
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	// The breast-cancer files as double precision, the digits (whole
	// numbers) as smallint and as numeric: each must read back as the CSV.
	type table struct{ name, csv, typ string }
	var tables []table
	for _, p := range shippedCSVs(t) {
		typ := "double precision"
		if strings.Contains(p, "digits") {
			typ = "smallint"
			if strings.Contains(p, "test.csv") {
				typ = "numeric"
			}
		}
		name := strings.ReplaceAll(filepath.Base(filepath.Dir(p))+"_"+strings.TrimSuffix(filepath.Base(p), ".csv"), "-", "_")
		testutil.LoadCSVTable(t, conn, name, p, typ)
		tables = append(tables, table{name, p, typ})
	}
	for _, tb := range tables {
		t.Run(tb.name, func(t *testing.T) {
			checkSameAsCSV(t, Source{Format: "postgres", DSN: pg.DSN, Table: tb.name}, tb.csv)
		})
	}
	t.Run("schema-qualified view", func(t *testing.T) {
		if _, err := conn.Exec(ctx, `CREATE SCHEMA "Clinic"; CREATE VIEW "Clinic"."Paris View" AS SELECT * FROM "breast_cancer_eu_paris"`); err != nil {
			t.Fatal(err)
		}
		checkSameAsCSV(t, Source{Format: "postgres", DSN: pg.DSN, Table: "Clinic.Paris View"}, "../testdata/breast-cancer/eu-paris.csv")
	})

	t.Run("types", func(t *testing.T) {
		if _, err := conn.Exec(ctx, `
			CREATE TABLE types (i int, b bigint, f real, n numeric, ok boolean, s varchar(10), d date, label text);
			INSERT INTO types VALUES
				(1, 9007199254740993, 0.5, 'NaN', true, 'x', '2024-02-29', 'a'),
				(NULL, -2, NULL, 1.25, false, NULL, NULL, 'b')`); err != nil {
			t.Fatal(err)
		}
		src := Source{Format: "postgres", DSN: pg.DSN, Table: "types"}
		cols := []string{"i", "b", "f", "n", "ok", "s", "d", "label"}
		got := scanAll(t, src, cols)
		want := [][]Value{
			{{F: 1, Num: true}, {S: "9007199254740993", F: 9007199254740993, Num: true}, {F: 0.5, Num: true}, {S: "NaN"},
				{S: "true", F: 1, Num: true}, {S: "x"}, {S: "2024-02-29"}, {S: "a"}},
			{{}, {F: -2, Num: true}, {}, {F: 1.25, Num: true}, {S: "false", Num: true}, {}, {}, {S: "b"}},
		}
		for i := range want {
			for k := range want[i] {
				if got[i][k] != want[i][k] {
					t.Errorf("row %d column %q = %+v, want %+v", i+1, cols[k], got[i][k], want[i][k])
				}
			}
		}
		for _, tt := range []struct {
			opts         Options
			column, want string
		}{
			{Options{Label: "label", Features: []string{"b", "i"}}, "i", "row 2: null; every feature needs a number"},
			{Options{Label: "label", Features: []string{"n"}}, "n", "row 1: NaN is not allowed"},
			{Options{Label: "label", Features: []string{"s"}}, "s", "is a varchar column; a feature must be numeric"},
			{Options{Label: "label", Features: []string{"d"}}, "d", "is a date column; a feature must be numeric"},
			{Options{Label: "s", Features: []string{"b"}}, "s", "row 2: empty or null label"},
			{Options{Label: "label", Features: []string{"nope"}}, "nope", "requested feature column not in the header"},
		} {
			_, err := src.Load(tt.opts)
			var de *Error
			if !errors.As(err, &de) || de.Column != tt.column || de.Path != "postgres:types" || !strings.Contains(de.Msg, tt.want) {
				t.Errorf("Load(%+v) = %#v; want column %q saying %q", tt.opts, err, tt.column, tt.want)
			}
		}
		tab, err := src.Load(Options{Label: "label", Features: []string{"b", "ok"}})
		if err != nil || tab.X.At(1, 0) != -2 || tab.X.At(0, 1) != 1 || tab.Bytes <= 0 {
			t.Errorf("Load(b, ok) = %v, %v", tab, err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			src  Source
			want string
			hint string
		}{
			{"no table", Source{Format: "postgres", DSN: pg.DSN, Table: "nope"}, "postgres:nope: cannot read the columns: no such table or view", `relation "nope" does not exist`},
			{"bad table name", Source{Format: "postgres", DSN: pg.DSN, Table: "a..b"}, `table name "a..b" has an empty part`, ""},
			{"no dsn", Source{Format: "postgres", Table: "t"}, "no connection string (dsn) given", ""},
			{"no table name", Source{Format: "postgres", DSN: pg.DSN}, "no table given", ""},
			{"wrong password", Source{Format: "postgres", DSN: pg.TCPDSN("hunter2-wrong"), Table: "types"}, "cannot connect: the server refused the login", "password authentication failed"},
			{"unparsable dsn", Source{Format: "postgres", DSN: "postgres://federa:hunter2-wrong@[::1", Table: "types"}, "cannot parse the connection string", ""},
			{"unreachable", Source{Format: "postgres", DSN: fmt.Sprintf("postgres://federa:hunter2-wrong@127.0.0.1:%d/x?connect_timeout=5", pg.Port+1), Table: "types"}, "cannot connect", ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := tt.src.Header()
				var de *Error
				if !errors.As(err, &de) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(de.Hint, tt.hint) {
					t.Fatalf("Header = %v; want an *Error saying %q with hint %q", err, tt.want, tt.hint)
				}
				texts := []string{err.Error(), fmt.Sprintf("%+v %#v", err, de), de.Redacted().Error()}
				if u := errors.Unwrap(err); u != nil {
					texts = append(texts, u.Error(), fmt.Sprintf("%#v", u))
				}
				for _, s := range texts {
					if strings.Contains(s, "hunter2") || (pg.Password != "" && strings.Contains(s, pg.Password)) {
						t.Errorf("error text carries the password: %s", s)
					}
				}
				if de.Redacted().Hint != "" {
					t.Error("the redacted error keeps what the server said")
				}
			})
		}
		// The right password over TCP works, and a source prints without it.
		src := Source{Format: "postgres", DSN: pg.TCPDSN(pg.Password), Table: "types"}
		if h, err := src.Header(); err != nil || len(h) != 8 {
			t.Fatalf("Header over TCP = %v, %v", h, err)
		}
		var logged strings.Builder
		slog.New(slog.NewTextHandler(&logged, nil)).Info("load", "source", src)
		for _, s := range []string{fmt.Sprint(src), fmt.Sprintf("%+v", src), fmt.Sprintf("%#v", src), logged.String()} {
			if strings.Contains(s, pg.Password) || !strings.Contains(s, "postgres table types") {
				t.Errorf("source prints as %q", s)
			}
		}
		err := Source{Format: "postgres", DSN: pg.DSN, Table: "types"}.Scan([]string{"label", "Label"}, nil)
		var de *Error
		if !errors.As(err, &de) || de.Column != "Label" || !strings.Contains(de.Hint, `did you mean "label"?`) {
			t.Errorf("unknown column: %v", err)
		}
	})

	t.Run("stop early", func(t *testing.T) {
		// fn's error ends the query at once: the scan neither drains the
		// rest of a large table nor leaves it running on the server.
		if _, err := conn.Exec(ctx, `CREATE TABLE big AS SELECT g AS x, (g % 3)::text AS label FROM generate_series(1, 500000) g`); err != nil {
			t.Fatal(err)
		}
		src := Source{Format: "postgres", DSN: pg.DSN, Table: "big"}
		stop := errors.New("enough")
		calls := 0
		start := time.Now()
		err := src.Scan([]string{"x"}, func(row []Value) error {
			if calls++; calls == 10 {
				return stop
			}
			return nil
		})
		if err != stop || calls != 10 {
			t.Fatalf("Scan = %v after %d calls", err, calls)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("stopping after 10 rows took %v", d)
		}
		// The server notices the closed connection when it next writes.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var active int
			err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT "x" FROM "big"%'`).Scan(&active)
			if err == nil && active == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d scans of big still running on the server 5 s after the scan stopped (%v)", active, err)
			}
		}
		// And a full scan streams: every row, in order.
		n, sum := 0, 0.0
		if err := src.Scan([]string{"x"}, func(row []Value) error {
			n++
			sum += row[0].F
			return nil
		}); err != nil || n != 500_000 || sum != 500_000*500_001/2 {
			t.Errorf("full scan: %d rows, sum %v, %v", n, sum, err)
		}
		counts, truncated, err := src.ValueCounts("label", 2)
		if err != nil || !truncated || len(counts) != 2 {
			t.Errorf("ValueCounts(label, 2) = %v, %v, %v", counts, truncated, err)
		}
	})
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}
