package secagg

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzUnpack checks that the masked-input wire form never panics, that an
// accepted vector repacks to the same bytes, and that a refusal says why.
func FuzzUnpack(f *testing.F) {
	for _, bits := range []int{1, 7, 8, 20, 32, 63, 64} {
		v := []uint64{0, 1, ringMask(bits), ringMask(bits) / 3}
		b, err := Pack(bits, v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(bits), b)
	}
	f.Add(uint8(0), []byte{1})
	f.Add(uint8(65), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, bits uint8, b []byte) {
		v, err := Unpack(int(bits), b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "secagg: unpack: ") {
				t.Fatalf("error %q does not say what refused", err)
			}
			return
		}
		w := (int(bits) + 7) / 8
		if len(v)*w != len(b) {
			t.Fatalf("%d bytes of %d-bit elements gave %d elements", len(b), bits, len(v))
		}
		again, err := Pack(int(bits), v)
		if err != nil {
			t.Fatalf("Pack refused what Unpack accepted: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("repacking changed the bytes")
		}
	})
}

// hostile builds protocol messages from fuzz bytes: every length, name and
// kind comes from the input, so the fuzzer reaches both the shapes the
// checks refuse and those that pass them.
type hostile struct {
	b     []byte
	names []string
}

func (h *hostile) byte() byte {
	if len(h.b) == 0 {
		return 0
	}
	c := h.b[0]
	h.b = h.b[1:]
	return c
}

func (h *hostile) take() []byte {
	n := min(int(h.byte()), len(h.b))
	out := h.b[:n]
	h.b = h.b[n:]
	return bytes.Clone(out)
}

// name is a site of the round, or, one time in eight, any string.
func (h *hostile) name() string {
	c := h.byte()
	if c%8 == 7 {
		return string(h.take())
	}
	return h.names[int(c)%len(h.names)]
}

func (h *hostile) keys() Keys { return Keys{Site: h.name(), CPK: h.take(), SPK: h.take()} }

func (h *hostile) shares() []Share {
	out := make([]Share, int(h.byte())%6)
	for i := range out {
		out[i] = Share{From: h.name(), To: h.name(), Ciphertext: h.take()}
	}
	return out
}

func (h *hostile) reveals() []Reveal {
	out := make([]Reveal, int(h.byte())%6)
	for i := range out {
		out[i] = Reveal{From: h.name(), Of: h.name(), Kind: RevealKind(h.byte() % 4), Share: h.take()}
	}
	return out
}

func (h *hostile) set() []string {
	out := make([]string, int(h.byte())%6)
	for i := range out {
		out[i] = h.name()
	}
	return out
}

// refusal checks that a refusal names the package and, for the typed
// errors, carries them.
func refusal(t *testing.T, what string, err error) {
	t.Helper()
	var tf *TooFewError
	if errors.As(err, &tf) || errors.Is(err, ErrOutOfOrder) || errors.Is(err, ErrSecondView) || errors.Is(err, ErrShareDecrypt) {
		return
	}
	if !strings.HasPrefix(err.Error(), "secagg: ") {
		t.Fatalf("%s refused with %q, which does not say who refused", what, err)
	}
}

const (
	phaseKeys = iota
	phaseShares
	phaseMasked
	phaseReveals
	phaseAfter
	phases
)

