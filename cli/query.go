package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/federa-dev/federa/analytics"
	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// queryOutputs are the formats a query's result prints in.
var queryOutputs = []string{"table", "json", "csv"}

func checkQueryOutput(o string) error {
	if !slices.Contains(queryOutputs, o) {
		return fmt.Errorf("flag --output: %q; valid: %s", o, strings.Join(queryOutputs, ", "))
	}
	return nil
}

func (f *clientFlags) queries() (federav1.QueryServiceClient, func(), error) {
	f.output = "text" // dial checks job output formats; queries check their own
	cc, err := f.dial()
	if err != nil {
		return nil, nil, err
	}
	return federav1.NewQueryServiceClient(cc), func() { cc.Close() }, nil
}

func newQueryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Run federated analytics queries with disclosure control (docs/queries.md)",
		Example: `  federa query run query.yaml --watch --identity ids/alice
  federa query list`,
	}
	cmd.AddCommand(newQueryRunCmd(g), newQueryGetCmd(g), newQueryListCmd(g))
	return cmd
}

const queryExample = `  # query.yaml
  name: radius-by-diagnosis
  dataset: breast-cancer
  group_by: [label]
  aggregates:
    - {name: n,      fn: count}
    - {name: mean_r, fn: mean, column: mean_radius}
    - {name: hist_r, fn: histogram, column: mean_radius, edges: [6, 10, 14, 18, 30]}
    - {name: med_r,  fn: quantile, column: mean_radius, q: [0.5]}
  min_count: 5`

func newQueryRunCmd(g *globals) *cobra.Command {
	var f clientFlags
	var watch bool
	var output string
	cmd := &cobra.Command{
		Use:   "run QUERY.yaml",
		Short: "Submit a query, wait for it and print its result",
		Long: `Submit a query described in YAML (docs/queries.md), wait until it ends and
print its result. The coordinator validates the spec at submit and names the
field of any problem. Exit status 0 only if the query succeeded.`,
		Example: `  federa query run query.yaml --identity ids/alice
  federa query run query.yaml --watch -o json | jq '.groups'
  federa query run query.yaml -o csv > result.csv

` + queryExample,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkQueryOutput(output); err != nil {
				return err
			}
			data, err := readQueryFile(args[0])
			if err != nil {
				return err
			}
			c, closeFn, err := f.queries()
			if err != nil {
				return err
			}
			defer closeFn()
			q, err := c.SubmitQuery(cmd.Context(), &federav1.SubmitQueryRequest{Spec: data, Source: args[0]})
			if err != nil {
				return rpcErr("submit query", err)
			}
			var progress io.Writer
			if watch {
				progress = g.stderr
			}
			final, err := waitQuery(cmd.Context(), c, q.GetId(), progress)
			if err != nil {
				return err
			}
			if err := printQuery(g.stdout, final, output); err != nil {
				return err
			}
			return queryFinalErr(final)
		},
	}
	f.registerConn(cmd)
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print the query's progress to stderr while it runs")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or csv")
	return cmd
}

func readQueryFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("query spec: %w", err)
	}
	if st.Size() > federav1.MaxQuerySpecBytes {
		return nil, fmt.Errorf("query spec %s: %d bytes; at most %d", path, st.Size(), federav1.MaxQuerySpecBytes)
	}
	return os.ReadFile(path)
}

