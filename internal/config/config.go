// Package config decodes federa's YAML configuration files strictly: an
// unknown field, a wrong type or a second document is an error that names
// the file and the line, never a silently ignored setting.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DecodeFile reads path into v.
func DecodeFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	return Decode(path, data, v)
}

// FieldErrors is every problem Decode found in a file's keys and values:
// unknown keys (with the keys valid there), wrong types, bad durations.
// The fields that could be read were decoded, so a caller can go on
// checking them and report everything in the file at once.
type FieldErrors struct {
	Source string
	// Errs are in line order, each "line N: field a.b: …".
	Errs []error
}

func (e *FieldErrors) Error() string {
	msgs := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		msgs[i] = err.Error()
	}
	return "config " + e.Source + ": " + strings.Join(msgs, "\n")
}

// Unwrap returns each problem.
func (e *FieldErrors) Unwrap() []error { return e.Errs }

// Decode parses data (named source in errors) into v. A file that is
// empty, malformed or holds more than one document is an error on its
// own; otherwise every problem with its fields is reported together as a
// *FieldErrors, with v holding every field that could be read.
func Decode(source string, data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("config %s: file is empty", source)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			// Only comments: the decoder sees no document at all.
			return fmt.Errorf("config %s: file is empty", source)
		}
		return fmt.Errorf("config %s: %s", source, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: more than one YAML document", source)
	}
	var c shapeChecker
	c.walk(&root, reflect.TypeOf(v), "")
	if err := root.Decode(v); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			// A custom decoder's own error: it stops the decoding.
			c.add(0, false, "%s", err.Error())
		} else {
			paths := linePaths(data)
			for _, m := range te.Errors {
				line := lineOf(m)
				if !c.shaped[line] {
					c.add(line, false, "%s", plainTypeError(nameField(paths, NameFields(data, m))))
				}
			}
		}
	}
	if len(c.problems) == 0 {
		return nil
	}
	sort.SliceStable(c.problems, func(i, j int) bool { return c.problems[i].line < c.problems[j].line })
	fe := &FieldErrors{Source: source}
	for _, p := range c.problems {
		fe.Errs = append(fe.Errs, errors.New(p.msg))
	}
	return fe
}

var (
	lineNumRE   = regexp.MustCompile(`^line (\d+):`)
	typeErrorRE = regexp.MustCompile("cannot unmarshal !!\\w+ `(.*)` into (\\S+)$")
)

func lineOf(msg string) int {
	m := lineNumRE.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// plainTypeError says what a value should be in an operator's words, not
// Go's: "\"many\" is not a whole number" for "cannot unmarshal !!str
// `many` into int".
func plainTypeError(msg string) string {
	m := typeErrorRE.FindStringSubmatchIndex(msg)
	if m == nil {
		return msg
	}
	val, typ := msg[m[2]:m[3]], msg[m[4]:m[5]]
	var want string
	switch {
	case strings.HasPrefix(typ, "int") || strings.HasPrefix(typ, "uint"):
		want = "a whole number"
	case strings.HasPrefix(typ, "float"):
		want = "a number"
	case typ == "bool":
		want = "true or false"
	case typ == "string":
		want = "a string"
	default:
		return msg
	}
	return msg[:m[0]] + fmt.Sprintf("%q is not %s", val, want)
}

// Duration is a time.Duration written as "90s" or "2m".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	// A *yaml.TypeError lets the decoder go on and report the rest of
	// the file too.
	if n.Kind != yaml.ScalarNode || n.Decode(&s) != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration like 10s or 2m", n.Line)}}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration; want e.g. 10s or 2m", n.Line, s)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D is the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
