// Package etcdtest runs a real etcd cluster for tests: one or three
// members of /usr/bin/etcd (Debian's etcd-server, which .ci/run installs),
// each its own process on its own 127.0.0.x address with free ports and a
// data directory under the test's TempDir. It waits, with a bound, until
// the cluster answers, stops every member by pid when the test ends, and
// lets a test kill (-9), stop (SIGSTOP), continue and restart one member
// and ask which member is the raft leader. A cluster may serve its
// clients over TLS with a CA and certificates made for it, and have
// etcd's authentication enabled (a root user).
//
// It owns only those processes and their directories; a test that needs
// etcd and finds no /usr/bin/etcd fails, it does not skip. It imports
// nothing of the project; only tests import it.
package etcdtest
