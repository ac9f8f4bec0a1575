// Command split-idx splits an IDX image data set (Fashion-MNIST, from
// Debian's dataset-fashion-mnist) into ten label-skewed sites for
// federated-learning runs at scale, plus the untouched test set:
//
//	go run ./scripts/split-idx --in .cache/data/deb/usr/share/datasets/fashion-mnist \
//	    --out data/fashion-mnist --seed 2017 --alpha 0.5
//
// writes <out>/<jurisdiction>-<site>/train-{images-idx3,labels-idx1}-ubyte.gz
// for each site and copies t10k-* to <out>/test/ unchanged (`make data`).
//
// For each class, the site shares are drawn from a symmetric Dirichlet(α)
// over the ten sites, and the class's images, in a seeded shuffle, are
// dealt out in those shares (largest-remainder rounding), so every image is
// at exactly one site. Each site keeps its images in source order.
//
// The randomness is a PCG stream (math/rand/v2, whose output is specified)
// turned into uniforms, normals and gammas here rather than by library
// methods, so the split does not change with the Go release.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// sites are the ten sites, <jurisdiction>-<site>.
var sites = []string{
	"eu-paris", "us-boston", "sg-singapore", "eu-berlin", "us-chicago",
	"eu-madrid", "us-seattle", "sg-jurong", "eu-milan", "us-denver",
}

var classes = []string{
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

func main() {
	in := flag.String("in", "", "directory holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz and t10k-*")
	out := flag.String("out", "data/fashion-mnist", "output directory")
	seed := flag.Uint64("seed", 2017, "seed of the split")
	alpha := flag.Float64("alpha", 0.5, "Dirichlet concentration (smaller: more skew)")
	flag.Parse()
	if err := run(*in, *out, *seed, *alpha, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "split-idx:", err)
		os.Exit(1)
	}
}

func run(in, out string, seed uint64, alpha float64, w io.Writer) error {
	if in == "" {
		return fmt.Errorf("--in is required")
	}
	imgHdr, pixels, err := readIDX(filepath.Join(in, "train-images-idx3-ubyte.gz"), 0x00000803)
	if err != nil {
		return err
	}
	_, labels, err := readIDX(filepath.Join(in, "train-labels-idx1-ubyte.gz"), 0x00000801)
	if err != nil {
		return err
	}
	n := len(labels)
	if int(imgHdr[0]) != n {
		return fmt.Errorf("%d images but %d labels", imgHdr[0], n)
	}
	size := int(imgHdr[1] * imgHdr[2])

	assign := split(labels, len(sites), len(classes), seed, alpha)
	counts := make([][]int, len(sites))
	for s, site := range sites {
		counts[s] = make([]int, len(classes))
		var img, lab []byte
		for _, i := range assign[s] {
			img = append(img, pixels[i*size:(i+1)*size]...)
			lab = append(lab, labels[i])
			counts[s][labels[i]]++
		}
		m := uint32(len(assign[s]))
		dir := filepath.Join(out, site)
		if err := writeIDX(filepath.Join(dir, "train-images-idx3-ubyte.gz"), 0x00000803, []uint32{m, imgHdr[1], imgHdr[2]}, img); err != nil {
			return err
		}
		if err := writeIDX(filepath.Join(dir, "train-labels-idx1-ubyte.gz"), 0x00000801, []uint32{m}, lab); err != nil {
			return err
		}
	}
	for _, f := range []string{"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"} {
		b, err := os.ReadFile(filepath.Join(in, f))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(out, "test"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, "test", f), b, 0o644); err != nil {
			return err
		}
	}
	printCounts(w, counts)
	return nil
}

// split deals each class's rows out to the sites in Dirichlet(α) shares
// and returns each site's rows in source order.
func split(labels []byte, nsites, nclasses int, seed uint64, alpha float64) [][]int {
	r := &rng{src: rand.NewPCG(seed, 0x6964782d73706c74)} // "idx-splt"
	byClass := make([][]int, nclasses)
	for i, l := range labels {
		byClass[l] = append(byClass[l], i)
	}
	assign := make([][]int, nsites)
	for _, rows := range byClass {
		r.shuffle(rows)
		shares := make([]float64, nsites)
		var sum float64
		for s := range shares {
			shares[s] = r.gamma(alpha)
			sum += shares[s]
		}
		quota := largestRemainder(shares, sum, len(rows))
		start := 0
		for s, q := range quota {
			assign[s] = append(assign[s], rows[start:start+q]...)
			start += q
		}
	}
	for s := range assign {
		slices.Sort(assign[s])
	}
	return assign
}