// FuzzServer feeds the server one hostile message, at a phase the input
// picks and from a sender it names, before the honest messages of that
// phase. The server must never panic; a refused message must change
// nothing, so the honest round then sums exactly the honest inputs; an
// accepted one may spoil the sum, but never crash Finish or change its
// length.
func FuzzServer(f *testing.F) {
	f.Add(uint8(phaseKeys), []byte{0, 32})
	f.Add(uint8(phaseShares), []byte{1, 1, 2, 0, 80})
	f.Add(uint8(phaseMasked), []byte{2, 32, 1, 2, 3, 4})
	f.Add(uint8(phaseReveals), []byte{0, 1, 0, 1, 1, 32, 5})
	f.Add(uint8(phaseAfter), []byte{3, 2, 0, 0, 2, 32})
	f.Fuzz(func(t *testing.T, phase uint8, in []byte) {
		const n = 4
		p := Params{Session: []byte("fuzz"), Sites: siteNames(n), Threshold: 3, Bits: 32, Length: 4}
		inputs := [][]uint64{{1, 2, 3, 4}, {10, 20, 30, 40}, {100, 200, 300, 400}, {ringMask(32), 0, 7, 9}}
		want := make([]uint64, p.Length)
		for _, x := range inputs {
			for j, v := range x {
				want[j] += v
			}
		}
		reduce(want, p.Bits)
		srv, err := NewServer(p)
		if err != nil {
			t.Fatal(err)
		}
		clients := make([]*Client, n)
		for i := range clients {
			if clients[i], err = NewClient(p, p.Sites[i], seeded(5, i)); err != nil {
				t.Fatal(err)
			}
		}
		h := &hostile{b: in, names: append(slices.Clone(p.Sites), "nobody")}
		from := h.name()
		ph := int(phase) % phases
		accepted := false
		attack := func(at int) {
			if ph != at {
				return
			}
			var err error
			switch at {
			case phaseKeys:
				err = srv.AddKeys(h.keys())
			case phaseShares:
				err = srv.AddShares(from, h.shares())
			case phaseMasked:
				err = srv.AddMaskedPacked(from, h.take())
			case phaseReveals:
				err = srv.AddReveals(from, h.reveals())
			case phaseAfter:
				// Every earlier phase is closed: late messages are refused.
				for _, err := range []error{srv.AddKeys(h.keys()), srv.AddShares(from, h.shares()), srv.AddMaskedPacked(from, h.take())} {
					if err == nil {
						t.Fatal("a message of a closed phase was accepted")
					}
					refusal(t, "late message", err)
				}
				return
			}
			if err == nil {
				accepted = true
				return
			}
			refusal(t, "hostile message", err)
		}
		// honest reports an error of an honest message: fatal while every
		// hostile message was refused, expected once one was accepted.
		honest := func(what string, err error) bool {
			t.Helper()
			if err == nil {
				return true
			}
			if !accepted {
				t.Fatalf("%s, after the hostile message was refused: %v", what, err)
			}
			refusal(t, what, err)
			return false
		}
		attack(phaseKeys)
		for _, c := range clients {
			honest("AddKeys", srv.AddKeys(c.Advertise()))
		}
		u1 := srv.Keys()
		attack(phaseShares)
		for i, c := range clients {
			sh, err := c.ShareKeys(u1)
			if honest("ShareKeys", err) {
				honest("AddShares", srv.AddShares(p.Sites[i], sh))
			}
		}
		attack(phaseMasked)
		for i, c := range clients {
			y, err := c.MaskedInput(inputs[i], srv.SharesFor(p.Sites[i]))
			if !honest("MaskedInput", err) {
				continue
			}
			b, err := Pack(p.Bits, y)
			if err != nil {
				t.Fatal(err)
			}
			honest("AddMaskedPacked", srv.AddMaskedPacked(p.Sites[i], b))
		}
		u3 := srv.Survivors()
		var signers []string
		for _, s := range u3 {
			if i := p.index(s); i >= 0 {
				if _, err := clients[i].Consistency(u3); honest("Consistency", err) {
					signers = append(signers, s)
				}
			}
		}
		attack(phaseReveals)
		for _, s := range signers {
			r, err := clients[p.index(s)].Unmask(u3, signers)
			if honest("Unmask", err) {
				honest("AddReveals", srv.AddReveals(s, r))
			}
		}
		attack(phaseAfter)
		sum, err := srv.Finish()
		if !honest("Finish", err) {
			return
		}
		if len(sum) != p.Length {
			t.Fatalf("Finish returned %d elements, Params.Length is %d", len(sum), p.Length)
		}
		if !accepted && !slices.Equal(sum, want) {
			t.Fatalf("a refused message changed the sum: %v, want %v", sum, want)
		}
	})
}

