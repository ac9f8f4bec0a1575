package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// idxBytes is an IDX file: magic, big-endian dims, body.
func idxBytes(magic uint32, dims []uint32, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, magic)
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return append(b, body...)
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pair3 is three 2×3 images (pixel k of image i is 10·i+k) with labels 2, 0, 2.
var (
	pair3Images = idxBytes(idxImagesMagic, []uint32{3, 2, 3}, []byte{
		0, 1, 2, 3, 4, 5,
		10, 11, 12, 13, 14, 15,
		20, 21, 22, 23, 24, 255,
	})
	pair3Labels = idxBytes(idxLabelsMagic, []uint32{3}, []byte{2, 0, 2})
)

func TestIDXRoundTrip(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "gzip"}[gz], func(t *testing.T) {
			dir := t.TempDir()
			im, lb := pair3Images, pair3Labels
			if gz {
				im, lb = gzipped(t, im), gzipped(t, lb)
			}
			src := Source{Format: "idx", Path: writeFile(t, dir, "img.gz", im), Labels: writeFile(t, dir, "lab.gz", lb)}

			want := []string{"px0_0", "px0_1", "px0_2", "px1_0", "px1_1", "px1_2", "label"}
			h, err := src.Header()
			if err != nil || !slices.Equal(h, want) {
				t.Fatalf("Header = %v, %v; want %v", h, err, want)
			}

			tab, err := src.Load(Options{Label: "label"})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tab.Features, want[:6]) || !slices.Equal(tab.Labels, []string{"2", "0", "2"}) {
				t.Fatalf("features %v labels %v", tab.Features, tab.Labels)
			}
			if got := tab.X.At(2, 5); got != 255 {
				t.Errorf("X[2][5] = %v, want 255", got)
			}
			if got := tab.X.At(1, 3); got != 13 {
				t.Errorf("X[1][3] = %v, want 13", got)
			}
			if tab.Bytes != int64(len(im)+len(lb)) {
				t.Errorf("Bytes = %d, want %d", tab.Bytes, len(im)+len(lb))
			}

			// Requested features, in the requested order, matched exactly.
			tab, err = src.Load(Options{Label: "label", Features: []string{"px1_2", "px0_0"}})
			if err != nil {
				t.Fatal(err)
			}
			if r, c := tab.X.Dims(); r != 3 || c != 2 || tab.X.At(1, 0) != 15 || tab.X.At(1, 1) != 10 {
				t.Errorf("X = %v", tab.X)
			}

			named := src
			named.Classes = FashionMNISTClasses
			tab, err = named.Load(Options{Label: "label", Features: []string{"px0_1"}})
			if err != nil || !slices.Equal(tab.Labels, []string{"Pullover", "T-shirt/top", "Pullover"}) {
				t.Fatalf("named labels %v, %v", tab.Labels, err)
			}
			counts, trunc, err := named.ValueCounts("label", 0)
			if err != nil || trunc || len(counts) != 2 || counts["Pullover"] != 2 || counts["T-shirt/top"] != 1 {
				t.Fatalf("ValueCounts(label) = %v %v %v", counts, trunc, err)
			}
			counts, trunc, err = src.ValueCounts("px0_0", 2)
			if err != nil || !trunc || len(counts) != 2 || counts["0"] != 1 || counts["10"] != 1 {
				t.Fatalf("ValueCounts(px0_0, limit 2) = %v %v %v", counts, trunc, err)
			}
		})
	}
}

func TestIDXColumnsMatchExactly(t *testing.T) {
	dir := t.TempDir()
	src := Source{Format: "idx", Path: writeFile(t, dir, "i", pair3Images), Labels: writeFile(t, dir, "l", pair3Labels)}
	for _, opts := range []Options{
		{Label: "Label"},
		{Label: " label"},
		{Label: "label", Features: []string{"px0_0 "}},
		{Label: "label", Features: []string{"PX0_0"}},
		{Label: "label", Features: []string{"px2_0"}},
		{Label: "label", Features: []string{"px0_0", "px0_0"}},
		{Label: "label", Features: []string{"label"}},
		{},
	} {
		if _, err := src.Load(opts); err == nil {
			t.Errorf("Load(%+v) succeeded; want an error", opts)
		}
	}
	if _, _, err := src.ValueCounts("Label", 0); err == nil {
		t.Error("ValueCounts(Label) succeeded; want column not in the header")
	}
}

