package secagg

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Per-site traffic is counted as the bytes of each message's fields: names,
// keys, ciphertexts, shares, the packed masked vector, plus sigBytes for
// each of the two signatures a site sends (its Keys and the consistency
// check; an ECDSA P-256 signature, as SPIFFE X.509-SVID keys usually are,
// is at most 72 bytes DER). Transport framing is left out on both sides of
// the comparison; the plain site sends 4 bytes per float32.
const sigBytes = 72

func keysBytes(k Keys) int { return len(k.Site) + len(k.CPK) + len(k.SPK) + sigBytes }

func sharesBytes(sh []Share) int {
	n := 0
	for _, s := range sh {
		n += len(s.From) + len(s.To) + len(s.Ciphertext)
	}
	return n
}

func revealsBytes(rs []Reveal) int {
	n := 0
	for _, r := range rs {
		n += len(r.From) + len(r.Of) + 1 + len(r.Share)
	}
	return n
}

// plainEncode is the baseline site: a float32 update to its wire bytes.
func plainEncode(dst []byte, v []float32) {
	for i, x := range v {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(x))
	}
}

// plainSum is the baseline server: decode n float32 updates from their
// wire bytes and add them up.
func plainSum(sum []float32, wires [][]byte) {
	clear(sum)
	for _, w := range wires {
		for i := range sum {
			sum[i] += math.Float32frombits(binary.LittleEndian.Uint32(w[4*i:]))
		}
	}
}

// fastest runs f reps times after one warm-up and returns the fastest
// time, which discards page-fault and cache warm-up noise; it is measured
// in the same process, just before the benchmark loop, so the ratio
// compares like with like.
func fastest(reps int, f func()) time.Duration {
	f()
	best := time.Duration(math.MaxInt64)
	for range reps {
		start := time.Now()
		f()
		best = min(best, time.Since(start))
	}
	return best
}

func update(length int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 99))
	v := make([]float32, length)
	for i := range v {
		v[i] = float32(max(-1, min(1, rng.NormFloat64()*0.3)))
	}
	return v
}

// clientFixture is everything one site (site 0's, or the one benchmarked)
// receives in a round, prepared once: its own randomness is a fixed seed,
// so the keys the others shared against are the keys it makes again in
// every iteration.
type clientFixture struct {
	p    Params
	self string
	seed uint64
	u1   []Keys
	in   []Share
	u3   []string
	vec  []float32
	enc  Encoding
	nbrs int
}

func newClientFixture(b *testing.B, p Params, self string) *clientFixture {
	const selfSeed = 4242
	f := &clientFixture{p: p, self: self, seed: selfSeed, u3: p.Sites, vec: update(p.Length, 1)}
	scale, err := ScaleFor(p.Bits, len(p.Sites), 1)
	if err != nil {
		b.Fatal(err)
	}
	f.enc = Encoding{Bits: p.Bits, Scale: scale}
	clients := make([]*Client, len(p.Sites))
	for i, s := range p.Sites {
		seed := uint64(1000 + i)
		if s == self {
			seed = selfSeed
		}
		if clients[i], err = NewClient(p, s, seeded(seed, i)); err != nil {
			b.Fatal(err)
		}
		f.u1 = append(f.u1, clients[i].Advertise())
	}
	nb := p.NeighborsOf(self)
	f.nbrs = len(nb)
	for _, s := range nb {
		sh, err := clients[p.index(s)].ShareKeys(f.u1)
		if err != nil {
			b.Fatal(err)
		}
		for _, x := range sh {
			if x.To == self {
				f.in = append(f.in, x)
			}
		}
	}
	return f
}

// round is one site's whole round; it returns the bytes it sent.
func (f *clientFixture) round(b *testing.B) int {
	c, err := NewClient(f.p, f.self, seeded(f.seed, f.p.index(f.self)))
	if err != nil {
		b.Fatal(err)
	}
	sent := keysBytes(c.Advertise())
	sh, err := c.ShareKeys(f.u1)
	if err != nil {
		b.Fatal(err)
	}
	sent += sharesBytes(sh)
	x := make([]uint64, f.p.Length)
	if err := f.enc.Encode32(x, f.vec); err != nil {
		b.Fatal(err)
	}
	y, err := c.MaskedInput(x, f.in)
	if err != nil {
		b.Fatal(err)
	}
	wire, err := Pack(f.p.Bits, y)
	if err != nil {
		b.Fatal(err)
	}
	sent += len(wire)
	if _, err := c.Consistency(f.u3); err != nil {
		b.Fatal(err)
	}
	sent += sigBytes
	r, err := c.Unmask(f.u3, f.u3)
	if err != nil {
		b.Fatal(err)
	}
	return sent + revealsBytes(r)
}

