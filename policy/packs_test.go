package policy

import (
	"context"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// packPolicy is the default policy with a pack's data.json in place of the
// default one: how a site uses a pack.
func packPolicy(t *testing.T, pack string) *Engine {
	t.Helper()
	bs, err := fs.ReadFile(Packs(), pack+"/data.json")
	if err != nil {
		t.Fatal(err)
	}
	files := defaultFiles(t)
	files["data.json"] = &fstest.MapFile{Data: bs}
	e, err := LoadFS(context.Background(), files, ".")
	if err != nil {
		t.Fatalf("default policy with pack %s: %v", pack, err)
	}
	return e
}

func TestPacks(t *testing.T) {
	all, err := fs.ReadDir(Packs(), ".")
	if err != nil {
		t.Fatal(err)
	}
	var entries []fs.DirEntry
	for _, e := range all {
		if e.IsDir() {
			entries = append(entries, e)
		}
	}
	if len(entries) != 3 {
		t.Errorf("%d packs, want 3", len(entries))
	}
	for _, entry := range entries {
		t.Run(entry.Name(), func(t *testing.T) {
			bs, err := fs.ReadFile(Packs(), entry.Name()+"/data.json")
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Note string `json:"_note"`
			}
			if err := json.Unmarshal(bs, &doc); err != nil || !strings.HasPrefix(doc.Note, "Example only, not legal advice.") {
				t.Errorf("_note = %q, %v; want it to start with \"Example only, not legal advice.\"", doc.Note, err)
			}
			if !strings.HasSuffix(entry.Name(), "-example") {
				t.Errorf("pack %s is not labelled an example", entry.Name())
			}
			packPolicy(t, entry.Name())
		})
	}
}

func TestPackDecisions(t *testing.T) {
	personalAbroad := func(site, from, to string) Input {
		in := SampleInput()
		in.Site.Name = site
		in.Site.Jurisdiction = from
		in.Destination.Jurisdiction = to
		in.Job.Features = []string{"age", "ward"}
		in.Job.Privacy.DP = nil
		return in
	}
	tests := []struct {
		pack     string
		in       Input
		allow    bool
		approval bool
		min      int
	}{
		{pack: "eu-gdpr-example", in: personalAbroad("eu/paris", "eu", "us")},
		{pack: "eu-gdpr-example", in: personalAbroad("eu/paris", "eu", "ch"), allow: true, min: 10},
		{pack: "eu-gdpr-example", in: SampleInput(), allow: true, approval: true, min: 20},
		{pack: "us-hipaa-example", in: personalAbroad("us/boston", "us", "eu")},
		{pack: "us-hipaa-example", in: personalAbroad("us/boston", "us", "us"), allow: true, min: 11},
		{pack: "sg-pdpa-example", in: personalAbroad("sg/singapore", "sg", "eu")},
		{pack: "sg-pdpa-example", in: personalAbroad("sg/singapore", "sg", "sg"), allow: true, min: 10},
	}
	engines := map[string]*Engine{}
	for _, tt := range tests {
		if engines[tt.pack] == nil {
			engines[tt.pack] = packPolicy(t, tt.pack)
		}
	}
	for _, tt := range tests {
		t.Run(tt.pack+"/"+tt.in.Site.Jurisdiction+"-to-"+tt.in.Destination.Jurisdiction, func(t *testing.T) {
			d, err := engines[tt.pack].Admission(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tt.allow || d.RequireApproval != tt.approval || (tt.allow && d.Obligations.MinRecords != tt.min) {
				t.Errorf("got %+v, want allow=%v approval=%v min_records=%d", d, tt.allow, tt.approval, tt.min)
			}
		})
	}
}