func TestIDXErrors(t *testing.T) {
	body := func(n int) []byte { return make([]byte, n) }
	tests := []struct {
		name           string
		images, labels []byte
		classes        []string
		wantFile, want string // wantFile: "images" or "labels"
	}{
		{"bad images magic", idxBytes(0x00000801, []uint32{3, 2, 3}, body(18)), pair3Labels, nil, "images", "bad magic number 0x00000801"},
		{"labels file as images", pair3Labels, pair3Images, nil, "images", "bad magic number"},
		{"bad labels magic", pair3Images, idxBytes(0x00000803, []uint32{3}, body(3)), nil, "labels", "bad magic number 0x00000803"},
		{"float images", idxBytes(0x00000d03, []uint32{3, 2, 3}, body(18)), pair3Labels, nil, "images", "bad magic"},
		{"empty images", nil, pair3Labels, nil, "images", "truncated: the file ends in the header"},
		{"truncated header", idxBytes(idxImagesMagic, []uint32{3, 2}, nil), pair3Labels, nil, "images", "truncated: the file ends in the header"},
		{"truncated images", pair3Images[:len(pair3Images)-1], pair3Labels, nil, "images", "truncated: the file ends in image 3 of the 3"},
		{"truncated labels", pair3Images, pair3Labels[:len(pair3Labels)-1], nil, "labels", "truncated: the file ends in label 3 of the 3"},
		{"trailing images", append(slices.Clone(pair3Images), 7), pair3Labels, nil, "images", "trailing bytes after the 3 records"},
		{"count mismatch", pair3Images, idxBytes(idxLabelsMagic, []uint32{4}, body(4)), nil, "labels", "holds 4 labels but img holds 3 images"},
		{"no pixels", idxBytes(idxImagesMagic, []uint32{3, 0, 3}, nil), pair3Labels, nil, "images", "no pixels"},
		{"no images", idxBytes(idxImagesMagic, []uint32{0, 2, 3}, nil), idxBytes(idxLabelsMagic, []uint32{0}, nil), nil, "images", "no images"},
		// A 16-byte header claiming 4 GB of pixels is refused before
		// anything is allocated or read.
		{"huge count", idxBytes(idxImagesMagic, []uint32{0xffffffff, 28, 28}, nil), pair3Labels, nil, "images", "more than 1000000000 bytes of pixels; refusing"},
		{"huge dims", idxBytes(idxImagesMagic, []uint32{1, 0xffffffff, 0xffffffff}, nil), pair3Labels, nil, "images", "more than 65536 pixels each"},
		{"label without a class name", pair3Images, pair3Labels, []string{"a", "b"}, "labels", "label 2 of record 1 has no class name"},
		{"bad gzip", []byte{0x1f, 0x8b, 1, 2}, pair3Labels, nil, "images", "bad gzip header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := Source{Format: "idx", Path: writeFile(t, dir, "img", tc.images), Labels: writeFile(t, dir, "lab", tc.labels), Classes: tc.classes}
			want := map[string]string{"images": src.Path, "labels": src.Labels}[tc.wantFile]
			_, err := src.Load(Options{Label: "label"})
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("Load error %T %v; want *Error", err, err)
			}
			if de.Path != want || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load error %q; want it to name %s and say %q", err, want, tc.want)
			}
		})
	}
}

func TestSourceFormats(t *testing.T) {
	csv := writeCSV(t, "a,label\n1,x\n2,y\n2,y\n")
	for _, format := range []string{"", "csv"} {
		src := Source{Format: format, Path: csv}
		if h, err := src.Header(); err != nil || !slices.Equal(h, []string{"a", "label"}) {
			t.Errorf("format %q: Header = %v, %v", format, h, err)
		}
		if c, _, err := src.ValueCounts("label", 0); err != nil || c["y"] != 2 {
			t.Errorf("format %q: ValueCounts = %v, %v", format, c, err)
		}
		if tab, err := src.Load(Options{Label: "label"}); err != nil || tab.Rows() != 3 {
			t.Errorf("format %q: Load = %v", format, err)
		}
	}
	_, err := Source{Format: "xlsx", Path: csv}.Load(Options{Label: "label"})
	if err == nil || !strings.Contains(err.Error(), `format "xlsx" is not supported; valid: csv, idx, parquet, postgres`) {
		t.Errorf("xlsx: %v", err)
	}
	if _, err := (Source{Format: "idx", Path: csv}).Header(); err == nil || !strings.Contains(err.Error(), "needs a labels file") {
		t.Errorf("idx without labels: %v", err)
	}
}

func FuzzLoadIDX(f *testing.F) {
	f.Add(pair3Images, pair3Labels)
	f.Add(gzipped(f, pair3Images), gzipped(f, pair3Labels))
	f.Add(idxBytes(idxImagesMagic, []uint32{1, 1, 1}, []byte{9}), idxBytes(idxLabelsMagic, []uint32{1}, []byte{1}))
	f.Add(idxBytes(idxImagesMagic, []uint32{0xffffffff, 28, 28}, nil), pair3Labels)
	f.Add(pair3Images[:20], pair3Labels[:9])
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, images, labels []byte) {
		src := Source{Format: "idx", Path: writeFile(t, dir, "img", images), Labels: writeFile(t, dir, "lab", labels), Classes: FashionMNISTClasses[:5]}
		tab, err := src.Load(Options{Label: "label"})
		if err != nil {
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("error %T %q is not a *dataset.Error", err, err)
			}
			if de.Path != src.Path && de.Path != src.Labels {
				t.Fatalf("error %q names neither file", err)
			}
			return
		}
		r, c := tab.X.Dims()
		if r != tab.Rows() || c != len(tab.Features) || r == 0 {
			t.Fatalf("table %d×%d with %d labels and %d features", r, c, tab.Rows(), len(tab.Features))
		}
		counts, _, err := src.ValueCounts("label", 0)
		if err != nil {
			t.Fatalf("Load succeeded but ValueCounts failed: %v", err)
		}
		n := 0
		for _, k := range counts {
			n += k
		}
		if n != r {
			t.Fatalf("ValueCounts sums to %d, table has %d rows", n, r)
		}
	})
}
