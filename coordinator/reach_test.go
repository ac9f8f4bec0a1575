package coordinator

import (
	"strings"
	"testing"

	federav1 "github.com/federa-dev/federa/proto/federav1"
)

// TestUnreachableAtSubmit: a job no site wait could start is refused with
// an error naming the field and what the coordinator's sites are; a job
// whose sites may yet connect is accepted.
func TestUnreachableAtSubmit(t *testing.T) {
	known := []string{"eu/paris", "sg/singapore", "us/boston"}
	bc := map[string]bool{"breast-cancer": true}
	all := map[string]map[string]bool{"eu/paris": bc, "sg/singapore": bc, "us/boston": {"breast-cancer": true, "heart": true}}
	two := map[string]map[string]bool{"eu/paris": bc, "sg/singapore": bc}
	tests := []struct {
		name      string
		connected map[string]map[string]bool
		spec      *federav1.JobSpec
		want      []string // empty: accepted
	}{
		{name: "misspelt dataset, every known site connected", connected: all,
			spec: &federav1.JobSpec{Dataset: "breast-cancr", MinSites: 2},
			want: []string{"field dataset", `no site serves dataset "breast-cancr"`, "all 3 sites", "[breast-cancer, heart]"}},
		{name: "misspelt dataset, a known site not connected yet", connected: two,
			spec: &federav1.JobSpec{Dataset: "breast-cancr", MinSites: 2}},
		{name: "too few sites serve it, every known site connected", connected: all,
			spec: &federav1.JobSpec{Dataset: "heart", MinSites: 2},
			want: []string{"field dataset", `1 of the 2 sites needed (min_sites) serve dataset "heart" (us/boston)`}},
		{name: "min_sites beyond the known sites", connected: two,
			spec: &federav1.JobSpec{Dataset: "breast-cancer", MinSites: 5},
			want: []string{"field min_sites", "5 sites needed", "knows only 3 (eu/paris, sg/singapore, us/boston)", "at most 3"}},
		{name: "listed site connected without the dataset", connected: all,
			spec: &federav1.JobSpec{Dataset: "heart", MinSites: 1, Sites: []string{"eu/paris", "us/boston"}},
			want: []string{"field dataset", "site eu/paris does not serve it (it serves: [breast-cancer])"}},
		{name: "listed site not connected yet", connected: two,
			spec: &federav1.JobSpec{Dataset: "heart", MinSites: 1, Sites: []string{"us/boston"}}},
		{name: "a good job", connected: all,
			spec: &federav1.JobSpec{Dataset: "breast-cancer", MinSites: 3}},
		{name: "nothing connected yet",
			spec: &federav1.JobSpec{Dataset: "breast-cancr", MinSites: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := siteView{known: known, connected: tt.connected}
			err := v.unreachable(tt.spec)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted; want refused")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestWaitingMessage: while a job waits, its message counts the sites that
// serve its dataset, not every connected site, and says what the connected
// ones serve, so a misspelt dataset is visible at once.
func TestWaitingMessage(t *testing.T) {
	v := siteView{known: []string{"eu/a", "eu/b", "eu/c", "eu/d"}, connected: map[string]map[string]bool{
		"eu/a": {"a": true}, "eu/b": {"b": true}, "eu/c": {"a": true},
	}}
	got := v.waiting("x", 0, 2)
	want := `waiting for sites: 0 of 2 sites serving dataset "x" connected (3 connected sites serve: a, b; not connected: eu/d)`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := (siteView{known: []string{"eu/a"}}).waiting("x", 0, 1); !strings.Contains(got, "(no site connected; not connected: eu/a)") {
		t.Fatalf("with nothing connected: %s", got)
	}
}
