package poolmaster

import (
	"context"
	"fmt"
	"sort"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ovs-agent/ovs-agent/agent/pool"
)

// Draining a member (issue 15, point 5): a member in maintenance, or
// whose agent is stopping, has its running pool domains migrated live to
// the others by its own agent, which hands each domain's ownership over
// with the migration (agent/poolmove.go). This file is what that agent
// needs of the pool's records: where each of its domains should go
// (Away, placement as the master does it, the draining member and every
// member in maintenance or leaving left out) and whether it is in
// maintenance (MaintenanceKey, to watch). The master itself does not
// dispatch migrations: the agent that drains must be alive to migrate,
// and one that stops drains before its API closes.

// MaintenanceKey is the key whose presence puts host in maintenance.
func MaintenanceKey(poolName, host string) string { return maintenanceKey(poolName, host) }

// Move is where one domain of a draining member should go.
type Move struct {
	UUID, Name string
	HA         bool
	Priority   int
	// To is the chosen member ("" when none fits: Why says why), with its
	// record (its relocation address).
	To    string
	ToRec pool.MemberRecord
	Why   string
}

// Away plans, for every pool domain m owns whose spec wants it running,
// the member it should migrate to: HA domains first, higher priority
// first, then by name; each placed as the master places (Auto or the
// preferred servers, memory and engine), on members other than m that are
// not in maintenance nor leaving, the memory each placement takes counted
// for the next. exclude maps a domain's UUID to members it must not go to
// (a migration there failed).
func Away(ctx context.Context, m *pool.Member, exclude map[string][]string) ([]Move, error) {
	s, err := read(ctx, m.Client(), m.Pool(), zapNop)
	if err != nil {
		return nil, err
	}
	var cands []Candidate
	for host, mem := range s.members {
		if host == m.Host() {
			continue
		}
		_, maint := s.maintenance[host]
		c := Candidate{Host: host, FreeMiB: mem.rec.FreeMemoryMiB, Engines: mem.rec.Engines, Maintenance: maint}
		switch {
		case mem.rec.Leaving:
			c.Excluded = "it is stopping (its pool domains are migrating away)"
		case mem.rec.Relocation == "":
			c.Excluded = "it has no relocation listener ([relocation] server = no)"
		}
		cands = append(cands, c)
	}
	var moves []Move
	needs := map[string]Need{}
	for uuid, d := range s.domains {
		if d.bad != nil || d.owner != m.Host() || d.spec.Desired != DesiredRunning || d.spec.Adopting != nil {
			continue
		}
		mv := Move{UUID: uuid, Name: d.spec.Name, HA: d.spec.HA, Priority: d.spec.Priority}
		n, err := needOf(d.spec)
		if err != nil {
			mv.Why = "its vm.cfg does not parse: " + err.Error()
		}
		needs[uuid] = n
		moves = append(moves, mv)
	}
	sort.Slice(moves, func(i, j int) bool {
		a, b := moves[i], moves[j]
		if a.HA != b.HA {
			return a.HA
		}
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		return a.Name < b.Name
	})
	for i := range moves {
		mv := &moves[i]
		if mv.Why != "" {
			continue
		}
		cs := make([]Candidate, len(cands))
		copy(cs, cands)
		for j := range cs {
			for _, h := range exclude[mv.UUID] {
				if cs[j].Host == h && cs[j].Excluded == "" {
					cs[j].Excluded = "a migration there failed"
				}
			}
		}
		host, why := Place(needs[mv.UUID], cs)
		if host == "" {
			mv.Why = why
			continue
		}
		mv.To, mv.ToRec = host, s.members[host].rec
		for j := range cands {
			if cands[j].Host == host {
				cands[j].FreeMiB -= needs[mv.UUID].MemoryMiB
			}
		}
	}
	return moves, nil
}

// InMaintenance says whether host is in maintenance, and the revision the
// answer is at (to watch from).
func InMaintenance(ctx context.Context, m *pool.Member, host string) (bool, int64, error) {
	resp, err := m.Client().Get(ctx, maintenanceKey(m.Pool(), host), clientv3.WithCountOnly())
	if err != nil {
		return false, 0, fmt.Errorf("pool %s: is %s in maintenance: %w", m.Pool(), host, err)
	}
	return resp.Count > 0, resp.Header.Revision, nil
}
