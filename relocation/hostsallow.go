package relocation

import (
	"regexp"

	"github.com/ovs-agent/ovs-agent/config"
)

// HostsAllow is xend's xend-relocation-hosts-allow: regular expressions
// matched at the start of the peer's IP address or of one of its host
// names; a peer is allowed if any one matches. No patterns allow everyone.
type HostsAllow struct {
	res []*regexp.Regexp
}

// NewHostsAllow compiles the patterns (see config.CompileHostsAllow).
func NewHostsAllow(patterns []string) (HostsAllow, error) {
	res, err := config.CompileHostsAllow(patterns)
	if err != nil {
		return HostsAllow{}, err
	}
	return HostsAllow{res: res}, nil
}

// Empty reports whether everyone is allowed.
func (h HostsAllow) Empty() bool { return len(h.res) == 0 }

// NeedsNames reports whether host names can matter (a pattern that the IP
// alone did not match could still match a name).
func (h HostsAllow) NeedsNames() bool { return len(h.res) > 0 }

// Match says whether the peer is allowed, and by which pattern. names is
// called only when the IP address matched no pattern.
func (h HostsAllow) Match(ip string, names func() []string) (bool, string) {
	if len(h.res) == 0 {
		return true, ""
	}
	for _, re := range h.res {
		if re.MatchString(ip) {
			return true, re.String()
		}
	}
	if names == nil {
		return false, ""
	}
	for _, n := range names() {
		for _, re := range h.res {
			if re.MatchString(n) {
				return true, re.String()
			}
		}
	}
	return false, ""
}
