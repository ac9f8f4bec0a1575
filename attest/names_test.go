package attest_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/federa-dev/federa/attest"
)

func TestCoordinatorID(t *testing.T) {
	if got := attest.CoordinatorID(td).String(); got != "spiffe://example.org/coordinator" {
		t.Errorf("CoordinatorID = %s", got)
	}
}

func TestValidateSiteName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"eu/paris", true},
		{"us/new-york", true},
		{"eu2/site-3", true},
		{"0/0", true},
		{"", false},
		{"paris", false},
		{"eu/", false},
		{"/paris", false},
		{"eu/fr/paris", false},
		{"EU/paris", false},
		{"eu/Paris", false},
		{"-eu/paris", false},
		{"eu/-paris", false},
		{"eu/par_is", false},
		{"eu/par is", false},
		{"eu/paris ", false},
		{"eu/paris\n", false},
		{"eu/pärís", false},
		{"eu/../paris", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := attest.ValidateSiteName(tt.name)
			if tt.ok != (err == nil) {
				t.Fatalf("ValidateSiteName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
			}
			if err != nil && (!strings.Contains(err.Error(), "eu/paris") || !strings.Contains(err.Error(), strconv.Quote(tt.name))) {
				t.Errorf("error %q does not name the input and an example", err)
			}
		})
	}
}

func TestSiteIDAndName(t *testing.T) {
	tests := []struct {
		site string
		want string // "" means an error
	}{
		{"eu/paris", "spiffe://example.org/site/eu/paris"},
		{"us/new-york", "spiffe://example.org/site/us/new-york"},
		{"paris", ""},
		{"eu/fr/paris", ""},
		{"EU/paris", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.site, func(t *testing.T) {
			id, err := attest.SiteID(td, tt.site)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("SiteID(%q) = %s, want an error", tt.site, id)
				}
				return
			}
			if err != nil || id.String() != tt.want {
				t.Fatalf("SiteID(%q) = %s, %v; want %s", tt.site, id, err, tt.want)
			}
			name, ok := attest.SiteName(id)
			if !ok || name != tt.site {
				t.Errorf("SiteName(SiteID(%q)) = %q, %v", tt.site, name, ok)
			}
			if j := attest.Jurisdiction(name); j != strings.Split(tt.site, "/")[0] {
				t.Errorf("Jurisdiction(%q) = %q", name, j)
			}
		})
	}
}

func TestSiteName(t *testing.T) {
	tests := []struct {
		id   string
		name string
		ok   bool
	}{
		{"spiffe://example.org/site/eu/paris", "eu/paris", true},
		{"spiffe://other.org/site/eu/paris", "eu/paris", true},
		{"spiffe://example.org/coordinator", "", false},
		{"spiffe://example.org/user/alice", "", false},
		{"spiffe://example.org/sites/eu/paris", "", false},
		{"spiffe://example.org/site/paris", "", false},
		{"spiffe://example.org/site/eu/fr/paris", "", false},
		{"spiffe://example.org/site/EU/paris", "", false},
		{"spiffe://example.org/site", "", false},
		{"spiffe://example.org", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			name, ok := attest.SiteName(spiffeid.RequireFromString(tt.id))
			if ok != tt.ok || (ok && name != tt.name) {
				t.Errorf("SiteName(%s) = %q, %v; want %q, %v", tt.id, name, ok, tt.name, tt.ok)
			}
		})
	}
}

func TestJurisdiction(t *testing.T) {
	for site, want := range map[string]string{
		"eu/paris":    "eu",
		"us/new-york": "us",
		"paris":       "paris",
		"":            "",
		"/paris":      "",
	} {
		if got := attest.Jurisdiction(site); got != want {
			t.Errorf("Jurisdiction(%q) = %q, want %q", site, got, want)
		}
	}
}

func TestUsers(t *testing.T) {
	alice, err := attest.UserID(td, "alice")
	if err != nil || alice.String() != "spiffe://example.org/user/alice" {
		t.Fatalf("UserID(alice) = %s, %v", alice, err)
	}
	for _, bad := range []string{"", "a/b", "alice smith", "."} {
		if id, err := attest.UserID(td, bad); err == nil {
			t.Errorf("UserID(%q) = %s, want an error", bad, id)
		}
	}
	tests := []struct {
		id   string
		user bool
	}{
		{"spiffe://example.org/user/alice", true},
		{"spiffe://example.org/user/alice/laptop", true},
		{"spiffe://other.org/user/bob", true},
		{"spiffe://example.org/user", false},
		{"spiffe://example.org/users/alice", false},
		{"spiffe://example.org/coordinator", false},
		{"spiffe://example.org/site/eu/paris", false},
		{"spiffe://example.org", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := attest.IsUser(spiffeid.RequireFromString(tt.id)); got != tt.user {
				t.Errorf("IsUser(%s) = %v, want %v", tt.id, got, tt.user)
			}
		})
	}
}
