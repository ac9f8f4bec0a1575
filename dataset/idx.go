package dataset

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/gonum/mat"
)

// IDX is the MNIST file format: an images file (magic 0x00000803: unsigned
// bytes, three big-endian uint32 dimensions n × rows × cols, then the
// pixels) and a labels file (magic 0x00000801: n, then one byte per image),
// either optionally gzip-compressed. A Source of format "idx" reads them as
// a table with columns px<row>_<col> (row-major, pixel values 0–255) and
// IDXLabel.
const (
	IDXLabel = "label"

	idxImagesMagic = 0x00000803
	idxLabelsMagic = 0x00000801

	// maxIDXBytes bounds n·rows·cols before anything is allocated: a
	// header is a claim, and a few bytes must not make us reserve gigabytes.
	maxIDXBytes = 1_000_000_000
	// maxIDXPixels bounds rows·cols, i.e. the number of feature columns.
	maxIDXPixels = 1 << 16
)

// FashionMNISTClasses are the Fashion-MNIST class names for label values
// 0–9 (github.com/zalandoresearch/fashion-mnist, "Labels").
var FashionMNISTClasses = []string{
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

var decimal = func() (d [256]string) {
	for i := range d {
		d[i] = strconv.Itoa(i)
	}
	return d
}()

// idxFile is one open IDX file, decompressed if it was gzip'd.
type idxFile struct {
	path string
	f    *os.File
	r    *bufio.Reader
	size int64
}

func openIDXFile(path string) (*idxFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileError(path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fileError(path, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, &Error{Path: path, Msg: "is a directory, not an IDX file"}
	}
	br := bufio.NewReaderSize(f, 1<<16)
	r := br
	// IDX magic numbers start with two zero bytes, so gzip's 1f 8b is
	// unambiguous whatever the file is called.
	if b, err := br.Peek(2); err == nil && b[0] == 0x1f && b[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, &Error{Path: path, Msg: "bad gzip header: " + err.Error(), Err: err}
		}
		r = bufio.NewReaderSize(gz, 1<<16)
	}
	return &idxFile{path: path, f: f, r: r, size: st.Size()}, nil
}

func (x *idxFile) Close() error { return x.f.Close() }

// readErr describes a failed read of what: a short read is a truncated file.
func (x *idxFile) readErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Path: x.path, Msg: "truncated: the file ends in " + what, Err: err}
	}
	return &Error{Path: x.path, Msg: "cannot read " + what + ": " + err.Error(), Err: err}
}

// readHeader checks the magic number (unsigned bytes, ndims dimensions) and
// returns the dimensions.
func (x *idxFile) readHeader(magic uint32, what string) ([]int, error) {
	ndims := int(magic & 0xff)
	buf := make([]byte, 4*ndims)
	if _, err := io.ReadFull(x.r, buf[:4]); err != nil {
		return nil, x.readErr(err, "the header")
	}
	if got := binary.BigEndian.Uint32(buf); got != magic {
		return nil, &Error{Path: x.path, Msg: fmt.Sprintf(
			"bad magic number 0x%08x: an IDX %s file starts with 0x%08x (unsigned bytes, %d dimensions)", got, what, magic, ndims)}
	}
	if _, err := io.ReadFull(x.r, buf); err != nil {
		return nil, x.readErr(err, "the header")
	}
	dims := make([]int, ndims)
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(buf[4*i:]))
	}
	return dims, nil
}

// atEnd checks that nothing follows the records the header declared (and,
// for gzip, that the checksum holds: it is checked at the end).
func (x *idxFile) atEnd(n int) error {
	switch _, err := x.r.ReadByte(); {
	case err == io.EOF:
		return nil
	case err != nil:
		return &Error{Path: x.path, Msg: "cannot read: " + err.Error(), Err: err}
	}
	return &Error{Path: x.path, Msg: fmt.Sprintf("trailing bytes after the %d records the header declares", n)}
}

// idxPair is an images file and its labels file, headers read and checked.
type idxPair struct {
	images, labels *idxFile
	n, rows, cols  int
	pix            []byte
}

func openIDX(s Source) (*idxPair, error) {
	if s.Labels == "" {
		return nil, &Error{Path: s.Path, Msg: "format idx needs a labels file beside the images file"}
	}
	if len(s.Classes) > 256 {
		return nil, &Error{Path: s.Labels, Msg: fmt.Sprintf("%d class names given; a label is one byte, so at most 256", len(s.Classes))}
	}
	im, err := openIDXFile(s.Path)
	if err != nil {
		return nil, err
	}
	p := &idxPair{images: im}
	if err := p.open(s); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *idxPair) open(s Source) error {
	dims, err := p.images.readHeader(idxImagesMagic, "images")
	if err != nil {
		return err
	}
	p.n, p.rows, p.cols = dims[0], dims[1], dims[2]
	switch {
	case p.rows == 0 || p.cols == 0:
		return &Error{Path: s.Path, Msg: fmt.Sprintf("images are %d×%d: no pixels", p.rows, p.cols)}
	case p.rows > maxIDXPixels || p.cols > maxIDXPixels || p.rows*p.cols > maxIDXPixels:
		return &Error{Path: s.Path, Msg: fmt.Sprintf("images are %d×%d: more than %d pixels each", p.rows, p.cols, maxIDXPixels)}
	case p.n > maxIDXBytes/(p.rows*p.cols):
		return &Error{Path: s.Path, Msg: fmt.Sprintf("%d images of %d×%d is more than %d bytes of pixels; refusing to load", p.n, p.rows, p.cols, maxIDXBytes)}
	case p.n == 0:
		return &Error{Path: s.Path, Msg: "no images: the header declares 0"}
	}
	if p.labels, err = openIDXFile(s.Labels); err != nil {
		return err
	}
	dims, err = p.labels.readHeader(idxLabelsMagic, "labels")
	if err != nil {
		return err
	}
	if dims[0] != p.n {
		return &Error{Path: s.Labels, Msg: fmt.Sprintf("holds %d labels but %s holds %d images; want one label per image",
			dims[0], filepath.Base(s.Path), p.n)}
	}
	p.pix = make([]byte, p.rows*p.cols)
	return nil
}

