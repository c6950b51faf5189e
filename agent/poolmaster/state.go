package poolmaster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/pool"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
)

// member is a member key as read.
type member struct {
	rec    pool.MemberRecord
	modRev int64
}

// domain is a pool domain's keys as read.
type domain struct {
	spec     Spec
	specRev  int64 // the spec key's mod revision
	status   *Status
	owner    string // the owner's host, "" when no owner key
	ownerGen int64
	bad      error // the spec is unreadable
}

// Snapshot is the pool's keys at one revision.
type Snapshot struct {
	Rev         int64
	members     map[string]member
	maintenance map[string]Maintenance
	domains     map[string]*domain // by UUID
}

// read gets every key of pool p in one range read.
func read(ctx context.Context, cli *clientv3.Client, p string, log *zap.Logger) (*Snapshot, error) {
	prefix := pool.Prefix(p)
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("pool %s: read the pool's keys: %w", p, err)
	}
	s := &Snapshot{Rev: resp.Header.Revision, members: map[string]member{}, maintenance: map[string]Maintenance{}, domains: map[string]*domain{}}
	dom := func(uuid string) *domain {
		d := s.domains[uuid]
		if d == nil {
			d = &domain{}
			s.domains[uuid] = d
		}
		return d
	}
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), prefix)
		parts := strings.Split(rest, "/")
		switch {
		case len(parts) == 2 && parts[0] == "members":
			var r pool.MemberRecord
			if err := json.Unmarshal(kv.Value, &r); err != nil {
				log.Warn("unreadable member record", zap.String("key", string(kv.Key)), zap.Error(err))
				continue
			}
			r.Host = parts[1]
			s.members[parts[1]] = member{rec: r, modRev: kv.ModRevision}
		case len(parts) == 2 && parts[0] == "maintenance":
			var mt Maintenance
			_ = json.Unmarshal(kv.Value, &mt) // the key's presence is what counts
			s.maintenance[parts[1]] = mt
		case len(parts) == 3 && parts[0] == "domains":
			d := dom(parts[1])
			switch parts[2] {
			case "spec":
				d.specRev = kv.ModRevision
				if err := json.Unmarshal(kv.Value, &d.spec); err != nil {
					d.bad = fmt.Errorf("spec %s: %w", kv.Key, err)
				}
			case "status":
				var st Status
				if err := json.Unmarshal(kv.Value, &st); err == nil {
					d.status = &st
				}
			case "owner":
				var o pool.OwnerRecord
				if err := json.Unmarshal(kv.Value, &o); err != nil || o.Host == "" {
					o.Host = "(unreadable owner record)"
				}
				d.owner, d.ownerGen = o.Host, kv.ModRevision
			}
		}
	}
	// Keys of a domain without a spec (an owner left after a delete, a
	// stale status) are not pool domains.
	for uuid, d := range s.domains {
		if d.specRev == 0 {
			if d.owner == "" {
				delete(s.domains, uuid)
			} else {
				d.bad = fmt.Errorf("domain %s has an owner (%s) but no spec", uuid, d.owner)
			}
		}
	}
	return s, nil
}

// needOf is what spec's vm.cfg asks of a server.
func needOf(s Spec) (Need, error) {
	c, err := vmcfg.Parse(s.Name+"/vm.cfg", []byte(s.Config))
	if err != nil {
		return Need{}, err
	}
	n := Need{MemoryMiB: int64(c.Memory), Kind: KindWorkload, Preferred: s.Preferred}
	if c.Guest() == vmcfg.GuestOS {
		n.Kind = KindQEMU
	}
	return n, nil
}

// lookup finds a domain by name or UUID.
func (s *Snapshot) lookup(ref string) (string, *domain) {
	if d, ok := s.domains[ref]; ok && d.bad == nil {
		return ref, d
	}
	for uuid, d := range s.domains {
		if d.bad == nil && d.spec.Name == ref {
			return uuid, d
		}
	}
	return "", nil
}
