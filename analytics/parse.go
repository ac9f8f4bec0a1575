package analytics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxQueryBytes is the largest query spec ParseQuery reads.
const MaxQueryBytes = 1 << 20

// ParseQuery reads a query spec from YAML (source names it in errors) and
// validates it with the zero ValidateOptions. Unknown fields, wrong types,
// explicit empty values, YAML aliases and a second document are errors;
// every error names the line and the field, e.g.
//
//	query spec q.yaml: line 9: aggregates[2].edges: must be sorted ascending; …
//
// and all of them are reported at once.
func ParseQuery(source string, data []byte) (*Query, error) {
	q, err := parseQuery(data)
	if err != nil {
		return nil, fmt.Errorf("query spec %s: %w", source, err)
	}
	return q, nil
}

func parseQuery(data []byte) (*Query, error) {
	if len(data) > MaxQueryBytes {
		return nil, fmt.Errorf("%d bytes; at most %d", len(data), MaxQueryBytes)
	}
	const empty = "file is empty; a query needs at least name and aggregates"
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New(empty)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New(empty)
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document; put one query in a file")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, errors.New(empty)
	}
	p := &yparser{lines: map[string]int{}}
	q := p.query(doc.Content[0])
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	if err := q.Validate(ValidateOptions{}); err != nil {
		var errs []error
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			if fe, ok := e.(*FieldError); ok {
				fe.Line = p.line(fe.Field)
			}
			errs = append(errs, e)
		}
		return nil, errors.Join(errs...)
	}
	return q, nil
}

// yparser decodes a query from the YAML tree by hand, so that every error
// carries the field's path and line.
type yparser struct {
	errs  []error
	lines map[string]int // field path → line of its value
}

func (p *yparser) bad(n *yaml.Node, field, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...), Line: n.Line})
}

// line is the line of field, or of the nearest enclosing field.
func (p *yparser) line(field string) int {
	for field != "" {
		if l, ok := p.lines[field]; ok {
			return l
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			break
		}
		field = field[:i]
	}
	return 0
}

type yfield struct {
	name   string
	decode func(v *yaml.Node, path string)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// usable refuses aliases and nulls; what, e.g. "a mapping", is used in the
// error.
func (p *yparser) usable(n *yaml.Node, path string) bool {
	switch {
	case n.Kind == yaml.AliasNode:
		p.bad(n, path, "YAML aliases (*%s) are not supported; write the value out", n.Value)
		return false
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		p.bad(n, path, "empty; give a value or leave the field out")
		return false
	}
	return true
}

// mapping decodes a mapping whose keys are the given fields.
func (p *yparser) mapping(n *yaml.Node, path string, fields []yfield) {
	if !p.usable(n, orRoot(path)) {
		return
	}
	var names []string
	for _, f := range fields {
		names = append(names, f.name)
	}
	if n.Kind != yaml.MappingNode {
		p.bad(n, orRoot(path), "want a mapping with fields %s", strings.Join(names, ", "))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.bad(k, orRoot(path), "a key is not a field name; valid: %s", strings.Join(names, ", "))
			continue
		}
		field := join(path, k.Value)
		if seen[k.Value] {
			p.bad(k, field, "given twice")
			continue
		}
		seen[k.Value] = true
		var dec func(*yaml.Node, string)
		for _, f := range fields {
			if f.name == k.Value {
				dec = f.decode
			}
		}
		if dec == nil {
			p.bad(k, field, "unknown field; valid: %s", strings.Join(names, ", "))
			continue
		}
		p.lines[field] = v.Line
		if p.usable(v, field) {
			dec(v, field)
		}
	}
}

func orRoot(path string) string {
	if path == "" {
		return "query"
	}
	return path
}

func (p *yparser) query(n *yaml.Node) *Query {
	q := &Query{}
	p.mapping(n, "", []yfield{
		{"name", func(v *yaml.Node, f string) { q.Name = p.text(v, f) }},
		{"dataset", func(v *yaml.Node, f string) { q.Dataset = p.text(v, f) }},
		{"where", func(v *yaml.Node, f string) {
			p.sequence(v, f, func(item *yaml.Node, f string) { q.Where = append(q.Where, p.condition(item, f)) })
		}},
		{"group_by", func(v *yaml.Node, f string) {
			p.sequence(v, f, func(item *yaml.Node, f string) { q.GroupBy = append(q.GroupBy, p.text(item, f)) })
		}},
		{"aggregates", func(v *yaml.Node, f string) {
			p.sequence(v, f, func(item *yaml.Node, f string) { q.Aggregates = append(q.Aggregates, p.aggregate(item, f)) })
		}},
		{"min_count", func(v *yaml.Node, f string) { q.MinCount = p.integer(v, f) }},
		{"totals", func(v *yaml.Node, f string) { q.Totals = p.boolean(v, f) }},
		{"privacy", func(v *yaml.Node, f string) { q.Privacy = p.privacy(v, f) }},
	})
	return q
}

func (p *yparser) condition(n *yaml.Node, path string) Condition {
	var c Condition
	p.mapping(n, path, []yfield{
		{"column", func(v *yaml.Node, f string) { c.Column = p.text(v, f) }},
		{"op", func(v *yaml.Node, f string) { c.Op = p.text(v, f) }},
		{"value", func(v *yaml.Node, f string) { c.Value = p.operand(v, f) }},
	})
	return c
}

