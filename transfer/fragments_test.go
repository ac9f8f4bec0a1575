package transfer

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

func TestFragmentsRoundTrip(t *testing.T) {
	big := &federav1.TaskResult{TaskId: "t", Sum: make([]float64, federav1.MaxWholeMessageBytes/8+1)}
	for i := range big.Sum {
		big.Sum[i] = float64(i)
	}
	frags, err := SplitMessage("m1", big, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(frags) < 3 {
		t.Fatalf("%d fragments for a %d-byte message", len(frags), proto.Size(big))
	}
	r := NewReassembler(0)
	// Another message's fragments come between this one's.
	other := Fragments("m2", []byte("other"), 2)
	var whole []byte
	for i, f := range frags {
		if proto.Size(f) > federav1.MaxChunkBytes+64 {
			t.Fatalf("fragment %d is %d bytes", i, proto.Size(f))
		}
		if i < len(other) {
			if b, err := r.Add(other[i]); err != nil || (b != nil) != other[i].GetLast() {
				t.Fatalf("other fragment %d: %q, %v", i, b, err)
			} else if b != nil && string(b) != "other" {
				t.Fatalf("other message: %q", b)
			}
		}
		b, err := r.Add(f)
		if err != nil {
			t.Fatal(err)
		}
		if (b != nil) != f.GetLast() {
			t.Fatalf("fragment %d: whole message %t, last %t", i, b != nil, f.GetLast())
		}
		whole = b
	}
	var got federav1.TaskResult
	if err := proto.Unmarshal(whole, &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, big) {
		t.Fatal("the joined message differs from the one split")
	}
	if r.Held() != 0 {
		t.Fatalf("%d bytes still held", r.Held())
	}
	if f, _ := SplitMessage("small", &federav1.TaskResult{TaskId: "t"}, 0); f != nil {
		t.Fatalf("a small message was split: %d fragments", len(f))
	}
}

func TestReassemblerRefuses(t *testing.T) {
	cases := []struct {
		name  string
		frags []*federav1.Fragment
		want  string
	}{
		{"out of order", []*federav1.Fragment{{Id: "a", Data: []byte("12")}, {Id: "a", Offset: 5, Data: []byte("3")}}, "want 2"},
		{"over the limit", []*federav1.Fragment{{Id: "a", Data: bytes.Repeat([]byte("x"), 60)}, {Id: "b", Data: bytes.Repeat([]byte("x"), 60)}}, "exceed 100 bytes"},
		{"starts late", []*federav1.Fragment{{Id: "a", Offset: 1, Data: []byte("x"), Last: true}}, "want 0"},
	}
	for _, c := range cases {
		r := NewReassembler(100)
		var err error
		for _, f := range c.frags {
			if _, err = r.Add(f); err != nil {
				break
			}
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error with %q", c.name, err, c.want)
		}
	}
	r := NewReassembler(0)
	for i := range MaxOpenMessages {
		if _, err := r.Add(&federav1.Fragment{Id: string(rune('A' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Add(&federav1.Fragment{Id: "one too many"}); err == nil || !strings.Contains(err.Error(), "partly received") {
		t.Fatalf("message %d open at once: %v", MaxOpenMessages+1, err)
	}
}
