package config

import (
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var lineRE = regexp.MustCompile(`line (\d+): cannot unmarshal`)

// NameFields rewrites yaml's "line N: cannot unmarshal …" messages to also
// name the field at that line (as a dotted path), since a user fixes
// fields, not line numbers alone.
func NameFields(data []byte, msg string) string {
	paths := linePaths(data)
	return lineRE.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(lineRE.FindStringSubmatch(m)[1])
		if p, ok := paths[n]; ok {
			return strings.Replace(m, ": cannot unmarshal", ": field "+p+": cannot unmarshal", 1)
		}
		return m
	})
}

var unnamedRE = regexp.MustCompile(`^line (\d+): `)

// nameField adds the field at its line to a "line N: …" message that does
// not name one (a custom decoder's, which does not know its key path).
func nameField(paths map[int]string, msg string) string {
	m := unnamedRE.FindStringSubmatch(msg)
	if m == nil || strings.HasPrefix(msg[len(m[0]):], "field ") {
		return msg
	}
	n, _ := strconv.Atoi(m[1])
	if p, ok := paths[n]; ok {
		return m[0] + "field " + p + ": " + msg[len(m[0]):]
	}
	return msg
}

// linePaths maps each line holding a value to the dotted key path of that
// value.
func linePaths(data []byte) map[int]string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return nil
	}
	paths := map[int]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				paths[v.Line] = p
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := path + "[" + strconv.Itoa(i) + "]"
				if _, ok := paths[c.Line]; !ok {
					paths[c.Line] = p
				}
				walk(c, p)
			}
		}
	}
	walk(&root, "")
	return paths
}