// FuzzClient feeds client 0 one hostile message, at a phase the input
// picks, before the honest one of that phase (the coordinator relays
// everything a client sees, so a hostile coordinator can send anything).
// The client must never panic; a refusal must leave it able to take the
// honest message, so the round then sums every input.
func FuzzClient(f *testing.F) {
	f.Add(uint8(0), []byte{0, 0, 32, 0, 32})
	f.Add(uint8(1), []byte{3, 1, 0, 80})
	f.Add(uint8(2), []byte{3, 0, 1, 2, 3})
	f.Add(uint8(3), []byte{3, 0, 1, 2, 3, 2, 0, 1})
	f.Fuzz(func(t *testing.T, phase uint8, in []byte) {
		const n = 4
		p := Params{Session: []byte("fuzz"), Sites: siteNames(n), Threshold: 3, Bits: 32, Length: 4}
		inputs := [][]uint64{{1, 2, 3, 4}, {10, 20, 30, 40}, {100, 200, 300, 400}, {ringMask(32), 0, 7, 9}}
		want := make([]uint64, p.Length)
		for _, x := range inputs {
			for j, v := range x {
				want[j] += v
			}
		}
		reduce(want, p.Bits)
		srv, err := NewServer(p)
		if err != nil {
			t.Fatal(err)
		}
		clients := make([]*Client, n)
		for i := range clients {
			if clients[i], err = NewClient(p, p.Sites[i], seeded(9, i)); err != nil {
				t.Fatal(err)
			}
			if err := srv.AddKeys(clients[i].Advertise()); err != nil {
				t.Fatal(err)
			}
		}
		h := &hostile{b: in, names: append(slices.Clone(p.Sites), "nobody")}
		ph := int(phase) % 4
		victim := clients[0]
		accepted := false
		// try runs the hostile call; it reports whether it was accepted.
		try := func(what string, err error) {
			if err == nil {
				accepted = true
				return
			}
			refusal(t, what, err)
		}
		honest := func(what string, err error) bool {
			t.Helper()
			if err == nil {
				return true
			}
			if !accepted {
				t.Fatalf("%s, after the hostile message was refused: %v", what, err)
			}
			refusal(t, what, err)
			return false
		}
		u1 := srv.Keys()
		if ph == 0 {
			// Start from the honest U1 and let the input change it.
			bad := slices.Clone(u1)
			for len(h.b) > 0 && len(bad) < 8 {
				switch h.byte() % 4 {
				case 0:
					bad = append(bad, h.keys())
				case 1:
					if len(bad) > 0 {
						bad = bad[:len(bad)-1]
					}
				case 2:
					if len(bad) > 0 {
						bad[len(bad)-1].CPK = h.take()
					}
				case 3:
					if len(bad) > 0 {
						bad[len(bad)-1].Site = h.name()
					}
				}
			}
			_, err := victim.ShareKeys(bad)
			try("ShareKeys", err)
		}
		for i, c := range clients {
			sh, err := c.ShareKeys(u1)
			if honest("ShareKeys", err) {
				honest("AddShares", srv.AddShares(p.Sites[i], sh))
			}
		}
		if ph == 1 {
			bad := append(h.shares(), srv.SharesFor(p.Sites[0])...)
			_, err := victim.MaskedInput(inputs[0], bad[:min(len(bad), int(h.byte())%8)])
			try("MaskedInput", err)
		}
		for i, c := range clients {
			y, err := c.MaskedInput(inputs[i], srv.SharesFor(p.Sites[i]))
			if honest("MaskedInput", err) {
				honest("AddMasked", srv.AddMasked(p.Sites[i], y))
			}
		}
		u3 := srv.Survivors()
		if ph == 2 {
			_, err := victim.Consistency(h.set())
			try("Consistency", err)
		}
		for _, c := range clients {
			_, err := c.Consistency(u3)
			honest("Consistency", err)
		}
		if ph == 3 {
			_, err := victim.Unmask(h.set(), h.set())
			try("Unmask", err)
		}
		for i, c := range clients {
			r, err := c.Unmask(u3, u3)
			if honest("Unmask", err) {
				honest("AddReveals", srv.AddReveals(p.Sites[i], r))
			}
		}
		sum, err := srv.Finish()
		if !honest("Finish", err) {
			return
		}
		if !accepted && !slices.Equal(sum, want) {
			t.Fatalf("a refused message changed the sum: %v, want %v", sum, want)
		}
	})
}
