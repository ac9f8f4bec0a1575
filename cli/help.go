package cli

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// plainHelp renders flags in --help without pflag's "[=true|false]" after
// every boolean flag (pflag v1.1 prints it; `--watch` is all anyone types).
func plainHelp(root *cobra.Command) {
	cobra.AddTemplateFunc("flagUsages", flagUsages)
	root.SetUsageTemplate(strings.NewReplacer(
		"{{.LocalFlags.FlagUsages", "{{flagUsages .LocalFlags",
		"{{.InheritedFlags.FlagUsages", "{{flagUsages .InheritedFlags",
	).Replace(root.UsageTemplate()))
}

// flagUsages is fs.FlagUsages with each boolean flag shown as a switch.
func flagUsages(fs *pflag.FlagSet) string {
	out := pflag.NewFlagSet("", pflag.ContinueOnError)
	out.SortFlags = fs.SortFlags
	fs.VisitAll(func(f *pflag.Flag) {
		c := *f
		if f.Value.Type() == "bool" {
			c.Value = switchValue{f.Value}
		}
		out.AddFlag(&c)
	})
	return out.FlagUsages()
}

// switchValue hides a boolean Value's IsBoolFlag, the one thing pflag keys
// the "[=true|false]" on; the flag still takes no argument (NoOptDefVal).
type switchValue struct{ pflag.Value }
