package web

import (
	"slices"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// participation is a job's rounds × sites grid: who trained in each
// round, who was missing.
type participation struct {
	Sites []string
	Rows  []participationRow
}

type participationRow struct {
	Round int32
	Cells []cell
}

type cell struct {
	Site  string
	State string // "took part", "missing" or "" (not one of the round's sites)
}

func participationOf(j *federav1.Job) participation {
	var p participation
	for _, s := range j.GetSites() {
		p.Sites = append(p.Sites, s.GetSite())
	}
	for _, r := range j.GetRounds() {
		for _, s := range append(slices.Clone(r.GetParticipants()), r.GetMissing()...) {
			if !slices.Contains(p.Sites, s) {
				p.Sites = append(p.Sites, s)
			}
		}
	}
	slices.Sort(p.Sites)
	for _, r := range j.GetRounds() {
		row := participationRow{Round: r.GetRound()}
		for _, s := range p.Sites {
			c := cell{Site: s}
			switch {
			case slices.Contains(r.GetParticipants(), s):
				c.State = "took part"
			case slices.Contains(r.GetMissing(), s):
				c.State = "missing"
			}
			row.Cells = append(row.Cells, c)
		}
		p.Rows = append(p.Rows, row)
	}
	return p
}
