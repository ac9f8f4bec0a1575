package secagg

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
)

type clientPhase int

const (
	clientFresh    clientPhase = iota // keys made, waiting for U1
	clientShared                      // shares sent, waiting for U2's shares
	clientMasked                      // masked input sent, waiting for U3
	clientUnmasked                    // reveals made
)

// Client is one site's side of one aggregation: a state machine the caller
// drives with the coordinator's messages, in order: Advertise, ShareKeys,
// MaskedInput, Consistency (optional but part of the actively secure
// protocol), Unmask. It does no I/O and keeps no clock; it reads randomness
// only from the reader given to NewClient. A Client is not safe for
// concurrent use and serves one aggregation: make a new one per Session.
type Client struct {
	p    Params
	g    *graph
	self int
	rand io.Reader

	cSK      *ecdh.PrivateKey
	sSK      *ecdh.PrivateKey
	sSecret  fe // s_sk as a field element; sSK is its 32-byte form
	bSecret  fe // self-mask seed b
	keys     Keys
	phase    clientPhase
	peers    map[int]*peer     // neighbours in U1 (after ShareKeys)
	ownShare heldShare         // this site's share of its own secrets
	held     map[int]heldShare // shares this site holds, by owner, itself included (after MaskedInput)
	u3       []string          // the U3 this site signed or unmasked with
	reveals  []Reveal
}

type peer struct {
	keys    Keys
	cAgreed []byte // X25519(c_sk_self, CPK_peer)
	sAgreed []byte // X25519(s_sk_self, SPK_peer)
}

// heldShare is one holder's share of one owner's two secrets.
type heldShare struct{ s, b fe }

// NewClient makes site self's keys for one aggregation. rand supplies all
// randomness (crypto/rand.Reader in production; a seeded reader only in
// tests).
func NewClient(p Params, self string, rand io.Reader) (*Client, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p = p.clone()
	i := p.index(self)
	if i < 0 {
		return nil, fmt.Errorf("secagg: new client: site %q is not in Params.Sites", self)
	}
	if rand == nil {
		return nil, errors.New("secagg: new client: rand is nil; use crypto/rand.Reader")
	}
	c := &Client{p: p, g: newGraph(p), self: i, rand: rand}
	var raw [keyBytes]byte
	if _, err := io.ReadFull(rand, raw[:]); err != nil {
		return nil, fmt.Errorf("secagg: new client: read randomness: %w", err)
	}
	var err error
	if c.cSK, err = ecdh.X25519().NewPrivateKey(raw[:]); err != nil {
		return nil, fmt.Errorf("secagg: new client: %w", err)
	}
	clear(raw[:])
	if c.sSecret, err = feRandom(rand); err != nil {
		return nil, fmt.Errorf("secagg: new client: read randomness: %w", err)
	}
	if c.sSK, err = ecdh.X25519().NewPrivateKey(c.sSecret.bytes()); err != nil {
		return nil, fmt.Errorf("secagg: new client: %w", err)
	}
	if c.bSecret, err = feRandom(rand); err != nil {
		return nil, fmt.Errorf("secagg: new client: read randomness: %w", err)
	}
	c.keys = Keys{Site: self, CPK: c.cSK.PublicKey().Bytes(), SPK: c.sSK.PublicKey().Bytes()}
	return c, nil
}

// Advertise returns the phase-1 message: this site's two public keys. The
// caller signs KeysMessage(Session, keys) and sends both.
func (c *Client) Advertise() Keys { return c.keys.clone() }