// waitQuery polls a query until it ends, printing each new message to
// progress (when not nil).
func waitQuery(ctx context.Context, c federav1.QueryServiceClient, id string, progress io.Writer) (*federav1.Query, error) {
	last := ""
	for {
		q, err := c.GetQuery(ctx, &federav1.GetQueryRequest{Id: id})
		if err != nil {
			return nil, rpcErr("get query", err)
		}
		if line := q.GetStatus().Name() + ": " + q.GetMessage(); progress != nil && line != last {
			fmt.Fprintf(progress, "%s %s\n", id, line)
			last = line
		}
		if isFinalQuery(q) {
			return q, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func isFinalQuery(q *federav1.Query) bool {
	s := q.GetStatus()
	return s == federav1.JobStatus_JOB_STATUS_SUCCEEDED || s == federav1.JobStatus_JOB_STATUS_FAILED || s == federav1.JobStatus_JOB_STATUS_CANCELLED
}

func queryFinalErr(q *federav1.Query) error {
	if q.GetStatus() == federav1.JobStatus_JOB_STATUS_SUCCEEDED {
		return nil
	}
	return &exitError{code: 2, err: fmt.Errorf("query %s %s: %s", q.GetId(), q.GetStatus().Name(), q.GetMessage())}
}

func newQueryGetCmd(g *globals) *cobra.Command {
	var f clientFlags
	var output string
	cmd := &cobra.Command{
		Use:     "get ID",
		Short:   "Print a query's status and result",
		Example: "  federa query get qry-0123456789ab\n  federa query get qry-0123456789ab -o json | jq '.groups[0].values'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkQueryOutput(output); err != nil {
				return err
			}
			c, closeFn, err := f.queries()
			if err != nil {
				return err
			}
			defer closeFn()
			q, err := c.GetQuery(cmd.Context(), &federav1.GetQueryRequest{Id: args[0]})
			if err != nil {
				return rpcErr("get query", err)
			}
			return printQuery(g.stdout, q, output)
		},
	}
	f.registerConn(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or csv")
	return cmd
}

func newQueryListCmd(g *globals) *cobra.Command {
	var f clientFlags
	var output string
	pages := pageFlags{noun: "queries"}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List queries, oldest first",
		Long: `List the queries you may read, oldest first, without their results (federa
query get has them). The coordinator sends them a page at a time
(ListQueries, at most 1,000 a page); this command follows the pages to the
end, or stops after --limit queries; then -o json's next_page_token continues
the list with --page-token.`,
		Example: `  federa query list --identity ids/alice
  federa query list -o json | jq '.queries[].id'
  federa query list -o json --limit 100 | jq -r .next_page_token   # then: --page-token TOKEN`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("flag --output: %q; valid: table, json", output)
			}
			if err := pages.validate(); err != nil {
				return err
			}
			c, closeFn, err := f.queries()
			if err != nil {
				return err
			}
			defer closeFn()
			qs, token, err := followPages(&pages, func(token string, size int32) ([]*federav1.Query, string, error) {
				resp, err := c.ListQueries(cmd.Context(), &federav1.ListQueriesRequest{PageToken: token, PageSize: size})
				if err != nil {
					return nil, "", rpcErr("list queries", err)
				}
				return resp.GetQueries(), resp.GetNextPageToken(), nil
			})
			if err != nil {
				return err
			}
			if output == "json" {
				return writeProto(g.stdout, &federav1.ListQueriesResponse{Queries: qs, NextPageToken: token})
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tDATASET\tSTATUS\tSITES\tCREATED\tMESSAGE")
			for _, q := range qs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", q.GetId(), q.GetName(), q.GetDataset(),
					strings.TrimPrefix(q.GetStatus().Name(), "JOB_STATUS_"), strings.Join(q.GetSites(), ","),
					time.UnixMilli(q.GetCreatedUnixMs()).UTC().Format(time.RFC3339), q.GetMessage())
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if token != "" {
				fmt.Fprintf(g.stdout, "(more queries: federa query list --page-token %s)\n", token)
			}
			return nil
		},
	}
	f.registerConn(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	pages.register(cmd)
	return cmd
}

// queryResultOf is a query's published result, or for a query without one
// (failed, or still running) the same shape with its status and message.
func queryResultOf(q *federav1.Query) (map[string]any, error) {
	if len(q.GetResultJson()) > 0 {
		var m map[string]any
		if err := json.Unmarshal(q.GetResultJson(), &m); err != nil {
			return nil, fmt.Errorf("query %s: the result is not JSON: %w", q.GetId(), err)
		}
		return m, nil
	}
	return map[string]any{
		"query_id": q.GetId(), "status": strings.ToLower(strings.TrimPrefix(q.GetStatus().Name(), "JOB_STATUS_")),
		"message": q.GetMessage(), "groups": []any{}, "epsilon_spent": q.GetEpsilonSpent(), "sites": q.GetSites(),
	}, nil
}

