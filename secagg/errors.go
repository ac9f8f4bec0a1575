package secagg

import (
	"errors"
	"fmt"
)

var (
	// ErrOutOfOrder reports a call made in the wrong phase: before the
	// phase it needs, after its phase was closed, or a second time where
	// the protocol allows one.
	ErrOutOfOrder = errors.New("secagg: call out of order")
	// ErrSecondView reports a site asked to sign or unmask with a survivor
	// set U3 other than the one it already signed or unmasked with. An
	// honest site acts on one U3 only; otherwise a coordinator could gather
	// both the self-mask seed and the mask key of one site.
	ErrSecondView = errors.New("secagg: a different U3 than the one this site already acted on")
	// ErrShareDecrypt reports a share that does not decrypt: its ciphertext
	// was altered, it was sent for another session or another pair of sites,
	// or its two ends saw different keys for each other (a substituted key).
	ErrShareDecrypt = errors.New("secagg: share does not decrypt")
	// ErrBadReconstruction reports revealed shares that do not fit one
	// polynomial, or a mask key that does not match the site's advertised
	// public key: some reveal was altered.
	ErrBadReconstruction = errors.New("secagg: revealed shares are inconsistent")
)

// TooFewError reports that fewer parties than the threshold remained for
// something the protocol needs: sites in a phase, consistency signatures,
// or the shares to recover one secret.
type TooFewError struct {
	// What was counted, e.g. "reveals of the self-mask seed of site-3".
	What string
	// Site is the site whose secret could not be recovered, or empty.
	Site string
	// Have is how many there were, Of how many could have been (0 when
	// not meaningful), Need the threshold.
	Have, Of, Need int
}

func (e *TooFewError) Error() string {
	if e.Of > 0 {
		return fmt.Sprintf("secagg: too few %s: %d of %d, need %d", e.What, e.Have, e.Of, e.Need)
	}
	return fmt.Sprintf("secagg: too few %s: %d, need %d", e.What, e.Have, e.Need)
}

func outOfOrder(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrOutOfOrder}, args...)...)
}