// ShareKeys takes U1, the advertised keys the coordinator relayed (the
// caller has verified each one's signature over KeysMessage), and returns
// this site's phase-2 messages: an encrypted share of its secrets for each
// neighbour in U1. u1 may hold keys of non-neighbours; they are checked for
// membership and otherwise ignored.
//
// It refuses: keys of a site not in Params.Sites, two entries for one site,
// keys that are not 32 bytes or that give a degenerate X25519 agreement,
// one site's key reused by another, u1 without this site's own keys or with
// them altered, and fewer than Threshold sites of its neighbourhood in U1
// (a *TooFewError). On error nothing was sent and the call may be repeated;
// after success it is ErrOutOfOrder.
func (c *Client) ShareKeys(u1 []Keys) ([]Share, error) {
	if c.phase != clientFresh {
		return nil, outOfOrder("ShareKeys: this site already shared its keys")
	}
	seen := make(map[int]bool, len(u1))
	owner := map[string]string{string(c.keys.CPK): c.keys.Site, string(c.keys.SPK): c.keys.Site}
	peers := make(map[int]*peer)
	foundSelf := false
	for _, k := range u1 {
		i := c.p.index(k.Site)
		if i < 0 {
			return nil, fmt.Errorf("secagg: share keys: U1 has keys from %q, which is not in Params.Sites", k.Site)
		}
		if seen[i] {
			return nil, fmt.Errorf("secagg: share keys: U1 has two entries for %q", k.Site)
		}
		seen[i] = true
		if err := checkKeyLengths(k); err != nil {
			return nil, fmt.Errorf("secagg: share keys: %w", err)
		}
		if i == c.self {
			if !k.equal(c.keys) {
				return nil, fmt.Errorf("secagg: share keys: U1 carries keys for this site (%q) other than the ones it advertised", k.Site)
			}
			foundSelf = true
			continue
		}
		if !c.g.adjacent(c.self, i) {
			continue
		}
		for _, key := range [][]byte{k.CPK, k.SPK} {
			if o, dup := owner[string(key)]; dup {
				return nil, fmt.Errorf("secagg: share keys: %q advertises a key that %q advertised too", k.Site, o)
			}
			owner[string(key)] = k.Site
		}
		pr := &peer{keys: k.clone()}
		var err error
		if pr.cAgreed, err = agree(c.cSK, k.CPK); err != nil {
			return nil, fmt.Errorf("secagg: share keys: CPK of %q: %w", k.Site, err)
		}
		if pr.sAgreed, err = agree(c.sSK, k.SPK); err != nil {
			return nil, fmt.Errorf("secagg: share keys: SPK of %q: %w", k.Site, err)
		}
		peers[i] = pr
	}
	if !foundSelf {
		return nil, fmt.Errorf("secagg: share keys: U1 lacks this site's own keys (%q)", c.keys.Site)
	}
	t := c.p.Threshold
	if have := 1 + len(peers); have < t {
		return nil, &TooFewError{What: "sites of this site's neighbourhood in U1 (itself included)", Have: have, Of: c.p.neighborhood(), Need: t}
	}
	holders := make([]int, 0, 1+len(peers))
	holders = append(holders, c.self)
	for i := range peers {
		holders = append(holders, i)
	}
	slices.Sort(holders)
	xs := make([]uint64, len(holders))
	for j, i := range holders {
		xs[j] = uint64(i) + 1
	}
	sShares, err := shamirSplit(c.sSecret, t, xs, c.rand)
	if err != nil {
		return nil, fmt.Errorf("secagg: share keys: read randomness: %w", err)
	}
	bShares, err := shamirSplit(c.bSecret, t, xs, c.rand)
	if err != nil {
		return nil, fmt.Errorf("secagg: share keys: read randomness: %w", err)
	}
	out := make([]Share, 0, len(peers))
	for j, i := range holders {
		if i == c.self {
			c.ownShare = heldShare{s: sShares[j], b: bShares[j]}
			continue
		}
		pr := peers[i]
		plain := append(sShares[j].bytes(), bShares[j].bytes()...)
		aead := shareAEAD(pr.cAgreed, c.p.Session, c.keys.Site, pr.keys.Site)
		ct := aead.Seal(nil, zeroNonce[:], plain, shareAD(c.p.Session, c.keys, pr.keys))
		clear(plain)
		out = append(out, Share{From: c.keys.Site, To: pr.keys.Site, Ciphertext: ct})
	}
	c.peers = peers
	c.phase = clientShared
	return out, nil
}

