package privacy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Sentinel errors, for errors.Is.
var (
	// ErrOrdersDiffer: two curves were combined that were computed on
	// different orders.
	ErrOrdersDiffer = errors.New("privacy: RDP curves use different orders")
	// ErrBudgetExhausted: what was already spent leaves no room under the
	// target ε.
	ErrBudgetExhausted = errors.New("privacy: privacy budget exhausted")
	// ErrNoiseAboveCap: meeting the target would take a noise multiplier
	// above MaxNoiseMultiplier.
	ErrNoiseAboveCap = errors.New("privacy: required noise multiplier above cap")
)

// RDP is a Rényi-DP curve: the mechanism (or composition of mechanisms) it
// describes is (Orders[i], Eps[i])-RDP for every i. Curves on the same
// orders compose by adding Eps, which is what makes an RDP curve a ledger:
// a dataset's spend across jobs and restarts is the sum of their curves.
//
// It marshals to JSON as {"orders": […], "eps": […]} and refuses to marshal
// or unmarshal a curve that does not Validate.
type RDP struct {
	Orders []float64 `json:"orders"`
	Eps    []float64 `json:"eps"`
}

// Zero returns the curve of nothing released yet on the given orders (nil
// means DefaultOrders): the start of a ledger.
func Zero(orders []float64) (RDP, error) {
	ords, err := resolveOrders(orders)
	if err != nil {
		return RDP{}, fmt.Errorf("zero rdp: %w", err)
	}
	return RDP{Orders: ords, Eps: make([]float64, len(ords))}, nil
}

// Validate reports every way r is not a usable curve: orders empty, not
// strictly increasing or not finite and above 1; Eps of a different length;
// an RDP value that is NaN, infinite or negative. Infinite values are
// refused because they mean no guarantee at that order and cannot be
// written as JSON.
func (r RDP) Validate() error {
	var errs []error
	if err := validateOrders(r.Orders); err != nil {
		errs = append(errs, err)
	}
	if len(r.Eps) != len(r.Orders) {
		errs = append(errs, fmt.Errorf("eps has %d values but orders has %d; want one RDP value per order", len(r.Eps), len(r.Orders)))
	}
	for i, e := range r.Eps {
		if math.IsNaN(e) || math.IsInf(e, 0) || e < 0 {
			errs = append(errs, fmt.Errorf("eps[%d] = %v: want a finite RDP value ≥ 0", i, e))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rdp curve: %w", err)
	}
	return nil
}

// Compose returns the curve of running both r's and o's mechanisms: the
// element-wise sum (RDP composition, Mironov 2017, Proposition 1). The
// curves must be on identical orders (ErrOrdersDiffer otherwise). Neither
// argument is modified.
func (r RDP) Compose(o RDP) (RDP, error) {
	if err := r.Validate(); err != nil {
		return RDP{}, fmt.Errorf("compose: first curve: %w", err)
	}
	if err := o.Validate(); err != nil {
		return RDP{}, fmt.Errorf("compose: second curve: %w", err)
	}
	if err := sameOrders(r.Orders, o.Orders); err != nil {
		return RDP{}, fmt.Errorf("compose: %w", err)
	}
	eps := make([]float64, len(r.Eps))
	for i := range eps {
		eps[i] = r.Eps[i] + o.Eps[i]
		if math.IsInf(eps[i], 0) {
			return RDP{}, fmt.Errorf("compose: RDP at order %v overflows float64", r.Orders[i])
		}
	}
	return RDP{Orders: append([]float64(nil), r.Orders...), Eps: eps}, nil
}

// rdpJSON has RDP's fields without its methods, so the JSON methods do not
// recurse.
type rdpJSON RDP

// MarshalJSON refuses an invalid curve rather than persisting one.
func (r RDP) MarshalJSON() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(rdpJSON(r))
}

// UnmarshalJSON refuses a curve that does not Validate, so a corrupt or
// hand-edited ledger file fails at load rather than at accounting time.
func (r *RDP) UnmarshalJSON(b []byte) error {
	var v rdpJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if err := RDP(v).Validate(); err != nil {
		return err
	}
	*r = RDP(v)
	return nil
}
