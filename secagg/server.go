package secagg

import (
	"bytes"
	"crypto/ecdh"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

type serverPhase int

const (
	serverKeys   serverPhase = iota // collecting U1
	serverShares                    // collecting U2's shares
	serverMasked                    // collecting U3's masked inputs
	serverUnmask                    // collecting reveals
)

// Server is the coordinator's side of one aggregation: a state machine fed
// with the sites' messages. Each phase closes when the caller first reads
// its result — Keys closes U1, SharesFor closes U2, Survivors closes U3 —
// so the caller ends a phase at its deadline by reading. It does no I/O,
// keeps no clock and needs no randomness. Its memory is O(Length) for the
// running sum (and a second O(Length) buffer during Finish) plus the keys,
// the O(n·k) 80-byte shares and the 32-byte reveals; it never keeps a
// masked vector. A Server is not safe for concurrent use.
type Server struct {
	p     Params
	g     *graph
	phase serverPhase

	keys     []*Keys   // by site index; nil if not in U1
	u1       []int     // sorted, once closed
	sharesTo [][]Share // by recipient index
	inU2     []bool
	u2       []int
	sum      []uint64
	inU3     []bool
	u3       []int
	revealed []bool          // by revealer index
	got      []map[int]fe    // by owner index: holder index → share
	kinds    []RevealKind    // by owner index: the kind expected
	lagrange map[string][]fe // by holder-set key
}

// NewServer returns a Server for p.
func NewServer(p Params) (*Server, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p = p.clone()
	n := len(p.Sites)
	return &Server{
		p:        p,
		g:        newGraph(p),
		keys:     make([]*Keys, n),
		sharesTo: make([][]Share, n),
		inU2:     make([]bool, n),
		inU3:     make([]bool, n),
		revealed: make([]bool, n),
		lagrange: make(map[string][]fe),
	}, nil
}

// AddKeys records a site's phase-1 advertisement in U1. The Server does not
// verify signatures: each site verifies every other's signature over
// KeysMessage itself, which is what protects it from a coordinator that
// substitutes keys. It refuses a site not in Params.Sites, a second
// advertisement, keys that are not 32 bytes, and any call after Keys.
func (s *Server) AddKeys(k Keys) error {
	if s.phase != serverKeys {
		return outOfOrder("AddKeys from %q after U1 was closed by Keys", k.Site)
	}
	i := s.p.index(k.Site)
	if i < 0 {
		return fmt.Errorf("secagg: add keys: %q is not in Params.Sites", k.Site)
	}
	if s.keys[i] != nil {
		return fmt.Errorf("secagg: add keys: %q already advertised its keys", k.Site)
	}
	if err := checkKeyLengths(k); err != nil {
		return fmt.Errorf("secagg: add keys: %w", err)
	}
	kc := k.clone()
	s.keys[i] = &kc
	return nil
}

// closeU1, closeU2 and closeU3 end a phase; closing a phase closes the
// earlier ones still open, so a phase nobody reached can still be closed.
func (s *Server) closeU1() {
	if s.phase != serverKeys {
		return
	}
	for i, k := range s.keys {
		if k != nil {
			s.u1 = append(s.u1, i)
		}
	}
	s.phase = serverShares
}

func (s *Server) closeU2() {
	s.closeU1()
	if s.phase != serverShares {
		return
	}
	for i, in := range s.inU2 {
		if in {
			s.u2 = append(s.u2, i)
		}
	}
	s.sum = make([]uint64, s.p.Length)
	s.phase = serverMasked
}

func (s *Server) closeU3() {
	s.closeU2()
	if s.phase != serverMasked {
		return
	}
	for i, in := range s.inU3 {
		if in {
			s.u3 = append(s.u3, i)
		}
	}
	n := len(s.p.Sites)
	s.got = make([]map[int]fe, n)
	s.kinds = make([]RevealKind, n)
	for _, i := range s.u2 {
		s.got[i] = make(map[int]fe)
		s.kinds[i] = RevealMaskKey
		if s.inU3[i] {
			s.kinds[i] = RevealSelfMask
		}
	}
	s.phase = serverUnmask
}

// Keys closes U1 (the first call) and returns it, sorted by site: the list
// the coordinator relays to every site of U1, each with its signature. With
// SecAgg+ a site needs only its neighbours' entries (Params.NeighborsOf)
// and its own.
func (s *Server) Keys() []Keys {
	s.closeU1()
	out := make([]Keys, len(s.u1))
	for j, i := range s.u1 {
		out[j] = s.keys[i].clone()
	}
	return out
}

// AddShares records from's phase-2 messages, making it a member of U2. It
// refuses a sender not in U1, a second call for one sender, and a set of
// shares that is not exactly one 80-byte ciphertext From from To each of
// from's neighbours in U1; and it refuses any call before Keys or after
// SharesFor.
func (s *Server) AddShares(from string, sh []Share) error {
	switch s.phase {
	case serverKeys:
		return outOfOrder("AddShares from %q before U1 was closed by Keys", from)
	case serverShares:
	default:
		return outOfOrder("AddShares from %q after U2 was closed by SharesFor", from)
	}
	i := s.p.index(from)
	if i < 0 || s.keys[i] == nil {
		return fmt.Errorf("secagg: add shares: %q is not in U1", from)
	}
	if s.inU2[i] {
		return fmt.Errorf("secagg: add shares: %q already sent its shares", from)
	}
	want := make(map[int]bool)
	for _, j := range s.g.neighbors(i) {
		if s.keys[j] != nil {
			want[j] = true
		}
	}
	got := make(map[int]bool, len(sh))
	for _, x := range sh {
		if x.From != from {
			return fmt.Errorf("secagg: add shares: a share sent by %q says it is from %q", from, x.From)
		}
		j := s.p.index(x.To)
		if !want[j] {
			return fmt.Errorf("secagg: add shares: share from %q to %q, which is not its neighbour in U1", from, x.To)
		}
		if got[j] {
			return fmt.Errorf("secagg: add shares: two shares from %q to %q", from, x.To)
		}
		if len(x.Ciphertext) != shareCiphertextBytes {
			return fmt.Errorf("secagg: add shares: share from %q to %q is %d bytes, want %d", from, x.To, len(x.Ciphertext), shareCiphertextBytes)
		}
		got[j] = true
	}
	if len(got) != len(want) {
		for j := range want {
			if !got[j] {
				return fmt.Errorf("secagg: add shares: %q sent no share to %q, its neighbour in U1", from, s.p.Sites[j])
			}
		}
	}
	for _, x := range sh {
		j := s.p.index(x.To)
		s.sharesTo[j] = append(s.sharesTo[j], Share{From: x.From, To: x.To, Ciphertext: bytes.Clone(x.Ciphertext)})
	}
	s.inU2[i] = true
	return nil
}

// SharesFor closes U2 (the first call; and U1 if still open) and returns
// the shares addressed to site by the members of U2, sorted by sender: the
// input of that site's MaskedInput.
func (s *Server) SharesFor(site string) []Share {
	s.closeU2()
	i := s.p.index(site)
	if i < 0 {
		return nil
	}
	out := slices.Clone(s.sharesTo[i])
	slices.SortFunc(out, func(a, b Share) int { return strings.Compare(a.From, b.From) })
	return out
}

// AddMasked adds from's masked input y to the running sum mod 2^Bits,
// making from a member of U3; y is not kept. It refuses a sender not in U2,
// a second vector, a wrong length or an element not below 2^Bits (the sum
// is unchanged then), and any call before SharesFor or after Survivors.
func (s *Server) AddMasked(from string, y []uint64) error {
	i, err := s.maskedSender(from)
	if err != nil {
		return err
	}
	if len(y) != s.p.Length {
		return fmt.Errorf("secagg: add masked: %q sent %d elements; Params.Length is %d", from, len(y), s.p.Length)
	}
	m := ringMask(s.p.Bits)
	for j, v := range y {
		if v > m {
			return fmt.Errorf("secagg: add masked: element %d from %q is %d, not below 2^%d (Params.Bits)", j, from, v, s.p.Bits)
		}
	}
	for j, v := range y {
		s.sum[j] += v
	}
	s.inU3[i] = true
	return nil
}

// AddMaskedPacked is AddMasked for a masked vector in its wire form, as
// Pack writes it: it adds the bytes straight into the running sum, with no
// O(Length) temporary per site. It refuses what AddMasked refuses, and a
// length other than Length·ceil(Bits/8) bytes.
func (s *Server) AddMaskedPacked(from string, b []byte) error {
	i, err := s.maskedSender(from)
	if err != nil {
		return err
	}
	w := (s.p.Bits + 7) / 8
	if len(b) != s.p.Length*w {
		return fmt.Errorf("secagg: add masked: %q sent %d bytes; Params.Length·ceil(Bits/8) is %d", from, len(b), s.p.Length*w)
	}
	if s.p.Bits != 8*w {
		m := ringMask(s.p.Bits)
		for j := range s.p.Length {
			if v := littleEndian(b[w*j : w*j+w]); v > m {
				return fmt.Errorf("secagg: add masked: element %d from %q is %d, not below 2^%d (Params.Bits)", j, from, v, s.p.Bits)
			}
		}
	}
	addKeystream(s.sum, b, w, false)
	s.inU3[i] = true
	return nil
}

// maskedSender checks that from may send its masked input now.
func (s *Server) maskedSender(from string) (int, error) {
	switch s.phase {
	case serverMasked:
	case serverUnmask:
		return 0, outOfOrder("AddMasked from %q after U3 was closed by Survivors", from)
	default:
		return 0, outOfOrder("AddMasked from %q before U2 was closed by SharesFor", from)
	}
	i := s.p.index(from)
	if i < 0 || !s.inU2[i] {
		return 0, fmt.Errorf("secagg: add masked: %q is not in U2", from)
	}
	if s.inU3[i] {
		return 0, fmt.Errorf("secagg: add masked: %q already sent its masked input", from)
	}
	return i, nil
}

// Survivors closes U3 (the first call; and U1, U2 if still open) and
// returns it sorted: the set the coordinator sends to its members for the
// consistency check.
func (s *Server) Survivors() []string {
	s.closeU3()
	out := make([]string, len(s.u3))
	for j, i := range s.u3 {
		out[j] = s.p.Sites[i]
	}
	return out
}

// AddReveals records from's phase-5 message. It refuses a revealer not in
// U3, a second call for one revealer, and a reveal that is not from from,
// is about a site outside U2 or whose secrets from does not hold, has the
// wrong kind for that site (the self-mask seed of a survivor, the mask key
// of a dropped site), repeats a site, or is not a 32-byte field element.
// Nothing is recorded from a refused call.
func (s *Server) AddReveals(from string, r []Reveal) error {
	if s.phase != serverUnmask {
		return outOfOrder("AddReveals from %q before U3 was closed by Survivors", from)
	}
	i := s.p.index(from)
	if i < 0 || !s.inU3[i] {
		return fmt.Errorf("secagg: add reveals: %q is not in U3", from)
	}
	if s.revealed[i] {
		return fmt.Errorf("secagg: add reveals: %q already sent its reveals", from)
	}
	type entry struct {
		of int
		v  fe
	}
	es := make([]entry, 0, len(r))
	seen := make(map[int]bool, len(r))
	for _, x := range r {
		if x.From != from {
			return fmt.Errorf("secagg: add reveals: a reveal sent by %q says it is from %q", from, x.From)
		}
		j := s.p.index(x.Of)
		if j < 0 || !s.inU2[j] {
			return fmt.Errorf("secagg: add reveals: %q reveals a share of %q, which is not in U2", from, x.Of)
		}
		if !s.g.inNeighborhood(j, i) {
			return fmt.Errorf("secagg: add reveals: %q reveals a share of %q, which it does not hold (not neighbours)", from, x.Of)
		}
		if x.Kind != s.kinds[j] {
			return fmt.Errorf("secagg: add reveals: %q reveals the %v of %q; want its %v", from, x.Kind, x.Of, s.kinds[j])
		}
		if seen[j] {
			return fmt.Errorf("secagg: add reveals: %q reveals two shares of %q", from, x.Of)
		}
		seen[j] = true
		v, err := feFromBytes(x.Share)
		if err != nil {
			return fmt.Errorf("secagg: add reveals: %q's share of %q: %w", from, x.Of, err)
		}
		es = append(es, entry{j, v})
	}
	for _, e := range es {
		s.got[e.of][i] = e.v
	}
	s.revealed[i] = true
	return nil
}

// Finish reconstructs the self-mask seed of every site in U3 and the mask
// key of every site in U2 \ U3, removes their masks from the running sum
// and returns Σ_{u ∈ U3} x_u mod 2^Bits. It needs U3 to hold at least
// Threshold sites and Threshold reveals for each secret, else it returns a
// *TooFewError naming the first site short of shares (in Sites order) and
// the counts; more reveals may then be added and Finish called again.
// Where a secret has more than Threshold reveals one extra share checks the
// rest, and a reconstructed mask key must match the site's SPK: a mismatch
// is ErrBadReconstruction, naming the site. It does not change the running
// sum.
func (s *Server) Finish() ([]uint64, error) {
	if s.phase != serverUnmask {
		return nil, outOfOrder("Finish before U3 was closed by Survivors")
	}
	t := s.p.Threshold
	if len(s.u3) < t {
		return nil, &TooFewError{What: "survivors (U3)", Have: len(s.u3), Of: len(s.p.Sites), Need: t}
	}
	// Recover every secret before the O(Length) work, so a shortfall is
	// reported cheaply.
	secrets := make(map[int]fe, len(s.u2))
	for _, v := range s.u2 {
		sec, err := s.recover(v)
		if err != nil {
			return nil, err
		}
		secrets[v] = sec
	}
	var masks []mask
	for _, v := range s.u2 {
		if s.inU3[v] {
			masks = append(masks, newMask(selfKey(secrets[v].bytes(), s.p.Session, s.p.Sites[v]), true))
			continue
		}
		sk, err := ecdh.X25519().NewPrivateKey(secrets[v].bytes())
		if err != nil {
			return nil, fmt.Errorf("secagg: finish: %w", err)
		}
		if !bytes.Equal(sk.PublicKey().Bytes(), s.keys[v].SPK) {
			return nil, fmt.Errorf("%w: the mask key recovered for %q does not match its SPK", ErrBadReconstruction, s.p.Sites[v])
		}
		// Survivor u added +PRG(s_{u,v}) if it sorts before v, − otherwise;
		// take it back.
		for _, u := range s.g.neighbors(v) {
			if !s.inU3[u] {
				continue
			}
			agreed, err := agree(sk, s.keys[u].SPK)
			if err != nil {
				return nil, fmt.Errorf("secagg: finish: mask of %q with %q: %w", s.p.Sites[v], s.p.Sites[u], err)
			}
			masks = append(masks, newMask(pairKey(agreed, s.p.Session, s.p.Sites[u], s.p.Sites[v]), u < v))
		}
	}
	acc := slices.Clone(s.sum)
	applyMasks(acc, s.p.Bits, masks)
	reduce(acc, s.p.Bits)
	return acc, nil
}

// recover interpolates the secret of site v that the reveals are about.
func (s *Server) recover(v int) (fe, error) {
	t := s.p.Threshold
	got := s.got[v]
	if len(got) < t {
		// Who could have answered: v and its neighbours that survived.
		holders := 0
		if s.inU3[v] {
			holders++
		}
		for _, h := range s.g.neighbors(v) {
			if s.inU3[h] {
				holders++
			}
		}
		return fe{}, &TooFewError{
			What: fmt.Sprintf("reveals of the %v of %q", s.kinds[v], s.p.Sites[v]),
			Site: s.p.Sites[v], Have: len(got), Of: holders, Need: t,
		}
	}
	hs := make([]int, 0, len(got))
	for h := range got {
		hs = append(hs, h)
	}
	slices.Sort(hs)
	use := hs[:t]
	ys := make([]fe, t)
	for j, h := range use {
		ys[j] = got[h]
	}
	sec := combine(s.coefficients(use, -1), ys)
	if len(hs) > t {
		// One spare share must lie on the same polynomial.
		spare := hs[t]
		if !feEqual(combine(s.coefficients(use, spare), ys), got[spare]) {
			return fe{}, fmt.Errorf("%w: the shares revealed of the %v of %q do not fit one polynomial", ErrBadReconstruction, s.kinds[v], s.p.Sites[v])
		}
	}
	return sec, nil
}

// coefficients returns the Lagrange coefficients of the holder set at the
// x-coordinate of site at (at = −1: at 0, the secret), computed once per
// set.
func (s *Server) coefficients(holders []int, at int) []fe {
	var b strings.Builder
	b.WriteString(strconv.Itoa(at))
	for _, h := range holders {
		b.WriteByte(',')
		b.WriteString(strconv.Itoa(h))
	}
	key := b.String()
	if l, ok := s.lagrange[key]; ok {
		return l
	}
	xs := make([]uint64, len(holders))
	for j, h := range holders {
		xs[j] = uint64(h) + 1
	}
	l := lagrangeAt(xs, uint64(at+1))
	s.lagrange[key] = l
	return l
}