func (p *yparser) aggregate(n *yaml.Node, path string) Aggregate {
	var a Aggregate
	p.mapping(n, path, []yfield{
		{"name", func(v *yaml.Node, f string) { a.Name = p.text(v, f) }},
		{"fn", func(v *yaml.Node, f string) { a.Fn = p.text(v, f) }},
		{"column", func(v *yaml.Node, f string) { a.Column = p.text(v, f) }},
		{"columns", func(v *yaml.Node, f string) {
			a.Columns = []string{}
			p.sequence(v, f, func(item *yaml.Node, f string) { a.Columns = append(a.Columns, p.text(item, f)) })
		}},
		{"label", func(v *yaml.Node, f string) { a.Label = p.text(v, f) }},
		{"edges", func(v *yaml.Node, f string) { a.Edges = p.numbers(v, f) }},
		{"q", func(v *yaml.Node, f string) { a.Q = p.numbers(v, f) }},
	})
	return a
}

func (p *yparser) privacy(n *yaml.Node, path string) *Privacy {
	pr := &Privacy{}
	p.mapping(n, path, []yfield{
		{"epsilon", func(v *yaml.Node, f string) { pr.Epsilon = p.number(v, f) }},
		{"delta", func(v *yaml.Node, f string) { pr.Delta = p.number(v, f) }},
		{"bounds", func(v *yaml.Node, f string) {
			if v.Kind != yaml.MappingNode {
				p.bad(v, f, "want a mapping of column: [low, high]")
				return
			}
			pr.Bounds = map[string][]float64{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, b := v.Content[i], v.Content[i+1]
				col := p.text(k, f)
				field := f + "." + col
				if _, dup := pr.Bounds[col]; dup {
					p.bad(k, field, "given twice")
					continue
				}
				p.lines[field] = b.Line
				if p.usable(b, field) {
					pr.Bounds[col] = p.numbers(b, field)
				}
			}
			if len(pr.Bounds) == 0 {
				pr.Bounds = nil // as the wire form reads `bounds: {}`
			}
		}},
	})
	return pr
}

func (p *yparser) sequence(n *yaml.Node, path string, item func(*yaml.Node, string)) {
	if n.Kind != yaml.SequenceNode {
		p.bad(n, path, "want a list, e.g. [a, b]")
		return
	}
	for i, v := range n.Content {
		f := fmt.Sprintf("%s[%d]", path, i)
		p.lines[f] = v.Line
		if p.usable(v, f) {
			item(v, f)
		}
	}
}

func (p *yparser) scalar(n *yaml.Node, path, want string) bool {
	if !p.usable(n, path) {
		return false
	}
	if n.Kind != yaml.ScalarNode {
		p.bad(n, path, "want %s", want)
		return false
	}
	return true
}

func (p *yparser) text(n *yaml.Node, path string) string {
	if !p.scalar(n, path, "text") {
		return ""
	}
	return n.Value
}

func (p *yparser) integer(n *yaml.Node, path string) int {
	if !p.scalar(n, path, "a whole number") {
		return 0
	}
	var i int
	if n.ShortTag() != "!!int" || n.Decode(&i) != nil {
		p.bad(n, path, "%q is not a whole number", n.Value)
	}
	return i
}

func (p *yparser) boolean(n *yaml.Node, path string) bool {
	if !p.scalar(n, path, "true or false") {
		return false
	}
	var b bool
	if n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		p.bad(n, path, "%q is not true or false", n.Value)
	}
	return b
}

func (p *yparser) number(n *yaml.Node, path string) float64 {
	if !p.scalar(n, path, "a number") {
		return 0
	}
	var f float64
	if t := n.ShortTag(); (t != "!!int" && t != "!!float") || n.Decode(&f) != nil {
		p.bad(n, path, "%q is not a number", n.Value)
		return 0
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		p.bad(n, path, "%q is not a finite number", n.Value)
		return 0
	}
	return f
}

// numbers decodes a list of numbers; an explicit empty list is kept
// (non-nil) so that validation can say what it should hold.
func (p *yparser) numbers(n *yaml.Node, path string) []float64 {
	out := []float64{}
	p.sequence(n, path, func(item *yaml.Node, f string) { out = append(out, p.number(item, f)) })
	return out
}

// operand is a where value: a scalar, or a list of scalars for op in.
func (p *yparser) operand(n *yaml.Node, path string) Operand {
	if n.Kind == yaml.SequenceNode {
		o := Operand{List: true, Items: []Literal{}}
		p.sequence(n, path, func(item *yaml.Node, f string) { o.Items = append(o.Items, p.literal(item, f)) })
		return o
	}
	return Operand{Items: []Literal{p.literal(n, path)}}
}

// literal is a number for a YAML int or float, else text as written.
func (p *yparser) literal(n *yaml.Node, path string) Literal {
	if !p.scalar(n, path, "a number or text") {
		return Literal{}
	}
	if t := n.ShortTag(); t == "!!int" || t == "!!float" {
		return NumberLiteral(p.number(n, path))
	}
	return TextLiteral(n.Value)
}
