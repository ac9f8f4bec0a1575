package privacy

import (
	"errors"
	"fmt"
	"math"
)

// DefaultOrders are the Rényi orders the accountant uses when a caller
// passes nil: 1.1, 1.2, …, 10.9 and then 12, 13, …, 63. They are the orders
// of Opacus's RDPAccountant.DEFAULT_ALPHAS and TF Privacy's MNIST tutorial,
// built with the same floating-point operations (1 + x/10.0), so curves
// computed here line up order for order with theirs.
//
// Curves only compose on identical orders, so a ledger keeps the orders it
// was started with. Do not modify this slice; copy it.
var DefaultOrders = defaultOrders()

// WideOrders are DefaultOrders (up to 63) and larger ones, which small ε
// needs: converting at order α costs at least log(1/δ)/(α−1), so with α ≤
// 63 no noise certifies ε below about 0.19 at δ = 1e-5. A site's ledger
// accounts on them. Do not modify this slice; copy it.
var WideOrders = append(defaultOrders(), 80, 96, 128, 192, 256, 384, 512, 768, 1024)

func defaultOrders() []float64 {
	o := make([]float64, 0, 99+52)
	for x := 1; x < 100; x++ {
		o = append(o, 1+float64(x)/10.0)
	}
	for a := 12; a < 64; a++ {
		o = append(o, float64(a))
	}
	return o
}

// resolveOrders returns a private copy of orders, or of DefaultOrders when
// orders is nil, after checking them.
func resolveOrders(orders []float64) ([]float64, error) {
	if orders == nil {
		orders = DefaultOrders
	}
	if err := validateOrders(orders); err != nil {
		return nil, err
	}
	return append([]float64(nil), orders...), nil
}

// MaxOrder is the largest Rényi order accepted. The integer-order sum has
// α terms, so orders in the millions would make accounting slow; useful
// orders for the sampled Gaussian mechanism stay in the hundreds.
const MaxOrder = 1e5

// validateOrders requires a non-empty, strictly increasing list of orders
// in (1, MaxOrder]: the conversions divide by α−1, and a canonical order
// makes "same orders" a plain element-wise comparison.
func validateOrders(orders []float64) error {
	if len(orders) == 0 {
		return errors.New("orders: empty; want at least one order 1 < α ≤ 1e5 (nil means DefaultOrders)")
	}
	var errs []error
	for i, a := range orders {
		switch {
		case math.IsNaN(a) || a <= 1 || a > MaxOrder:
			errs = append(errs, fmt.Errorf("orders[%d] = %v: want an order 1 < α ≤ %g", i, a, float64(MaxOrder)))
		case i > 0 && !(a > orders[i-1]):
			errs = append(errs, fmt.Errorf("orders[%d] = %v: orders must be strictly increasing (orders[%d] = %v)", i, a, i-1, orders[i-1]))
		}
	}
	return errors.Join(errs...)
}

func sameOrders(a, b []float64) error {
	if len(a) != len(b) {
		return fmt.Errorf("%w: %d orders vs %d", ErrOrdersDiffer, len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Errorf("%w: orders[%d] is %v vs %v", ErrOrdersDiffer, i, a[i], b[i])
		}
	}
	return nil
}
