package analytics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Operand is the right-hand side of a where condition: one literal, or a
// list of them for op in. In YAML and JSON it is a scalar or a list.
type Operand struct {
	List  bool
	Items []Literal
}

// Literal is a value a condition compares with. A number (a YAML int or
// float, a JSON number) compares with a cell by numeric value; text (a YAML
// string, a JSON string) compares with the cell's raw text.
type Literal struct {
	Text string  // canonical text: as written for text, strconv 'g' -1 for a number
	Num  bool    // the literal is a number
	F    float64 // the number, when Num
}

// NumberLiteral is the literal for a number.
func NumberLiteral(f float64) Literal { return Literal{Text: formatNumber(f), Num: true, F: f + 0} }

// TextLiteral is the literal for text.
func TextLiteral(s string) Literal { return Literal{Text: s} }

func (l Literal) check() error {
	if l.Num {
		if !finite(l.F) {
			return errors.New("must be a finite number")
		}
		return nil
	}
	return checkText(l.Text)
}

// MarshalJSON writes a number as a JSON number and text as a JSON string.
func (l Literal) MarshalJSON() ([]byte, error) {
	if l.Num {
		return json.Marshal(l.F)
	}
	return json.Marshal(l.Text)
}

// UnmarshalJSON reads a JSON number or string; anything else is refused.
func (l *Literal) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = TextLiteral(s)
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || !json.Valid(b) {
		return fmt.Errorf("want a number or a string, got %.40s", b)
	}
	*l = NumberLiteral(f)
	return nil
}

// MarshalJSON writes one literal, or a list for op in.
func (o Operand) MarshalJSON() ([]byte, error) {
	if o.List {
		items := o.Items
		if items == nil {
			items = []Literal{}
		}
		return json.Marshal(items)
	}
	if len(o.Items) == 0 {
		return []byte("null"), nil
	}
	return json.Marshal(o.Items[0])
}

// UnmarshalJSON reads a number, a string or a list of them.
func (o *Operand) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*o = Operand{}
		return nil
	case len(b) > 0 && b[0] == '[':
		var items []Literal
		if err := json.Unmarshal(b, &items); err != nil {
			return err
		}
		*o = Operand{List: true, Items: items}
		return nil
	}
	var l Literal
	if err := l.UnmarshalJSON(b); err != nil {
		return err
	}
	*o = Operand{Items: []Literal{l}}
	return nil
}

// MarshalYAML writes the same shapes as MarshalJSON.
func (o Operand) MarshalYAML() (any, error) {
	conv := func(l Literal) any {
		if l.Num {
			return l.F
		}
		return l.Text
	}
	if o.List {
		out := make([]any, len(o.Items))
		for i, l := range o.Items {
			out[i] = conv(l)
		}
		return out, nil
	}
	if len(o.Items) == 0 {
		return nil, nil
	}
	return conv(o.Items[0]), nil
}
