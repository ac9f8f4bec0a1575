package site

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/federa-dev/federa/attest"
)

// ledger is the site's privacy budget account: ε spent per dataset by
// every DP release, across jobs and restarts (state_dir/privacy.json). The
// egress policy sees the running total, so a site can cap it.
type ledger struct {
	mu    sync.Mutex
	path  string
	spent map[string]float64
}

func openLedger(stateDir string) (*ledger, error) {
	l := &ledger{spent: map[string]float64{}}
	if stateDir == "" {
		return l, nil
	}
	l.path = filepath.Join(stateDir, "privacy.json")
	b, err := os.ReadFile(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read privacy ledger: %w", err)
	}
	if err := json.Unmarshal(b, &l.spent); err != nil {
		return nil, fmt.Errorf("read privacy ledger %s: %w", l.path, err)
	}
	return l, nil
}

// Spent is the ε spent so far on dataset.
func (l *ledger) Spent(dataset string) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spent[dataset]
}

// Charge adds eps to dataset's account, durably, before the release it
// pays for leaves the site.
func (l *ledger) Charge(dataset string, eps float64) (float64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.spent[dataset] += eps
	if l.path == "" {
		return l.spent[dataset], nil
	}
	b, err := json.MarshalIndent(l.spent, "", "  ")
	if err != nil {
		return 0, err
	}
	if err := attest.WriteFileAtomic(l.path, append(b, '\n'), 0o600); err != nil {
		l.spent[dataset] -= eps
		return 0, fmt.Errorf("record privacy spend: %w", err)
	}
	return l.spent[dataset], nil
}
