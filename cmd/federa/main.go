// Command federa is the one binary of federa: coordinator, site agent,
// CLI and demo. See `federa --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/federa-dev/federa/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
