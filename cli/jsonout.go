package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The -o json form of an API message, for scripts: proto field names,
// fields in their declared order, unset fields left out (as protojson);
// but enum values by their short name ("SUCCEEDED", not
// "JOB_STATUS_SUCCEEDED"), 64-bit integers as numbers rather than strings,
// and a float that is not a number (an accuracy nobody could score) as
// null rather than "NaN".

// writeProto prints one message as a JSON line.
func writeProto(w io.Writer, m proto.Message) error {
	var buf bytes.Buffer
	if err := encodeMessage(&buf, m.ProtoReflect()); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

func encodeMessage(buf *bytes.Buffer, m protoreflect.Message) error {
	buf.WriteByte('{')
	fields := m.Descriptor().Fields()
	first := true
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		writeString(buf, string(fd.Name()))
		buf.WriteByte(':')
		if err := encodeField(buf, fd, m.Get(fd)); err != nil {
			return fmt.Errorf("field %s: %w", fd.FullName(), err)
		}
	}
	buf.WriteByte('}')
	return nil
}

func encodeField(buf *bytes.Buffer, fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch {
	case fd.IsList():
		l := v.List()
		buf.WriteByte('[')
		for i := range l.Len() {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := encodeScalar(buf, fd, l.Get(i)); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	case fd.IsMap():
		mp := v.Map()
		keys := make([]protoreflect.MapKey, 0, mp.Len())
		mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool { keys = append(keys, k); return true })
		// Sorted, so the output is the same from run to run.
		strs := make([]string, len(keys))
		for i, k := range keys {
			strs[i] = k.String()
		}
		order := make([]int, len(keys))
		for i := range order {
			order[i] = i
		}
		sort.Slice(order, func(a, b int) bool { return strs[order[a]] < strs[order[b]] })
		buf.WriteByte('{')
		for n, i := range order {
			if n > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, strs[i])
			buf.WriteByte(':')
			if err := encodeScalar(buf, fd.MapValue(), mp.Get(keys[i])); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
		return nil
	}
	return encodeScalar(buf, fd, v)
}

func encodeScalar(buf *bytes.Buffer, fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return encodeMessage(buf, v.Message())
	case protoreflect.EnumKind:
		writeString(buf, enumName(fd.Enum(), v.Enum()))
	case protoreflect.BoolKind:
		buf.WriteString(strconv.FormatBool(v.Bool()))
	case protoreflect.StringKind:
		writeString(buf, v.String())
	case protoreflect.BytesKind:
		writeString(buf, base64.StdEncoding.EncodeToString(v.Bytes()))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		buf.WriteString(strconv.FormatInt(v.Int(), 10))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		buf.WriteString(strconv.FormatUint(v.Uint(), 10))
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			buf.WriteString("null")
			return nil
		}
		bits := 64
		if fd.Kind() == protoreflect.FloatKind {
			bits = 32
		}
		buf.WriteString(strconv.FormatFloat(f, 'g', -1, bits))
	default:
		return fmt.Errorf("kind %s has no JSON form here", fd.Kind())
	}
	return nil
}

// enumName is a value's name without its enum's prefix: JOB_STATUS_ for
// JobStatus, OUTCOME_ for Outcome. A number the descriptor does not know
// is printed as its number, in a string.
func enumName(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) string {
	vd := ed.Values().ByNumber(n)
	if vd == nil {
		return strconv.Itoa(int(n))
	}
	return strings.TrimPrefix(string(vd.Name()), upperSnake(string(ed.Name()))+"_")
}

// upperSnake turns JobStatus into JOB_STATUS.
func upperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// writeString writes s as a JSON string, leaving <, > and & as they are.
func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // a string always encodes
	buf.Truncate(buf.Len() - 1) // Encode's newline
}
