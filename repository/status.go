package repository

import (
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// State is where a repository stands.
type State string

// Repository states.
const (
	// StateMounted: mounted at MountPoint. Error may still say that the
	// last change (new options, say) could not be applied.
	StateMounted State = "mounted"
	// StateMounting and StateUnmounting: a mount or unmount is running.
	StateMounting   State = "mounting"
	StateUnmounting State = "unmounting"
	// StateUnmounted: configured but not mounted (repositories stopped).
	StateUnmounted State = "unmounted"
	// StateOffline: taken offline with ovs-offlinerepo; it stays
	// unmounted until the repositories are started again.
	StateOffline State = "offline"
	// StateError: a mount, unmount or configuration problem; Error says
	// what. A repository whose line is bad keeps its mount as it was.
	StateError State = "error"
	// StateInUse: it should be unmounted (removed, taken offline,
	// stopped) but running domains use it, so it stays mounted; Domains
	// lists them.
	StateInUse State = "in use"
)

// Status is what the agent knows about one repository.
type Status struct {
	UUID        string    `xmlrpc:"uuid" json:"uuid"`
	Source      string    `xmlrpc:"source" json:"source"`
	Options     string    `xmlrpc:"options" json:"options"`
	MountPoint  string    `xmlrpc:"mount_point" json:"mount_point"`
	Shared      string    `xmlrpc:"shared" json:"shared"` // 0, 1, C; "" until the metadata was read
	Description string    `xmlrpc:"description" json:"description"`
	State       State     `xmlrpc:"state" json:"state"`
	Error       string    `xmlrpc:"error" json:"error"`
	Domains     []string  `xmlrpc:"domains" json:"domains"`           // running domains using it
	Size        uint64    `xmlrpc:"size" json:"size"`                 // bytes; 0 when unknown
	Free        uint64    `xmlrpc:"free" json:"free"`                 // bytes available; 0 when unknown
	ClusterRoot bool      `xmlrpc:"cluster_root" json:"cluster_root"` // mounted at the root as the cluster root
	Configured  bool      `xmlrpc:"configured" json:"configured"`     // listed in the repositories file
	Heartbeat   time.Time `xmlrpc:"heartbeat" json:"heartbeat"`       // cluster root: last refresh of the heartbeat file
}

// Report is the state of all repositories.
type Report struct {
	Repositories []Status `xmlrpc:"repositories" json:"repositories"`
	// Problems are the bad lines of the configuration files (and a file
	// that could not be read), as "file:line: message".
	Problems []string `xmlrpc:"problems" json:"problems"`
	// Stopped is true after `ovsrepositories stop` until the next start.
	Stopped bool `xmlrpc:"stopped" json:"stopped"`
}

// Find returns the status of uuid (any spelling).
func (r Report) Find(uuid string) (Status, bool) {
	k := CanonicalUUID(uuid)
	for _, s := range r.Repositories {
		if CanonicalUUID(s.UUID) == k {
			return s, true
		}
	}
	return Status{}, false
}

// OK reports whether every configured repository is mounted without an
// error, no removal is pending and the files have no problems.
func (r Report) OK() bool {
	if len(r.Problems) > 0 {
		return false
	}
	for _, s := range r.Repositories {
		if s.Error != "" || s.State == StateError || s.State == StateInUse {
			return false
		}
		if !r.Stopped && s.Configured && s.State != StateMounted && s.State != StateOffline {
			return false
		}
	}
	return true
}

func sortStatuses(s []Status, order map[string]int) {
	sort.SliceStable(s, func(i, j int) bool {
		oi, iok := order[CanonicalUUID(s[i].UUID)]
		oj, jok := order[CanonicalUUID(s[j].UUID)]
		if iok != jok {
			return iok
		}
		if oi != oj {
			return oi < oj
		}
		return s[i].UUID < s[j].UUID
	})
}

// statfser measures file systems without ever blocking its caller for
// longer than a timeout: statfs on a dead NFS server can hang, and such a
// call is left to finish (or not) in the background, and no second call
// for the same path is started meanwhile.
type statfser struct {
	mu      sync.Mutex
	pending map[string]bool
	timeout time.Duration
}

func (s *statfser) size(path string) (size, free uint64, ok bool) {
	s.mu.Lock()
	if s.pending == nil {
		s.pending = map[string]bool{}
	}
	if s.pending[path] {
		s.mu.Unlock()
		return 0, 0, false
	}
	s.pending[path] = true
	s.mu.Unlock()
	type result struct {
		st  unix.Statfs_t
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var st unix.Statfs_t
		err := unix.Statfs(path, &st)
		s.mu.Lock()
		delete(s.pending, path)
		s.mu.Unlock()
		ch <- result{st, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return 0, 0, false
		}
		bs := uint64(r.st.Bsize)
		return r.st.Blocks * bs, r.st.Bavail * bs, true
	case <-time.After(s.timeout):
		return 0, 0, false
	}
}
