package attest

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// federa's SPIFFE ID layout (docs/identity.md):
//
//	spiffe://<td>/coordinator
//	spiffe://<td>/site/<jurisdiction>/<name>
//	spiffe://<td>/user/<name>
const (
	coordinatorPath = "/coordinator"
	sitePrefix      = "/site/"
	userPrefix      = "/user/"
)

var siteNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9-]*$`)

// CoordinatorID is the coordinator's ID in td.
func CoordinatorID(td spiffeid.TrustDomain) spiffeid.ID {
	id, _ := spiffeid.FromPath(td, coordinatorPath)
	return id
}

// ValidateSiteName checks a site name of the form "<jurisdiction>/<name>",
// lower-case letters, digits and dashes, e.g. "eu/paris".
func ValidateSiteName(name string) error {
	if !siteNameRE.MatchString(name) {
		return fmt.Errorf("site name %q: want <jurisdiction>/<name> in lower-case letters, digits and dashes, e.g. eu/paris", name)
	}
	return nil
}

// SiteID is the SPIFFE ID of site name (e.g. "eu/paris") in td.
func SiteID(td spiffeid.TrustDomain, name string) (spiffeid.ID, error) {
	if err := ValidateSiteName(name); err != nil {
		return spiffeid.ID{}, err
	}
	return spiffeid.FromPath(td, sitePrefix+name)
}

// SiteName returns "<jurisdiction>/<name>" for a site ID.
func SiteName(id spiffeid.ID) (string, bool) {
	p := id.Path()
	if !strings.HasPrefix(p, sitePrefix) {
		return "", false
	}
	name := strings.TrimPrefix(p, sitePrefix)
	return name, ValidateSiteName(name) == nil
}

// Jurisdiction is the first element of a site name: "eu" for "eu/paris".
func Jurisdiction(site string) string {
	j, _, _ := strings.Cut(site, "/")
	return j
}

// UserID is the SPIFFE ID of a user in td.
func UserID(td spiffeid.TrustDomain, name string) (spiffeid.ID, error) {
	return spiffeid.FromSegments(td, "user", name)
}

// IsUser reports whether id names a user.
func IsUser(id spiffeid.ID) bool {
	return strings.HasPrefix(id.Path(), userPrefix) && len(id.Path()) > len(userPrefix)
}
