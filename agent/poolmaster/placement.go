package poolmaster

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Kinds of guest a Need asks an engine for.
const (
	KindQEMU     = "qemu"     // an operating system, run by the qemu engine
	KindWorkload = "workload" // the workload guest, run by kvm or sim
)

// Need is what a domain asks of the server it is placed on.
type Need struct {
	MemoryMiB int64
	Kind      string // KindQEMU or KindWorkload
	// Preferred, when not empty, are the only servers it may go to
	// (Manual placement); empty is Auto.
	Preferred []string
}

// Candidate is a member as placement sees it.
type Candidate struct {
	Host        string
	FreeMiB     int64    // free memory less what the master has placed there since the member last said
	Engines     []string // the member record's engines
	Maintenance bool
	// Excluded, when not empty, says why this domain may not go there
	// just now (a start there failed).
	Excluded string
}

// runs says whether engines can run kind.
func runs(engines []string, kind string) bool {
	switch kind {
	case KindQEMU:
		return slices.Contains(engines, "qemu")
	default:
		return slices.Contains(engines, "kvm") || slices.Contains(engines, "sim")
	}
}

func engineWord(kind string) string {
	if kind == KindQEMU {
		return "engine qemu"
	}
	return "a workload engine (kvm or sim)"
}

// Place chooses the server for a domain: among the candidates that may
// take it (preferred, if the need names any; not in maintenance; not
// excluded; the engine; the memory), the one with the most free memory,
// ties to the first name. With none it returns "" and why, naming what
// each server lacks.
func Place(n Need, cands []Candidate) (host, reason string) {
	sorted := slices.Clone(cands)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Host < sorted[j].Host })
	var best *Candidate
	var why []string
	excluded := false
	seen := map[string]bool{}
	for i := range sorted {
		c := &sorted[i]
		seen[c.Host] = true
		if len(n.Preferred) > 0 && !slices.Contains(n.Preferred, c.Host) {
			continue
		}
		switch {
		case c.Maintenance:
			why = append(why, c.Host+": in maintenance")
		case c.Excluded != "":
			excluded = true
			why = append(why, c.Host+": "+c.Excluded)
		case !runs(c.Engines, n.Kind):
			why = append(why, fmt.Sprintf("%s: no %s (has %s)", c.Host, strings.TrimPrefix(engineWord(n.Kind), "engine "), engineList(c.Engines)))
		case c.FreeMiB < n.MemoryMiB:
			why = append(why, fmt.Sprintf("%s: %d MiB free", c.Host, c.FreeMiB))
		case best == nil || c.FreeMiB > best.FreeMiB:
			best = c
		}
	}
	if best != nil {
		return best.Host, ""
	}
	for _, p := range n.Preferred {
		if !seen[p] {
			why = append(why, p+": not a member")
		}
	}
	what := "no server"
	if len(n.Preferred) > 0 {
		what = "no preferred server (" + strings.Join(n.Preferred, ", ") + ")"
	}
	r := fmt.Sprintf("%s with %d MiB free and %s", what, n.MemoryMiB, engineWord(n.Kind))
	if excluded {
		r = fmt.Sprintf("%s to start it on now (it needs %d MiB free and %s)", what, n.MemoryMiB, engineWord(n.Kind))
	}
	if len(why) > 0 {
		r += ": " + strings.Join(why, "; ")
	} else if len(n.Preferred) == 0 {
		r += ": the pool has no members"
	}
	return "", r
}

func engineList(e []string) string {
	if len(e) == 0 {
		return "none"
	}
	return strings.Join(e, ", ")
}
