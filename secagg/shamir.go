package secagg

import "io"

// Shamir t-of-n sharing over GF(2^255 − 19). A holder's x-coordinate is its
// 1-based position in Params.Sites, so coordinates are distinct, non-zero
// and public.

// shamirSplit returns f(x) for each x in xs, where f is a fresh random
// polynomial of degree t−1 with f(0) = secret.
func shamirSplit(secret fe, t int, xs []uint64, rand io.Reader) ([]fe, error) {
	coef := make([]fe, t)
	coef[0] = secret
	for i := 1; i < t; i++ {
		c, err := feRandom(rand)
		if err != nil {
			return nil, err
		}
		coef[i] = c
	}
	out := make([]fe, len(xs))
	for i, x := range xs {
		out[i] = hornerAt(coef, feFromUint(x))
	}
	// The coefficients would reveal the secret; do not leave them in memory
	// longer than needed.
	clear(coef)
	return out, nil
}

func hornerAt(coef []fe, x fe) fe {
	acc := coef[len(coef)-1]
	for i := len(coef) - 2; i >= 0; i-- {
		acc = feAdd(feMul(acc, x), coef[i])
	}
	return acc
}

// lagrangeAt returns the coefficients λ_i with f(at) = Σ λ_i·f(xs[i]) for
// every polynomial f of degree below len(xs). The xs must be distinct and
// differ from at unless at is one of them. Cost: O(len(xs)²)
// multiplications and one inversion.
func lagrangeAt(xs []uint64, at uint64) []fe {
	t := len(xs)
	a := feFromUint(at)
	// Numerators Π_{j≠i} (at − x_j) from prefix and suffix products.
	diff := make([]fe, t)
	for j, x := range xs {
		diff[j] = feSub(a, feFromUint(x))
	}
	num := make([]fe, t)
	acc := fe{1}
	for i := range t {
		num[i] = acc
		acc = feMul(acc, diff[i])
	}
	acc = fe{1}
	for i := t - 1; i >= 0; i-- {
		num[i] = feMul(num[i], acc)
		acc = feMul(acc, diff[i])
	}
	// Denominators Π_{j≠i} (x_i − x_j), inverted together.
	den := make([]fe, t)
	for i, xi := range xs {
		d := fe{1}
		fxi := feFromUint(xi)
		for j, xj := range xs {
			if j != i {
				d = feMul(d, feSub(fxi, feFromUint(xj)))
			}
		}
		den[i] = d
	}
	feBatchInv(den)
	for i := range num {
		num[i] = feMul(num[i], den[i])
	}
	return num
}

// combine returns Σ λ_i·ys[i].
func combine(lambda, ys []fe) fe {
	var acc fe
	for i := range lambda {
		acc = feAdd(acc, feMul(lambda[i], ys[i]))
	}
	return feCanon(acc)
}