func (f *clientFixture) bench(b *testing.B) {
	plainWire := make([]byte, 4*f.p.Length)
	plain := fastest(5, func() { plainEncode(plainWire, f.vec) })
	sent := f.round(b) // warm-up, and the traffic (the same every time)
	b.ReportAllocs()
	for b.Loop() {
		f.round(b)
	}
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perOp/1e6, "ms/site")
	b.ReportMetric(float64(plain.Nanoseconds())/1e6, "plain_ms")
	b.ReportMetric(perOp/float64(plain.Nanoseconds()), "x_plain")
	b.ReportMetric(float64(sent), "bytes_sent/site")
	b.ReportMetric(float64(sent)/float64(len(plainWire)), "expansion")
	b.ReportMetric(float64(f.nbrs), "neighbours")
}

// BenchmarkClient is one site's compute for a whole round (NewClient,
// Advertise, ShareKeys, encoding its float32 update, MaskedInput, Pack,
// Consistency, Unmask) on the complete graph, against the plain FedAvg
// site's work: its float32 update to bytes.
func BenchmarkClient(b *testing.B) {
	for _, n := range []int{5, 10, 50} {
		for _, length := range []int{100_000, 1_000_000} {
			var f *clientFixture
			b.Run(fmt.Sprintf("n=%d/L=%.0e", n, float64(length)), func(b *testing.B) {
				if f == nil {
					p := Params{Session: []byte("bench"), Sites: siteNames(n), Threshold: DefaultThreshold(n), Bits: 32, Length: length}
					f = newClientFixture(b, p, p.Sites[0])
				}
				f.bench(b)
			})
		}
	}
}

// BenchmarkClientSecAggPlus is the same on the SecAgg+ graph with
// k = 2·ceil(log2 n): the per-site cost follows k, not n.
func BenchmarkClientSecAggPlus(b *testing.B) {
	for _, n := range []int{50, 200, 1000} {
		const length = 100_000
		var f *clientFixture
		b.Run(fmt.Sprintf("n=%d/L=%.0e", n, float64(length)), func(b *testing.B) {
			if f == nil {
				k := plusNeighbors(n)
				p := Params{Session: []byte("bench-plus"), Sites: siteNames(n), Threshold: DefaultThreshold(k + 1), Neighbors: k, Bits: 32, Length: length}
				f = newClientFixture(b, p, p.Sites[0])
			}
			f.bench(b)
		})
	}
}

func plusNeighbors(n int) int { return 2 * bits.Len(uint(n-1)) } // 2·ceil(log2 n)

// serverFixture is every message of a finished round with one site
// dropping after it shared, prepared once; the masked vectors are kept
// packed, as they arrive.
type serverFixture struct {
	p       Params
	keys    []Keys
	shares  map[string][]Share
	masked  map[string][]byte
	reveals map[string][]Reveal
	plain   [][]byte
	want    []uint64
}

func newServerFixture(b *testing.B, p Params, drop int) *serverFixture {
	f := &serverFixture{p: p, shares: map[string][]Share{}, masked: map[string][]byte{}, reveals: map[string][]Reveal{}}
	scale, err := ScaleFor(p.Bits, len(p.Sites), 1)
	if err != nil {
		b.Fatal(err)
	}
	enc := Encoding{Bits: p.Bits, Scale: scale}
	srv, err := NewServer(p)
	if err != nil {
		b.Fatal(err)
	}
	clients := make([]*Client, len(p.Sites))
	for i, s := range p.Sites {
		if clients[i], err = NewClient(p, s, seeded(uint64(2000+i), i)); err != nil {
			b.Fatal(err)
		}
		f.keys = append(f.keys, clients[i].Advertise())
		if err := srv.AddKeys(f.keys[i]); err != nil {
			b.Fatal(err)
		}
	}
	u1 := srv.Keys()
	for i, c := range clients {
		sh, err := c.ShareKeys(u1)
		if err != nil {
			b.Fatal(err)
		}
		f.shares[p.Sites[i]] = sh
		if err := srv.AddShares(p.Sites[i], sh); err != nil {
			b.Fatal(err)
		}
	}
	f.want = make([]uint64, p.Length)
	x := make([]uint64, p.Length)
	for i, c := range clients {
		vec := update(p.Length, uint64(i))
		wire := make([]byte, 4*p.Length)
		plainEncode(wire, vec)
		f.plain = append(f.plain, wire)
		if err := enc.Encode32(x, vec); err != nil {
			b.Fatal(err)
		}
		y, err := c.MaskedInput(x, srv.SharesFor(p.Sites[i]))
		if err != nil {
			b.Fatal(err)
		}
		if i == drop {
			continue
		}
		for j, v := range x {
			f.want[j] += v
		}
		if f.masked[p.Sites[i]], err = Pack(p.Bits, y); err != nil {
			b.Fatal(err)
		}
		if err := srv.AddMasked(p.Sites[i], y); err != nil {
			b.Fatal(err)
		}
	}
	reduce(f.want, p.Bits)
	u3 := srv.Survivors()
	for _, s := range u3 {
		r, err := clients[p.index(s)].Unmask(u3, u3)
		if err != nil {
			b.Fatal(err)
		}
		f.reveals[s] = r
	}
	return f
}

