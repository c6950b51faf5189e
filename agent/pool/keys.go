package pool

import (
	"fmt"
	"regexp"
)

// Root is the prefix of every pool's keys in etcd.
const Root = "/ovs/pools/"

func poolPrefix(pool string) string { return Root + pool + "/" }

func membersPrefix(pool string) string { return poolPrefix(pool) + "members/" }

func memberKey(pool, host string) string { return membersPrefix(pool) + host }

// masterPrefix is the election's prefix; concurrency.Election adds
// "/LEASE".
func masterPrefix(pool string) string { return poolPrefix(pool) + "master" }

func ownerKey(pool, domain string) string { return poolPrefix(pool) + "domains/" + domain + "/owner" }

var segmentRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// checkSegment refuses a name that would not be one key segment (a host
// name, a domain UUID).
func checkSegment(what, s string) error {
	if !segmentRE.MatchString(s) {
		return fmt.Errorf("%s %q cannot name an etcd key (1-128 of letters, digits, '.', '_', '-', starting with a letter or digit)", what, s)
	}
	return nil
}