// printQuery writes a query's result: json is the result object on one
// line; table and csv one row per group with a column per group_by column
// and per aggregate.
func printQuery(w io.Writer, q *federav1.Query, output string) error {
	if output == "json" {
		m, err := queryResultOf(q)
		if err != nil {
			return err
		}
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	if len(q.GetResultJson()) == 0 {
		_, err := fmt.Fprintf(w, "query %s (%s): %s\n", q.GetId(), strings.TrimPrefix(q.GetStatus().Name(), "JOB_STATUS_"), q.GetMessage())
		return err
	}
	var spec analytics.Query
	if err := json.Unmarshal(q.GetSpecJson(), &spec); err != nil {
		return fmt.Errorf("query %s: its spec: %w", q.GetId(), err)
	}
	var res struct {
		Groups []struct {
			Group      map[string]string `json:"group"`
			Values     map[string]any    `json:"values"`
			Suppressed bool              `json:"suppressed"`
		} `json:"groups"`
		EpsilonSpent float64  `json:"epsilon_spent"`
		Sites        []string `json:"sites"`
	}
	if err := json.Unmarshal(q.GetResultJson(), &res); err != nil {
		return fmt.Errorf("query %s: its result: %w", q.GetId(), err)
	}
	header := slices.Clone(spec.GroupBy)
	for _, a := range spec.Aggregates {
		header = append(header, a.Name)
	}
	rows := [][]string{header}
	for _, g := range res.Groups {
		var row []string
		for _, c := range spec.GroupBy {
			v, ok := g.Group[c]
			if !ok {
				v = "(total)"
			}
			row = append(row, v)
		}
		for _, a := range spec.Aggregates {
			if g.Suppressed {
				row = append(row, "(suppressed)")
				continue
			}
			row = append(row, formatValue(g.Values[a.Name]))
		}
		rows = append(rows, row)
	}
	if output == "csv" {
		cw := csv.NewWriter(w)
		if err := cw.WriteAll(rows); err != nil {
			return err
		}
		return cw.Error()
	}
	fmt.Fprintf(w, "query %s (%s) over %s", q.GetId(), spec.Name, strings.Join(res.Sites, ", "))
	if res.EpsilonSpent > 0 {
		fmt.Fprintf(w, ", epsilon spent %.4g", res.EpsilonSpent)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		if len(r) == 0 {
			r = []string{"(total)"}
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// formatValue writes one statistic: a number, a list, a matrix or a
// regression, compactly.
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case float64:
		return strconv.FormatFloat(x, 'g', 6, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = formatValue(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case map[string]any:
		b, _ := json.Marshal(x)
		return string(b)
	default:
		return fmt.Sprint(x)
	}
}

// demoQuerySpec reads a demo's query file and names the demo's dataset
// when it names none.
func demoQuerySpec(path, dataset string) ([]byte, error) {
	data, err := readQueryFile(path)
	if err != nil {
		return nil, fmt.Errorf("flag --query: %w", err)
	}
	q, err := analytics.ParseQuery(path, data)
	if err != nil {
		return nil, fmt.Errorf("flag --query: %w", err)
	}
	if q.Dataset == "" {
		q.Dataset = dataset
	} else if q.Dataset != dataset {
		return nil, fmt.Errorf("flag --query: %s: dataset %q, but the demo's sites serve %q (leave dataset out)", path, q.Dataset, dataset)
	}
	b, err := json.Marshal(q)
	if err != nil {
		return nil, errors.New("flag --query: " + err.Error())
	}
	return b, nil
}

// demoQuery runs the demo's query as alice and prints its result: a table,
// or with --output json progress nowhere and the result object as the last
// line. Exit status 0 only if the query succeeded.
func demoQuery(ctx context.Context, net interface {
	DialQueries(string) (federav1.QueryServiceClient, func(), error)
}, spec []byte, source string, out io.Writer, output string, say func(string, ...any)) error {
	c, closeFn, err := net.DialQueries("alice")
	if err != nil {
		return err
	}
	defer closeFn()
	q, err := c.SubmitQuery(ctx, &federav1.SubmitQueryRequest{Spec: spec, Source: source})
	if err != nil {
		return rpcErr("submit query", err)
	}
	say("submitted query %s as alice (data-scientist)", q.GetId())
	var progress io.Writer
	if output == "text" {
		progress = out
	}
	final, err := waitQuery(ctx, c, q.GetId(), progress)
	if err != nil {
		return err
	}
	format := "table"
	if output == "json" {
		format = "json"
	}
	if err := printQuery(out, final, format); err != nil {
		return err
	}
	return queryFinalErr(final)
}
