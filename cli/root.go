// Package cli is the federa command line: flag parsing, output formatting
// and wiring of the daemons. It holds no federated-learning logic of its
// own; signal handling stays in cmd/federa.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
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
		newCoordinatorCmd(g),
		newSiteCmd(g),
		newDevCACmd(g),
		newJobCmd(g),
		newQueryCmd(g),
		newModelCmd(g),
		newPolicyCmd(g),
		newAuditCmd(g),
		newVersionCmd(g),
	)
	return root
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
	return &cobra.Command{
		Use:   "version",
		Short: "Print the federa version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(g.stdout, "federa "+Version)
			return nil
		},
	}
}

// Version of the federa binary.
const Version = "0.1.0"
