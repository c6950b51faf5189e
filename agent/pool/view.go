package pool

import clientv3 "go.etcd.io/etcd/client/v3"

// Prefix is the prefix of every key of pool name.
func Prefix(name string) string { return poolPrefix(name) }

// MembersPrefix is the prefix of pool name's member keys (members/HOST).
func MembersPrefix(name string) string { return membersPrefix(name) }

// CheckSegment refuses a name that cannot be one key segment (a host
// name, a domain UUID).
func CheckSegment(what, s string) error { return checkSegment(what, s) }

// Client is the member's etcd client, for reading and watching the
// pool's keys (the pool master's view). Writes go through the Member's
// own methods or, as master, Master.Write; nothing else may write with it.
func (m *Member) Client() *clientv3.Client { return m.cli }
