package models

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

// FuzzReadSafetensors checks that arbitrary bytes never panic the model
// reader, and that anything it accepts is valid and survives a rewrite.
func FuzzReadSafetensors(f *testing.F) {
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, testModel()); err != nil {
		f.Fatal(err)
	}
	good := buf.Bytes()
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:8])
	f.Add([]byte{})
	bigLen := bytes.Clone(good)
	binary.LittleEndian.PutUint64(bigLen, 1<<62)
	f.Add(bigLen)

	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ReadSafetensors(bytes.NewReader(b))
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted model fails Validate: %v", err)
		}
		var out bytes.Buffer
		if err := WriteSafetensors(&out, m); err != nil {
			t.Fatalf("accepted model cannot be rewritten: %v", err)
		}
		again, err := ReadSafetensors(&out)
		if err != nil {
			t.Fatalf("rewritten model unreadable: %v", err)
		}
		if !reflect.DeepEqual(again, m) {
			t.Fatalf("rewrite changed the model")
		}
	})
}

// FuzzDecodeWeights checks that arbitrary bytes never panic the weights
// decoder and that decoded tensors are internally consistent.
func FuzzDecodeWeights(f *testing.F) {
	b, err := EncodeWeights(NewLogReg(3, 2))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := DecodeWeights(b)
		if err != nil {
			return
		}
		for name, tensor := range w {
			n, err := numElements(tensor.Shape)
			if err != nil || n != len(tensor.Data) || tensor.Name != name {
				t.Fatalf("tensor %q inconsistent: shape %v, %d values", name, tensor.Shape, len(tensor.Data))
			}
		}
	})
}