func (p *idxPair) Close() {
	p.images.Close()
	if p.labels != nil {
		p.labels.Close()
	}
}

// next reads record i (0-based): its pixels into p.pix when images, and
// its label byte.
func (p *idxPair) next(i int, images bool) (byte, error) {
	if images {
		if _, err := io.ReadFull(p.images.r, p.pix); err != nil {
			return 0, p.images.readErr(err, fmt.Sprintf("image %d of the %d the header declares", i+1, p.n))
		}
	}
	b, err := p.labels.r.ReadByte()
	if err != nil {
		return 0, p.labels.readErr(err, fmt.Sprintf("label %d of the %d the header declares", i+1, p.n))
	}
	return b, nil
}

func (p *idxPair) atEnd(images bool) error {
	if images {
		if err := p.images.atEnd(p.n); err != nil {
			return err
		}
	}
	return p.labels.atEnd(p.n)
}

// columns is the table's header: the pixels row-major, then the label.
func (p *idxPair) columns() []string {
	h := make([]string, 0, p.rows*p.cols+1)
	for r := range p.rows {
		for c := range p.cols {
			h = append(h, "px"+strconv.Itoa(r)+"_"+strconv.Itoa(c))
		}
	}
	return append(h, IDXLabel)
}

// className is the label value of label byte b of record i.
func className(s Source, b byte, i int) (string, error) {
	if len(s.Classes) == 0 {
		return decimal[b], nil
	}
	if int(b) >= len(s.Classes) {
		return "", &Error{Path: s.Labels, Column: IDXLabel, Msg: fmt.Sprintf(
			"label %d of record %d has no class name; %d names are given (values 0–%d)", b, i+1, len(s.Classes), len(s.Classes)-1)}
	}
	return s.Classes[b], nil
}

// idxFormat reads an IDX images file and its labels file.
type idxFormat struct{}

func (idxFormat) load(s Source, opts Options) (*Table, error) {
	p, err := openIDX(s)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	labelIdx, featIdx, features, err := resolveColumns(s.Path, 0, p.columns(), opts)
	if err != nil {
		return nil, err
	}
	npix := p.rows * p.cols
	t := &Table{Path: s.Path, Features: features, Bytes: p.images.size + p.labels.size, Labels: make([]string, 0, min(p.n, 1<<16))}
	// Grow as records arrive rather than trusting the header's count: a
	// truncated file then fails having allocated what it holds, no more.
	data := make([]float64, 0, min(p.n*len(features), 1<<20))
	for i := range p.n {
		b, err := p.next(i, true)
		if err != nil {
			return nil, err
		}
		var label string
		if labelIdx == npix {
			if label, err = className(s, b, i); err != nil {
				return nil, err
			}
		} else {
			label = decimal[p.pix[labelIdx]]
		}
		for _, j := range featIdx {
			switch {
			case j < npix:
				data = append(data, float64(p.pix[j]))
			case len(s.Classes) == 0:
				data = append(data, float64(b))
			default:
				return nil, &Error{Path: s.Labels, Column: IDXLabel, Msg: "holds class names, not numbers; it cannot be a feature"}
			}
		}
		t.Labels = append(t.Labels, label)
	}
	if err := p.atEnd(true); err != nil {
		return nil, err
	}
	t.X = mat.NewDense(p.n, len(features), data)
	return t, nil
}

func (idxFormat) header(s Source) ([]string, error) {
	p, err := openIDX(s)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return p.columns(), nil
}

func (idxFormat) valueCounts(s Source, column string, limit int) (map[string]int, bool, error) {
	p, err := openIDX(s)
	if err != nil {
		return nil, false, err
	}
	defer p.Close()
	col := -1
	for j, c := range p.columns() {
		if c == column {
			col = j
		}
	}
	if col < 0 {
		return nil, false, &Error{Path: s.Path, Column: column, Msg: "column not in the header"}
	}
	npix := p.rows * p.cols
	images := col < npix // the label column needs only the labels file
	counts := map[string]int{}
	truncated := false
	for i := range p.n {
		b, err := p.next(i, images)
		if err != nil {
			return nil, false, err
		}
		var v string
		if images {
			v = decimal[p.pix[col]]
		} else if v, err = className(s, b, i); err != nil {
			return nil, false, err
		}
		if _, ok := counts[v]; !ok && limit > 0 && len(counts) >= limit {
			truncated = true
			continue
		}
		counts[v]++
	}
	if err := p.atEnd(images); err != nil {
		return nil, false, err
	}
	return counts, truncated, nil
}
