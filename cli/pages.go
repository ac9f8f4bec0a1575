package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// pageFlags are the paging flags of a list command: the command follows
// the coordinator's pages to the end, or stops after --limit items.
type pageFlags struct {
	noun     string // plural: "jobs", "queries"
	limit    int
	pageSize int
	token    string
}

func (p *pageFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&p.limit, "limit", 0, fmt.Sprintf("list at most this many %s (0: all of them)", p.noun))
	cmd.Flags().StringVar(&p.token, "page-token", "", fmt.Sprintf("start after the %s a previous --limit listed (its next_page_token)", p.noun))
	cmd.Flags().IntVar(&p.pageSize, "page-size", 500, fmt.Sprintf("%s to ask the coordinator for per page (1 to 1000)", p.noun))
}

func (p *pageFlags) validate() error {
	if p.limit < 0 {
		return fmt.Errorf("flag --limit: %d; want 0 (all %s) or more", p.limit, p.noun)
	}
	if p.pageSize < 1 || p.pageSize > 1000 {
		return fmt.Errorf("flag --page-size: %d; want 1 to 1000", p.pageSize)
	}
	return nil
}

// followPages asks fetch for page after page, from --page-token, until
// the last page or --limit items, and returns the items and the token
// that continues after them ("" if none is left).
func followPages[T any](p *pageFlags, fetch func(token string, size int32) ([]T, string, error)) ([]T, string, error) {
	var all []T
	token := p.token
	for {
		size := int32(p.pageSize)
		if left := p.limit - len(all); p.limit > 0 && left < int(size) {
			size = int32(left)
		}
		items, next, err := fetch(token, size)
		if err != nil {
			return nil, "", err
		}
		all = append(all, items...)
		token = next
		if token == "" || (p.limit > 0 && len(all) >= p.limit) {
			return all, token, nil
		}
	}
}
