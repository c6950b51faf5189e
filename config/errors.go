package config

import (
	"fmt"
	"strings"
)

// Problem is an error in one option's value, positioned where the value
// came from. Its text is
//
//	file:line: [section] key: message
//	file:line: xend-option (imported as [section] key): message
//	file: [section] key (default): message
type Problem struct {
	Where   string // "file:line"; for a default value the agent.ini name or ""
	Section string // "" for a key outside any section
	Key     string
	Xend    string // the xend-config.sxp option the value came from, if any
	Default bool   // the value is the built-in default
	Err     error
}

func (p *Problem) Error() string {
	var b strings.Builder
	if p.Where != "" {
		b.WriteString(p.Where)
		b.WriteString(": ")
	}
	switch {
	case p.Xend != "":
		fmt.Fprintf(&b, "%s (imported as [%s] %s)", p.Xend, p.Section, p.Key)
	case p.Section == "" && p.Key == "":
	case p.Section == "":
		b.WriteString(p.Key)
	case p.Key == "":
		fmt.Fprintf(&b, "[%s]", p.Section)
	default:
		fmt.Fprintf(&b, "[%s] %s", p.Section, p.Key)
	}
	if p.Default {
		b.WriteString(" (default)")
	}
	b.WriteString(": ")
	if p.Err != nil {
		b.WriteString(p.Err.Error())
	}
	return b.String()
}

func (p *Problem) Unwrap() error { return p.Err }

// ValidationError holds every error found in a configuration: syntax
// errors of agent.ini (*ini.Error) or of xend-config.sxp (*sxp.Error), and
// *Problem for bad options. Its text is one error per line.
type ValidationError struct {
	Errs []error
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

func (e *ValidationError) Unwrap() []error { return e.Errs }

// flatten turns an errors.Join result into its parts.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// Suggest returns the candidate closest to s if it is a plausible typo
// (fewer than maxEdits edits away), for "did you mean" hints, or "". Ties
// go to the candidate that sorts first.
func Suggest(s string, candidates []string, maxEdits int) string {
	best, bestD := "", maxEdits
	for _, c := range candidates {
		d := editDistance(s, c, bestD+1) // exact up to bestD, so ties are seen
		if d < maxEdits && (d < bestD || d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	return best
}

// suggest is Suggest with this package's tolerance.
func suggest(s string, candidates []string) string { return Suggest(s, candidates, 3) }

// editDistance is the Levenshtein distance between a and b, or limit when
// it is at least limit (short ASCII names; long ones count as limit).
func editDistance(a, b string, limit int) int {
	if len(a) > 64 || len(b) > 64 {
		return limit
	}
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	if prev[len(b)] >= limit {
		return limit
	}
	return prev[len(b)]
}