// round is the server's whole work for the round; it returns the sum.
func (f *serverFixture) round(b *testing.B) []uint64 {
	srv, err := NewServer(f.p)
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range f.keys {
		if err := srv.AddKeys(k); err != nil {
			b.Fatal(err)
		}
	}
	srv.Keys()
	for _, s := range f.p.Sites {
		if err := srv.AddShares(s, f.shares[s]); err != nil {
			b.Fatal(err)
		}
	}
	for _, s := range f.p.Sites {
		srv.SharesFor(s)
	}
	for _, s := range f.p.Sites {
		wire, ok := f.masked[s]
		if !ok {
			continue
		}
		if err := srv.AddMaskedPacked(s, wire); err != nil {
			b.Fatal(err)
		}
	}
	for _, s := range srv.Survivors() {
		if err := srv.AddReveals(s, f.reveals[s]); err != nil {
			b.Fatal(err)
		}
	}
	sum, err := srv.Finish()
	if err != nil {
		b.Fatal(err)
	}
	return sum
}

func (f *serverFixture) bench(b *testing.B) {
	plainOut := make([]float32, f.p.Length)
	plain := fastest(5, func() { plainSum(plainOut, f.plain) })
	if !slices.Equal(f.round(b), f.want) { // warm-up, and the promise
		b.Fatal("the benchmarked round does not give the plain sum")
	}
	b.ReportAllocs()
	for b.Loop() {
		f.round(b)
	}
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perOp/1e6, "ms/round")
	b.ReportMetric(float64(plain.Nanoseconds())/1e6, "plain_ms")
	b.ReportMetric(perOp/float64(plain.Nanoseconds()), "x_plain")
}

// BenchmarkServer is the coordinator's whole work for a round on the
// complete graph (every Add — masked vectors as they arrive, packed —
// Keys, SharesFor, Survivors, Finish) with one site dropping after sharing, against the
// plain FedAvg server's: decoding n float32 updates and summing them.
func BenchmarkServer(b *testing.B) {
	for _, n := range []int{5, 10, 50} {
		for _, length := range []int{100_000, 1_000_000} {
			var f *serverFixture
			b.Run(fmt.Sprintf("n=%d/L=%.0e", n, float64(length)), func(b *testing.B) {
				if f == nil {
					p := Params{Session: []byte("bench"), Sites: siteNames(n), Threshold: DefaultThreshold(n), Bits: 32, Length: length}
					f = newServerFixture(b, p, n-1)
				}
				f.bench(b)
			})
		}
	}
}

// BenchmarkServerSecAggPlus is the coordinator on the SecAgg+ graph, up to
// 1000 sites, with short vectors so that it stays quick.
func BenchmarkServerSecAggPlus(b *testing.B) {
	for _, n := range []int{50, 200, 1000} {
		const length = 10_000
		var f *serverFixture
		b.Run(fmt.Sprintf("n=%d/L=%.0e", n, float64(length)), func(b *testing.B) {
			if f == nil {
				k := plusNeighbors(n)
				p := Params{Session: []byte("bench-plus"), Sites: siteNames(n), Threshold: DefaultThreshold(k + 1), Neighbors: k, Bits: 32, Length: length}
				f = newServerFixture(b, p, n-1)
			}
			f.bench(b)
		})
	}
}
