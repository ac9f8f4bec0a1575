package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// unmarshalerType is yaml.Unmarshaler: a type that decodes itself checks
// its own keys (spec's aggregator does), so the walk stops there.
var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// problem is one thing wrong at a line of a file.
type problem struct {
	line int
	msg  string
}

// shapeChecker walks a YAML tree beside the Go type it decodes into and
// records every key the type does not have and every mapping or list
// written where the other (or a scalar) is wanted, each with the key path
// and what would be valid there. yaml's own KnownFields error names Go
// types ("not found in type coordinator.File") and lists nothing.
type shapeChecker struct {
	problems []problem
	// shaped are the lines with a shape problem; yaml's type error for
	// the same value would only repeat it in Go terms.
	shaped map[int]bool
}

func (c *shapeChecker) add(line int, shape bool, format string, args ...any) {
	c.problems = append(c.problems, problem{line, fmt.Sprintf(format, args...)})
	if shape {
		if c.shaped == nil {
			c.shaped = map[int]bool{}
		}
		c.shaped[line] = true
	}
}

func (c *shapeChecker) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.DocumentNode {
		for _, child := range n.Content {
			c.walk(child, t, path)
		}
		return
	}
	if n.Kind == yaml.AliasNode || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null") {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		keys := structKeys(t)
		if n.Kind != yaml.MappingNode {
			c.add(n.Line, true, "line %d: field %s: want a mapping with keys %s", n.Line, orTop(path), strings.Join(keyNames(keys), ", "))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			ft, ok := keys.lookup(k.Value)
			if !ok {
				where := "valid keys"
				if path != "" {
					where += " in " + path
				}
				msg := fmt.Sprintf("line %d: field %s: unknown; %s: %s", k.Line, p, where, strings.Join(keyNames(keys), ", "))
				if s := closest(k.Value, keyNames(keys)); s != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", s)
				}
				c.add(k.Line, false, "%s", msg)
				continue
			}
			c.walk(v, ft, p)
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return // []byte decodes from a scalar
		}
		if n.Kind != yaml.SequenceNode {
			c.add(n.Line, true, "line %d: field %s: want a list (one `- item` per line)", n.Line, orTop(path))
			return
		}
		for i, e := range n.Content {
			c.walk(e, t.Elem(), path+"["+strconv.Itoa(i)+"]")
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.add(n.Line, true, "line %d: field %s: want a mapping", n.Line, orTop(path))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
		}
	case reflect.Interface:
		// Anything goes.
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" {
			// yaml would truncate 1.5 to 1 without a word.
			c.add(n.Line, true, "line %d: field %s: %q is not a whole number", n.Line, orTop(path), n.Value)
			return
		}
		c.scalar(n, path)
	default:
		c.scalar(n, path)
	}
}

func (c *shapeChecker) scalar(n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode {
		c.add(n.Line, true, "line %d: field %s: want a single value, not a %s", n.Line, orTop(path), kindName(n.Kind))
	}
}

func orTop(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(k yaml.Kind) string {
	if k == yaml.SequenceNode {
		return "list"
	}
	return "mapping"
}

// structField is one YAML key of a struct, in declaration order.
type structField struct {
	name string
	typ  reflect.Type
}

type fieldList []structField

func (l fieldList) lookup(name string) (reflect.Type, bool) {
	for _, f := range l {
		if f.name == name {
			return f.typ, true
		}
	}
	return nil, false
}

func keyNames(l fieldList) []string {
	names := make([]string, len(l))
	for i, f := range l {
		names[i] = f.name
	}
	return names
}

// structKeys are the keys yaml decodes into t, following its rules: the
// tag's name, else the lowercased field name; "-" skipped; inline
// structs flattened.
func structKeys(t reflect.Type) fieldList {
	var out fieldList
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, structKeys(ft)...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, structField{name, f.Type})
	}
	return out
}

// closest is the valid key a misspelt one most likely meant, or "".
func closest(key string, valid []string) string {
	key = strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	best, bestD := "", len(key)/3+1
	for _, v := range valid {
		d := editDistance(key, v)
		// On a tie, a key with the same first letter: people mistype
		// the middle of a word more than its start (lable: label, not table).
		if d < bestD || (d == bestD && best != "" && v[0] == key[0] && best[0] != key[0]) {
			best, bestD = v, d
		}
	}
	return best
}

// editDistance counts the insertions, deletions, substitutions and
// swaps of neighbours that turn a into b (a swap is the commonest typo).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
