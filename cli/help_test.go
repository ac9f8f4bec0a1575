package cli

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// flagLine is one flag in --help: "  -o, --output string   usage…". The
// value name is what follows the flag's name up to the gap before its
// usage.
var flagLine = regexp.MustCompile(`^ {2}(?:-\w, |    )--([\w-]+)(\S*)(?: (.*?))? {2,}\S`)

// valueName is how a flag's value reads in --help: string, duration, DIR…
var valueName = regexp.MustCompile(`^[A-Za-z][\w.-]*$`)

// TestHelpFlagsReadCorrectly renders every command's --help and checks
// each flag line as a user reads it: a back-quoted phrase in a usage string
// becomes the value name (`--file federa audit export`), and pflag marks
// booleans `--watch[=true|false]`.
func TestHelpFlagsReadCorrectly(t *testing.T) {
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	walk(newRoot(&bytes.Buffer{}, &bytes.Buffer{}), nil)
	if len(paths) < 20 {
		t.Fatalf("walked only %d commands", len(paths))
	}
	for _, path := range paths {
		name := strings.Join(append([]string{"federa"}, path...), " ")
		out, errs, code := execute(t, append(path, "--help")...)
		if code != 0 {
			t.Errorf("%s --help: exit %d: %s", name, code, errs)
			continue
		}
		seen, inFlags := 0, false
		for _, l := range strings.Split(out, "\n") {
			switch {
			case l == "Flags:" || l == "Global Flags:":
				inFlags = true
				continue
			case l == "" || !strings.HasPrefix(l, " "):
				inFlags = false
			}
			if !inFlags || !strings.HasPrefix(strings.TrimSpace(l), "-") {
				continue // not a flag, or a usage's continuation line
			}
			m := flagLine.FindStringSubmatch(l)
			if m == nil {
				t.Errorf("%s --help: unreadable flag line %q", name, l)
				continue
			}
			seen++
			if m[2] != "" {
				t.Errorf("%s --help: --%s is followed by %q (want nothing for a switch)", name, m[1], m[2])
			}
			if v := m[3]; v != "" && !valueName.MatchString(v) {
				t.Errorf("%s --help: --%s shows the value name %q; want one word (a back-quoted phrase in its usage?)", name, m[1], v)
			}
		}
		if seen == 0 {
			t.Errorf("%s --help shows no flags:\n%s", name, out)
		}
	}
}