// largestRemainder rounds total·share/sum to integers summing to total.
func largestRemainder(shares []float64, sum float64, total int) []int {
	q := make([]int, len(shares))
	rem := make([]float64, len(shares))
	left := total
	for s, v := range shares {
		exact := float64(total) * v / sum
		q[s] = int(math.Floor(exact))
		rem[s] = exact - float64(q[s])
		left -= q[s]
	}
	order := make([]int, len(shares))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case rem[a] > rem[b]:
			return -1
		case rem[a] < rem[b]:
			return 1
		}
		return 0
	})
	for _, s := range order[:left] {
		q[s]++
	}
	return q
}

// rng derives every draw from PCG's Uint64, whose sequence is specified.
type rng struct{ src *rand.PCG }

// uniform is in (0, 1).
func (r *rng) uniform() float64 { return (float64(r.src.Uint64()>>11) + 0.5) / (1 << 53) }

func (r *rng) normal() float64 { // Box–Muller
	return math.Sqrt(-2*math.Log(r.uniform())) * math.Cos(2*math.Pi*r.uniform())
}

// gamma draws Gamma(a, 1) by Marsaglia and Tsang, boosting a < 1.
func (r *rng) gamma(a float64) float64 {
	if a < 1 {
		return r.gamma(a+1) * math.Pow(r.uniform(), 1/a)
	}
	d := a - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.normal()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		if math.Log(r.uniform()) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}

func (r *rng) shuffle(x []int) {
	for i := len(x) - 1; i > 0; i-- {
		j := int(r.src.Uint64() % uint64(i+1))
		x[i], x[j] = x[j], x[i]
	}
}

// readIDX reads a gzip'd IDX file of unsigned bytes and returns its
// dimensions and body.
func readIDX(path string, magic uint32) ([]uint32, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	nd := int(magic & 0xff)
	if len(b) < 4+4*nd || binary.BigEndian.Uint32(b) != magic {
		return nil, nil, fmt.Errorf("%s: not an IDX file with magic 0x%08x", path, magic)
	}
	dims := make([]uint32, nd)
	want := 1
	for i := range dims {
		dims[i] = binary.BigEndian.Uint32(b[4+4*i:])
		want *= int(dims[i])
	}
	body := b[4+4*nd:]
	if len(body) != want {
		return nil, nil, fmt.Errorf("%s: %d bytes of data, the header says %d", path, len(body), want)
	}
	return dims, body, nil
}

func writeIDX(path string, magic uint32, dims []uint32, body []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	hdr := binary.BigEndian.AppendUint32(nil, magic)
	for _, d := range dims {
		hdr = binary.BigEndian.AppendUint32(hdr, d)
	}
	zw.Write(hdr)
	zw.Write(body)
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func printCounts(w io.Writer, counts [][]int) {
	short := make([]string, len(classes))
	for c, name := range classes {
		short[c] = strings.SplitN(name, "/", 2)[0]
	}
	fmt.Fprintf(w, "| site | rows | %s |\n|---|---:|%s\n", strings.Join(short, " | "), strings.Repeat("---:|", len(classes)))
	total := make([]int, len(classes))
	for s, site := range sites {
		sum := 0
		cells := make([]string, len(classes))
		for c, k := range counts[s] {
			sum += k
			total[c] += k
			cells[c] = fmt.Sprint(k)
		}
		fmt.Fprintf(w, "| `%s` | %d | %s |\n", site, sum, strings.Join(cells, " | "))
	}
	sum := 0
	cells := make([]string, len(classes))
	for c, k := range total {
		sum += k
		cells[c] = fmt.Sprint(k)
	}
	fmt.Fprintf(w, "| **total** | %d | %s |\n", sum, strings.Join(cells, " | "))
}
