package auditlog

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCanonicalRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 0, 0, 500, time.FixedZone("CET", 3600))
	for i := range 8 {
		e := sampleEntry(t, i, "")
		e.Time = at
		t.Run(e.Type, func(t *testing.T) {
			b, err := e.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseEntry(b)
			if err != nil {
				t.Fatalf("ParseEntry(%s): %v", b, err)
			}
			if !got.Time.Equal(at) || got.Time.Location() != time.UTC {
				t.Errorf("time %v, want %v in UTC", got.Time, at)
			}
			again, err := got.Canonical()
			if err != nil || string(again) != string(b) {
				t.Errorf("re-encoded %s, want %s (err %v)", again, b, err)
			}
			// The typed payload survives the trip.
			want := reflect.New(reflect.TypeOf(payloadFor(t, i))).Interface().(Payload)
			if err := got.Decode(want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(reflect.ValueOf(want).Elem().Interface(), payloadFor(t, i)) {
				t.Errorf("decoded %+v, want %+v", want, payloadFor(t, i))
			}
		})
	}
}

// payloadFor recovers the payload sampleEntry used, by decoding it into
// the struct its type names.
func payloadFor(t *testing.T, i int) Payload {
	e := sampleEntry(t, i, "")
	var p Payload
	switch e.Type {
	case TypeJobSubmitted:
		p = &JobSubmitted{}
	case TypeAdmission:
		p = &Admission{}
	case TypeApproval:
		p = &Approval{}
	case TypeRound:
		p = &Round{}
	case TypeEgress:
		p = &Egress{}
	case TypeDPSpent:
		p = &DPSpent{}
	case TypeJobEnd:
		p = &JobEnd{}
	case TypeModelRelease:
		p = &ModelRelease{}
	}
	if err := e.Decode(p); err != nil {
		t.Fatal(err)
	}
	return reflect.ValueOf(p).Elem().Interface().(Payload)
}

func TestCanonicalForm(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 0, 0, 120000000, time.UTC)
	tests := []struct {
		name string
		e    Entry
		want string
	}{
		{"sorted keys, empty fields omitted",
			Entry{Type: "job_end", Time: at, Job: "j", Data: map[string]any{"z": 1, "a": "x<y", "m": map[string]any{"b": true, "a": nil}}},
			`{"data":{"a":"x<y","m":{"a":null,"b":true},"z":1},"job":"j","time":"2026-03-01T10:00:00.12Z","type":"job_end"}`},
		{"numbers have one spelling",
			Entry{Type: "egress", Time: at, Data: map[string]any{"f": 1.0, "g": 0.1, "h": json.Number("1e3"), "i": int64(math.MaxInt64), "j": 1e20, "k": -0.0, "l": json.Number("2.50")}},
			`{"data":{"f":1,"g":0.1,"h":1000,"i":9223372036854775807,"j":1e+20,"k":0,"l":2.5},"time":"2026-03-01T10:00:00.12Z","type":"egress"}`},
		{"structs become sorted objects",
			Entry{Type: "round", Time: at, Data: map[string]any{"s": struct{ B, A int }{2, 1}}},
			`{"data":{"s":{"A":1,"B":2}},"time":"2026-03-01T10:00:00.12Z","type":"round"}`},
		{"empty data is omitted",
			Entry{Type: "approval", Time: at, Data: map[string]any{}},
			`{"time":"2026-03-01T10:00:00.12Z","type":"approval"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.e.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
			if _, err := ParseEntry(b); err != nil {
				t.Errorf("ParseEntry of canonical bytes: %v", err)
			}
		})
	}
}

func TestCanonicalRefuses(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		e    Entry
		want string
	}{
		{"zero time", Entry{Type: "job_end"}, "time is zero"},
		{"empty type", Entry{Time: at}, "type is empty"},
		{"type not an identifier", Entry{Type: "Job End", Time: at}, "lower-case"},
		{"NaN", Entry{Type: "dp_spent", Time: at, Data: map[string]any{"e": math.NaN()}}, "unsupported value"},
		{"uint64 beyond int64", Entry{Type: "egress", Time: at, Data: map[string]any{"b": uint64(math.MaxUint64)}}, "out of int64 range"},
		{"data values", Entry{Type: "egress", Time: at, Data: map[string]any{"rows": strings.Repeat("x", MaxEntrySize)}}, "exceeds MaxEntrySize"},
		{"year 10000", Entry{Type: "job_end", Time: at.AddDate(8000, 0, 0)}, "outside years"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.e.Canonical()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestParseEntryRejectsNonCanonical(t *testing.T) {
	const good = `{"actor":"a","data":{"n":1,"s":"x"},"job":"j","time":"2026-03-01T10:00:00Z","type":"job_end"}`
	if _, err := ParseEntry([]byte(good)); err != nil {
		t.Fatalf("the canonical form itself: %v", err)
	}
	tests := []struct{ name, in string }{
		{"whitespace", `{"actor":"a", "data":{"n":1,"s":"x"},"job":"j","time":"2026-03-01T10:00:00Z","type":"job_end"}`},
		{"trailing newline", good + "\n"},
		{"key order", `{"data":{"n":1,"s":"x"},"actor":"a","job":"j","time":"2026-03-01T10:00:00Z","type":"job_end"}`},
		{"nested key order", `{"actor":"a","data":{"s":"x","n":1},"job":"j","time":"2026-03-01T10:00:00Z","type":"job_end"}`},
		{"time zone offset", `{"actor":"a","data":{"n":1,"s":"x"},"job":"j","time":"2026-03-01T11:00:00+01:00","type":"job_end"}`},
		{"time trailing zeros", `{"actor":"a","data":{"n":1,"s":"x"},"job":"j","time":"2026-03-01T10:00:00.000Z","type":"job_end"}`},
		{"number spelling", `{"actor":"a","data":{"n":1.0,"s":"x"},"job":"j","time":"2026-03-01T10:00:00Z","type":"job_end"}`},
		{"duplicate key", `{"actor":"a","data":{"n":1,"n":1,"s":"x"},"job":"j","time":"2026-03-01T10:00:00Z","type":"job_end"}`},
		{"escaped letter", `{"actor":"\u0061","data":{"n":1,"s":"x"},"job":"j","time":"2026-03-01T10:00:00Z","type":"job_end"}`},
		{"unknown field", `{"actor":"a","data":{"n":1,"s":"x"},"extra":1,"job":"j","time":"2026-03-01T10:00:00Z","type":"job_end"}`},
		{"field name case", `{"Actor":"a","data":{"n":1,"s":"x"},"job":"j","time":"2026-03-01T10:00:00Z","type":"job_end"}`},
		{"empty field present", `{"actor":"","data":{"n":1,"s":"x"},"job":"j","time":"2026-03-01T10:00:00Z","type":"job_end"}`},
		{"two objects", good + good},
		{"invalid UTF-8", "{\"actor\":\"\xff\",\"job\":\"j\",\"time\":\"2026-03-01T10:00:00Z\",\"type\":\"job_end\"}"},
		{"not an object", `[1]`},
		{"empty", ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e, err := ParseEntry([]byte(tt.in)); err == nil {
				t.Fatalf("accepted %s as %+v", tt.in, e)
			}
		})
	}
}

func TestDecodeChecksType(t *testing.T) {
	e, err := NewEntry("j", "s", "a", Egress{Kind: "metrics", Bytes: 10, Decision: "allow"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Decode(&Admission{}); err == nil {
		t.Fatal("decoded an egress entry as an admission")
	}
}