// MaskedInput takes this site's input x (len Length, every element already
// reduced mod 2^Bits; x is not modified) and in, the shares addressed to
// this site by the sites of U2, and returns the phase-3 message
//
//	y = x + PRG(b) + Σ_{v ∈ U2 ∩ N, v after self} PRG(s_{self,v}) − Σ_{v ∈ U2 ∩ N, v before self} PRG(s_{self,v})  (mod 2^Bits)
//
// where U2 ∩ N, this site's view of the survivors of phase 2 among its
// neighbours, is the senders of in. It refuses a share not addressed to
// this site or not from a neighbour in U1, a repeated sender, a share that
// does not decrypt (ErrShareDecrypt, naming the sender), and fewer than
// Threshold sites of its neighbourhood in U2, itself included (a
// *TooFewError). It answers once: a second masked vector under the same
// masks would reveal the difference of the two inputs.
func (c *Client) MaskedInput(x []uint64, in []Share) ([]uint64, error) {
	switch {
	case c.phase < clientShared:
		return nil, outOfOrder("MaskedInput before ShareKeys")
	case c.phase > clientShared:
		return nil, outOfOrder("MaskedInput: this site already sent its masked input")
	}
	if len(x) != c.p.Length {
		return nil, fmt.Errorf("secagg: masked input: input has %d elements; Params.Length is %d", len(x), c.p.Length)
	}
	m := ringMask(c.p.Bits)
	for i, v := range x {
		if v > m {
			return nil, fmt.Errorf("secagg: masked input: input[%d] = %d is not below 2^%d (Params.Bits); reduce it first", i, v, c.p.Bits)
		}
	}
	held := map[int]heldShare{c.self: c.ownShare}
	for _, sh := range in {
		if sh.To != c.keys.Site {
			return nil, fmt.Errorf("secagg: masked input: share from %q is addressed to %q, not to this site (%q)", sh.From, sh.To, c.keys.Site)
		}
		i := c.p.index(sh.From)
		pr := c.peers[i]
		if i < 0 || pr == nil {
			return nil, fmt.Errorf("secagg: masked input: share from %q, which is not a neighbour of this site in U1", sh.From)
		}
		if _, dup := held[i]; dup {
			return nil, fmt.Errorf("secagg: masked input: two shares from %q", sh.From)
		}
		h, err := c.open(pr, sh.Ciphertext)
		if err != nil {
			return nil, err
		}
		held[i] = h
	}
	if have, t := len(held), c.p.Threshold; have < t {
		return nil, &TooFewError{What: "sites of this site's neighbourhood in U2 (itself included)", Have: have, Of: 1 + len(c.peers), Need: t}
	}
	masks := make([]mask, 0, len(held))
	masks = append(masks, newMask(selfKey(c.bSecret.bytes(), c.p.Session, c.keys.Site), false))
	for i := range held {
		if i == c.self {
			continue
		}
		pr := c.peers[i]
		masks = append(masks, newMask(pairKey(pr.sAgreed, c.p.Session, c.keys.Site, pr.keys.Site), i < c.self))
	}
	y := slices.Clone(x)
	applyMasks(y, c.p.Bits, masks)
	reduce(y, c.p.Bits)
	c.held = held
	c.phase = clientMasked
	return y, nil
}

func (c *Client) open(pr *peer, ct []byte) (heldShare, error) {
	from := pr.keys.Site
	fail := func() (heldShare, error) {
		return heldShare{}, fmt.Errorf("%w: share from %q (altered, for another session or pair, or %q and this site saw different keys for each other)", ErrShareDecrypt, from, from)
	}
	if len(ct) != shareCiphertextBytes {
		return fail()
	}
	aead := shareAEAD(pr.cAgreed, c.p.Session, from, c.keys.Site)
	plain, err := aead.Open(nil, zeroNonce[:], ct, shareAD(c.p.Session, pr.keys, c.keys))
	if err != nil {
		return fail()
	}
	defer clear(plain)
	s, err1 := feFromBytes(plain[:feBytes])
	b, err2 := feFromBytes(plain[feBytes:])
	if err := errors.Join(err1, err2); err != nil {
		return heldShare{}, fmt.Errorf("secagg: masked input: share from %q: %w", from, err)
	}
	return heldShare{s: s, b: b}, nil
}

// Consistency takes U3, the survivor set the coordinator announced, and
// returns the bytes this site signs for the consistency check
// (ConsistencyMessage(Session, u3)). It refuses a U3 without this site, one
// naming a neighbour whose shares this site never received, one with fewer
// than Threshold sites of this site's neighbourhood, and — ErrSecondView —
// a U3 other than one it already signed or unmasked with: an honest site
// signs one U3 only, which is what makes two conflicting sets unable to
// both gather Threshold signatures.
func (c *Client) Consistency(u3 []string) ([]byte, error) {
	if c.phase < clientMasked {
		return nil, outOfOrder("Consistency before MaskedInput")
	}
	set, err := c.checkU3("consistency", u3)
	if err != nil {
		return nil, err
	}
	if err := c.lock(set); err != nil {
		return nil, err
	}
	return ConsistencyMessage(c.p.Session, set), nil
}

