package config

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// CompileHostsAllow compiles [relocation] hosts_allow patterns the way
// xend applied them: each is a regular expression matched at the start of
// the peer's IP address or host name (Python's re.match), so the result
// is the pattern anchored with "^(?:...)". A peer is allowed if any one
// matches; no patterns means every peer.
//
// The patterns are Go (RE2) syntax, which covers what hosts-allow lists
// use in practice (^, $, ., .*, \., [..], (a|b), {n}); the error for a
// Python-only construct says so: look-ahead and look-behind, back-
// references (\1, (?P=name)), \Z (use $ or \z) and the verbose flag
// (?x) are rejected. The error names the pattern.
func CompileHostsAllow(patterns []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, 0, len(patterns))
	for _, p := range patterns {
		// Compile the pattern alone first: wrapped, an unbalanced one such
		// as "a)|(b" would compile into something else.
		if _, err := regexp.Compile(p); err != nil {
			return nil, fmt.Errorf("pattern %q: %v%s", p, err, hostsAllowHint(p, err))
		}
		re, err := regexp.Compile("^(?:" + p + ")")
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %v", p, err)
		}
		out = append(out, re)
	}
	return out, nil
}

func hostsAllowHint(p string, err error) string {
	var se *syntax.Error
	if !errors.As(err, &se) {
		return ""
	}
	switch se.Code {
	case syntax.ErrInvalidNamedCapture:
		if strings.Contains(p, "(?<=") || strings.Contains(p, "(?<!") {
			return " (Go's regular expressions have no look-behind)"
		}
	case syntax.ErrInvalidPerlOp:
		if strings.Contains(p, "(?x") {
			return " (Go's regular expressions have no verbose flag (?x))"
		}
		return " (Go's regular expressions have no look-ahead, look-behind or (?P=name) back-references)"
	case syntax.ErrInvalidEscape:
		switch {
		case strings.Contains(p, `\Z`):
			return ` (Python's \Z is written $ or \z)`
		case strings.ContainsAny(se.Expr, "123456789"):
			return " (Go's regular expressions have no back-references)"
		}
	case syntax.ErrMissingRepeatArgument:
		if strings.HasPrefix(p, "*") {
			return ` (hosts_allow takes regular expressions, not host name patterns: for *.example.com write ^.*\.example\.com$)`
		}
	case syntax.ErrInvalidRepeatOp:
		return " (possessive and nested repetitions such as a++ or a** do not exist in Go's syntax)"
	}
	return ""
}
