// Package secagg is the protocol core of secure aggregation: the
// coordinator learns the sum of the sites' vectors and, beyond that sum,
// nothing about any one site's vector, even when sites drop out midway.
//
// It implements Bonawitz et al. 2017, "Practical Secure Aggregation for
// Privacy-Preserving Machine Learning" (CCS '17), in its actively secure
// form with the consistency check, and the sparse-graph variant SecAgg+ of
// Bell et al. 2020, "Secure Single-Server Aggregation with (Poly)Logarithmic
// Overhead" (CCS '20). It is a pure state machine, in the manner of
// etcd/raft: Client and Server take messages and return messages; the
// caller moves them over the network, keeps the deadlines and signs. There
// is no I/O, no clock and no goroutine here, and all randomness comes from
// the io.Reader given to NewClient (crypto/rand.Reader in production).
//
// # Phases
//
// Params fix the session (job, round, attempt), the invited sites U0, the
// threshold t, the graph, the ring Z_2^Bits and the vector length. Each
// phase's survivors are the sites whose message arrived before the
// coordinator closed it: U0 ⊇ U1 ⊇ U2 ⊇ U3 ⊇ U4 ⊇ U5.
//
//  1. Advertise. Each site makes two fresh X25519 key pairs, c (encrypts
//     shares) and s (derives pairwise masks), and a random self-mask seed
//     b. It sends Keys, signed by the caller with the site's SPIFFE SVID
//     key over KeysMessage. Server.AddKeys collects them; Server.Keys closes
//     U1 and returns the list the coordinator relays, signatures attached.
//  2. Share keys. Each site verifies the signatures (outside this package),
//     then Client.ShareKeys Shamir-shares s_sk and b, t-out-of-|holders|,
//     among itself and its neighbours in U1 (everyone, for the complete
//     graph), and returns one AES-GCM-encrypted Share per neighbour.
//     Server.AddShares collects them; Server.SharesFor closes U2 and returns
//     each site's incoming shares.
//  3. Masked input. Client.MaskedInput decrypts the incoming shares and
//     returns y = x + PRG(b) ± Σ PRG(s_{u,v}) over its neighbours v in U2
//     (+ if u sorts before v, − after), all mod 2^Bits. The pairwise masks
//     cancel in the sum over any set that contains both ends of each pair.
//     Server.AddMasked (or AddMaskedPacked, straight from the wire bytes)
//     adds y to a running sum and forgets it; Server.Survivors closes U3.
//  4. Consistency check. The coordinator sends U3 to its members; each site
//     calls Client.Consistency and signs the bytes it returns
//     (ConsistencyMessage). The coordinator collects the signatures of U4.
//  5. Unmask. The coordinator sends U3 and the signatures of U4 to U4. Each
//     site verifies them and calls Client.Unmask: it requires at least t
//     signers (in its neighbourhood), all in U3, and reveals, for every site
//     v it holds shares of, its share of b_v if v ∈ U3 or of s_sk_v if
//     v ∉ U3 — never both. Server.AddReveals collects them (U5) and
//     Server.Finish recovers each b_u (u ∈ U3) and s_sk_v (v ∈ U2 \ U3) from
//     t shares, subtracts the self masks of U3 and the pairwise masks that
//     U3 added for the dropped sites, and returns Σ_{u ∈ U3} x_u mod 2^Bits.
//
// Messages per site: Keys (64 bytes of keys plus its name) and a signature;
// one 80-byte Share per neighbour; the masked vector, ceil(Bits/8) bytes
// per element; a signature; one 32-byte share per neighbour in Unmask. For
// large vectors the masked vector is all that matters: at Bits = 32 a site
// sends what a plain float32 update would, plus a few kilobytes.
//
// # Who learns what
//
// Honest-but-curious coordinator: it sees keys, ciphertexts it cannot open,
// masked vectors that are uniformly distributed on their own, and, at the
// end, b_u for the survivors and s_sk_v for the dropped sites. That is
// enough to unmask the sum over U3 and nothing else: a survivor's y still
// carries its pairwise masks with other survivors, and a dropped site's y,
// should it arrive late, still carries its self mask.
//
// A coalition of the coordinator and fewer than t sites holds fewer than t
// shares of any honest site's secrets and learns nothing from them (Shamir
// sharing is perfectly hiding below the threshold); it learns the sum of
// the honest survivors' inputs, which the output already gives it.
//
// Active coordinator: it may lie about who dropped out, sending different
// survivor sets to different sites to get both b_u and s_sk_u of an honest
// site u (which would unmask x_u alone), or a set like U3 = {u} that makes
// every other site reveal its mask key. The defences are: a site acts on
// one U3 only (Consistency and Unmask refuse a second, different one,
// ErrSecondView); it reveals nothing unless U3 holds at least t of its
// neighbourhood, including itself, and at least t sites of U3 signed that
// same U3; and t > n/2 (Params.Validate), so two different survivor sets
// cannot both gather t signatures from honest sites, each of which signs
// one. Against a coordinator colluding with n_C sites, the bound becomes
// t > (n + n_C)/2; DefaultThreshold's ceil(2n/3) meets it for n_C < n/3.
// What remains possible is what the coordinator can always do: drop honest
// sites so that the sum covers at least t sites (of which n_C are its own),
// and compute a wrong sum (the protocol gives privacy, not integrity of the
// result; a site that lies in its input or reveals corrupts the sum).
//
// # What this package checks and what the caller's signatures check
//
// The caller verifies every Keys signature before ShareKeys and every
// consistency signature before Unmask; without them a coordinator can
// invent sites and sign-off quorums. The core catches, on its own: a
// site's own keys altered in U1; keys from outside Params.Sites; one key
// advertised by two sites; degenerate X25519 keys; and any difference
// between the keys two sites saw for each other (the share ciphertext binds
// both sites' keys, so MaskedInput fails with ErrShareDecrypt naming the
// sender) — a substituted key makes the round fail, not the sum silently
// wrong. It cannot tell a substituted key from a real one when the
// substitute's private key is the coordinator's and it also forges that
// site's shares: that is exactly what the signatures on Keys rule out.
// Finish checks one spare share per secret when there is one and every
// recovered mask key against its SPK (ErrBadReconstruction).
//
// # SecAgg+
//
// With Params.Neighbors = k > 0 each site masks and shares with k
// neighbours only, on the Harary graph H(k, n) laid over a permutation of
// Sites derived from Session, so a site expands k + 1 masks instead of n
// and sends O(k + L) bytes instead of O(n + L) (what stays O(n) per site
// is reading Params: validating Sites and ranking them for the
// permutation, about a millisecond at n = 1000), and the coordinator's work
// is O(n·k + n·L) instead of O(n² + n·L). Bell et al.
// show that k = O(log n) (e.g. 2·ceil(log2 n)) keeps the guarantees above
// with overwhelming probability when the graph is random and few sites
// are corrupt or drop out. t is then per neighbourhood: Threshold must
// exceed (k+1)/2 and every site needs t of its k+1 neighbourhood at each
// phase (DefaultThreshold(k+1)). The permutation is a deterministic
// function of Session: a coordinator that picks Session could grind it for
// a graph it likes, so a caller worried about that includes in Session
// randomness the coordinator does not control.
//
// # Fixed point and overflow
//
// Federated updates are reals; the ring is Z_2^Bits. Encoding maps
// v ↦ round(v·Scale) mod 2^Bits and back through the centred lift. A sum of
// n codes decodes exactly when the sum of the rounded values stays within
// ±(2^(Bits−1) − 1). ScaleFor(bits, n, bound) returns the largest
// power-of-two Scale with n·round(bound·Scale) ≤ 2^(Bits−1) − 1, so sums of
// n values each within ±bound never wrap; clip updates to the bound first
// (Encode refuses a value that does not fit the ring at all, but cannot
// tell that a sum will overflow). Example: Bits = 32, 1000 sites, bound 1:
// Scale = 2^21, so each value is exact to 2^−22 ≈ 2.4e−7.
//
// # Costs and limits
//
// Per site: 2 + 2k X25519 operations, O(k·t) field multiplications for the
// sharing, and 1 + k mask expansions of the vector (k = n − 1 for the
// complete graph), done in one pass over the vector; the masked vector is
// the only large message. The coordinator: O(n·k) small messages, one pass
// per masked vector into an O(Length) sum, and at Finish one mask
// expansion per survivor plus one per (dropped site, surviving neighbour)
// pair, and one Lagrange interpolation per distinct set of revealers
// (shared by all secrets on the complete graph). Sites are limited to
// MaxSites (2^20) as a sanity bound; Shamir x-coordinates are positions in
// Sites and the field has room for about 2^255.
//
// # Cryptography
//
// Shamir sharing over GF(2^255 − 19); a holder's x-coordinate is its
// 1-based position in Params.Sites. Secrets are uniform field elements
// whose 32-byte little-endian form is the X25519 private key or the PRG
// seed. Share encryption: AES-256-GCM with a key from HKDF-SHA256 over
// X25519(c_from, c_to), the session and both names; a fixed nonce, since
// each key encrypts one message. Masks: AES-256-CTR keyed by HKDF-SHA256
// over the seed (b, or X25519(s_u, s_v)), the session and the owners'
// names, ceil(Bits/8) little-endian bytes per element. Field arithmetic,
// X25519, AES-GCM and AES-CTR (with AES hardware) are constant time;
// Lagrange coefficients depend only on public x-coordinates. Not constant
// time: bookkeeping on public data (names, counts), rejection of
// non-canonical shares, and the float encoding of inputs.
package secagg