// Unmask takes U3 and signers, the sites whose signatures over
// ConsistencyMessage(Session, u3) the caller has verified, and returns the
// phase-5 message: for every site v this site holds shares of (its U2
// neighbours and itself), its share of v's self-mask seed if v is in U3,
// else its share of v's mask key. It checks U3 as Consistency does, and
// refuses signers outside U3, repeated signers, and fewer than Threshold
// signers among this site's neighbourhood (a *TooFewError). After it has
// answered, it answers again only for the same U3 (with the same reveals);
// any other U3 is ErrSecondView.
func (c *Client) Unmask(u3 []string, signers []string) ([]Reveal, error) {
	if c.phase < clientMasked {
		return nil, outOfOrder("Unmask before MaskedInput")
	}
	set, err := c.checkU3("unmask", u3)
	if err != nil {
		return nil, err
	}
	signed := make(map[string]bool, len(signers))
	have := 0
	for _, s := range signers {
		if _, in := slices.BinarySearch(set, s); !in {
			return nil, fmt.Errorf("secagg: unmask: signer %q is not in U3", s)
		}
		if signed[s] {
			return nil, fmt.Errorf("secagg: unmask: signer %q is listed twice", s)
		}
		signed[s] = true
		if c.g.inNeighborhood(c.self, c.p.index(s)) {
			have++
		}
	}
	if t := c.p.Threshold; have < t {
		return nil, &TooFewError{What: "consistency signers of this site's neighbourhood (itself included)", Have: have, Of: c.p.neighborhood(), Need: t}
	}
	if err := c.lock(set); err != nil {
		return nil, err
	}
	if c.reveals == nil {
		owners := make([]int, 0, len(c.held))
		for i := range c.held {
			owners = append(owners, i)
		}
		slices.Sort(owners)
		rs := make([]Reveal, 0, len(owners))
		for _, i := range owners {
			name := c.p.Sites[i]
			r := Reveal{From: c.keys.Site, Of: name}
			if _, survived := slices.BinarySearch(set, name); survived {
				r.Kind, r.Share = RevealSelfMask, c.held[i].b.bytes()
			} else {
				r.Kind, r.Share = RevealMaskKey, c.held[i].s.bytes()
			}
			rs = append(rs, r)
		}
		c.reveals = rs
		c.phase = clientUnmasked
	}
	out := make([]Reveal, len(c.reveals))
	for i, r := range c.reveals {
		r.Share = slices.Clone(r.Share)
		out[i] = r
	}
	return out, nil
}

// checkU3 validates a survivor set against what this site knows and
// returns it sorted.
func (c *Client) checkU3(op string, u3 []string) ([]string, error) {
	set := slices.Clone(u3)
	slices.Sort(set)
	have, self := 0, false
	for j, s := range set {
		if j > 0 && set[j-1] == s {
			return nil, fmt.Errorf("secagg: %s: U3 lists %q twice", op, s)
		}
		i := c.p.index(s)
		if i < 0 {
			return nil, fmt.Errorf("secagg: %s: U3 names %q, which is not in Params.Sites", op, s)
		}
		if !c.g.inNeighborhood(c.self, i) {
			continue
		}
		if _, ok := c.held[i]; !ok {
			return nil, fmt.Errorf("secagg: %s: U3 names %q, whose shares this site never received, so it cannot have survived in this site's view", op, s)
		}
		have++
		self = self || i == c.self
	}
	if !self {
		return nil, fmt.Errorf("secagg: %s: U3 does not include this site (%q)", op, c.keys.Site)
	}
	if t := c.p.Threshold; have < t {
		return nil, &TooFewError{What: "survivors (U3) of this site's neighbourhood (itself included)", Have: have, Of: len(c.held), Need: t}
	}
	return set, nil
}

func (c *Client) lock(set []string) error {
	if c.u3 == nil {
		c.u3 = set
		return nil
	}
	if !slices.Equal(c.u3, set) {
		return ErrSecondView
	}
	return nil
}

func checkKeyLengths(k Keys) error {
	if len(k.CPK) != keyBytes {
		return fmt.Errorf("keys of %q: CPK is %d bytes, want %d", k.Site, len(k.CPK), keyBytes)
	}
	if len(k.SPK) != keyBytes {
		return fmt.Errorf("keys of %q: SPK is %d bytes, want %d", k.Site, len(k.SPK), keyBytes)
	}
	return nil
}

// agree returns X25519(sk, pub); it fails for low-order points.
func agree(sk *ecdh.PrivateKey, pub []byte) ([]byte, error) {
	pk, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return sk.ECDH(pk)
}

// Each share key encrypts exactly one message (one sender, one recipient,
// one session, fresh c keys per Client), so the all-zero nonce is safe.
var zeroNonce [12]byte

func shareAEAD(agreed, session []byte, from, to string) cipher.AEAD {
	key, err := hkdf.Key(sha256.New, agreed, nil, string(canon(labelShareKey, session, []byte(from), []byte(to))), 32)
	if err != nil {
		panic("secagg: hkdf: " + err.Error())
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("secagg: aes: " + err.Error())
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("secagg: gcm: " + err.Error())
	}
	return aead
}

func shareAD(session []byte, from, to Keys) []byte {
	return canon(labelShareAD, session, []byte(from.Site), []byte(to.Site), from.CPK, from.SPK, to.CPK, to.SPK)
}
