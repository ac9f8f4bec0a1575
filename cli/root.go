// Package cli is the federa command line: flag parsing, output formatting
// and wiring of the daemons. It holds no federated-learning logic of its
// own; signal handling stays in cmd/federa.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Execute runs the federa command line and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "federa: "+err.Error())
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

type globals struct {
	stdout, stderr io.Writer
	logLevel       string
	logFormat      string
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "federa",
		Short: "Federated learning for data that may not move",
		Long: `federa trains models across regulated sites without moving their data.

Site agents run next to the data and dial out to a coordinator over SPIFFE
mutual TLS; they send back only aggregates (model updates, column
statistics, evaluation counts), never a row.`,
		Example: `  federa demo                              # the whole thing, in one process
  federa sim --sites 100                   # a hundred sites in one process, and what they cost
  federa dev-ca init --dir ca --trust-domain example.org
  federa coordinator --config coordinator.yaml
  federa site --config site.yaml
  federa job submit job.yaml --coordinator 127.0.0.1:7443 --identity ids/alice --watch`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(
		newDemoCmd(g),
		newSimCmd(g),
		newCoordinatorCmd(g),
		newSiteCmd(g),
		newDevCACmd(g),
		newJobCmd(g),
		newQueryCmd(g),
		newModelCmd(g),
		newPolicyCmd(g),
		newAuditCmd(g),
		newDoctorCmd(g),
		newVersionCmd(g),
	)
	strictSubcommands(root)
	plainHelp(root)
	return root
}

// strictSubcommands makes every command that has subcommands refuse an
// unknown one. Left to cobra, a command without Run of its own prints its
// help and exits 0 on `federa job lst`, so a typo in a script passes as
// success; this turns it into an error that names the command and the
// nearest valid ones. Such a command with no arguments still prints help.
func strictSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		strictSubcommands(sub)
	}
	if !c.HasSubCommands() {
		return
	}
	c.Args = noSubcommand
	c.SuggestionsMinimumDistance = 2
	if !c.Runnable() {
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
}

// noSubcommand refuses any positional argument of a command with
// subcommands: cobra only gets here when none of them matched.
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		// cobra lists them in name order; the nearest reads best.
		slices.SortStableFunc(s, func(a, b string) int {
			return editDistance(args[0], a) - editDistance(args[0], b)
		})
		return fmt.Errorf("unknown command %q for %q; did you mean %q? (%s --help lists them)", args[0], cmd.CommandPath(), s[0], cmd.CommandPath())
	}
	var valid []string
	for _, sub := range cmd.Commands() {
		if sub.IsAvailableCommand() {
			valid = append(valid, sub.Name())
		}
	}
	return fmt.Errorf("unknown command %q for %q; valid: %s", args[0], cmd.CommandPath(), strings.Join(valid, ", "))
}

// logger builds the process logger on w from the global flags.
func (g *globals) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("flag --log-level: %q is not a level; valid: debug, info, warn, error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(g.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("flag --log-format: %q is not valid; valid: text, json", g.logFormat)
	}
}

func checkOutput(o string) error {
	if o != "text" && o != "json" {
		return fmt.Errorf("flag --output: %q is not valid; valid: text, json", o)
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newVersionCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "Print the federa version",
		Example: "  federa version\n  federa version -o json | jq -r .version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(g.stdout, versionInfo{Version: Version, GoVersion: runtime.Version()})
			}
			fmt.Fprintln(g.stdout, "federa "+Version)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json (one object: version, go_version)")
	return cmd
}

// versionInfo is `federa version -o json`.
type versionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
}

// writeJSON prints v as one JSON object on one line.
func writeJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// Version of the federa binary.
const Version = "0.1.0"

// editDistance is the Levenshtein distance between a and b, ignoring case.
func editDistance(a, b string) int {
	a, b = strings.ToLower(a), strings.ToLower(b)
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
