package migration

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/repository"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// fakeRegistry is the domain registry with one domain whose source VMM
// answers from a script. Methods a test does not use panic (the embedded
// nil Registry).
type fakeRegistry struct {
	Registry

	mu       sync.Mutex
	info     domains.Info
	infoErr  error
	gone     bool // the registry has forgotten the domain
	goneAt   int  // >0: it forgets it at this Info call
	infos    int
	phases   []control.Phase                        // what successive status calls report; the last repeats
	statusFn func(n int) (*control.Response, error) // overrides phases when set
	calls    []control.Request
	inDoubt  map[string]string
	incoming []relocation.Problem
	files    []relocation.Problem    // what CheckFiles answers
	facts    *relocation.TargetFacts // what TargetFacts answers
	ended    []string                // EndOffline reasons
	engine   string                  // the offer's engine
}

func (r *fakeRegistry) Info(string) (domains.Info, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.infos++
	if r.gone || r.goneAt > 0 && r.infos >= r.goneAt {
		return domains.Info{}, &domains.Error{Kind: domains.NotFound, Msg: "no such domain"}
	}
	return r.info, r.infoErr
}

func (r *fakeRegistry) Offer(name string) (relocation.Offer, error) {
	return relocation.Offer{Name: name, UUID: r.info.UUID, Engine: r.engine, Config: "name = '" + name + "'\nmemory = 64\n"}, nil
}

func (r *fakeRegistry) Migrating(string, string) error { return nil }

// Destroy records a destroy (as a call with op "destroy").
func (r *fakeRegistry) Destroy(string) error {
	r.mu.Lock()
	r.calls = append(r.calls, control.Request{Op: "destroy"})
	r.mu.Unlock()
	return nil
}
func (r *fakeRegistry) InDoubt() map[string]string { return r.inDoubt }
func (r *fakeRegistry) EndOffline(_, reason string) {
	r.mu.Lock()
	r.ended = append(r.ended, reason)
	r.mu.Unlock()
}

func (r *fakeRegistry) CheckIncoming(relocation.Offer, int) []relocation.Problem {
	return r.incoming
}

func (r *fakeRegistry) CheckFiles(string) []relocation.Problem { return r.files }

func (r *fakeRegistry) TargetFacts(string) *relocation.TargetFacts { return r.facts }

// Call answers as the source VMM: a status call reports the next phase of
// the script; a commit that completes lets the registry forget the domain.
func (r *fakeRegistry) Call(_ string, req control.Request, _ time.Duration, files ...*os.File) (*control.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, req)
	if req.Op != control.OpMigrateStatus {
		return &control.Response{}, nil
	}
	n := r.count(control.OpMigrateStatus)
	if r.statusFn != nil {
		return r.statusFn(n)
	}
	p := r.phases[min(n, len(r.phases))-1]
	if p == control.PhaseCompleted {
		r.gone = true
	}
	return &control.Response{Migration: &control.MigrationStatus{Phase: p}}, nil
}

// count is how many calls of op were made; r.mu is held.
func (r *fakeRegistry) count(op string) int {
	n := 0
	for _, c := range r.calls {
		if c.Op == op {
			n++
		}
	}
	return n
}

func (r *fakeRegistry) called(op string) []control.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []control.Request
	for _, c := range r.calls {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

// fakeTarget is the target's agent: it answers a status question with
// the next of states (the last repeats), refuses nothing else, and hands
// out one end of a pipe for a receive.
type fakeTarget struct {
	mu     sync.Mutex
	states []string // "" the target does not have it; "-" it does not answer
	asked  int
	peers  []net.Conn
	member *relocation.PoolMember // what it answers a receive with
}

func (t *fakeTarget) dial(_ context.Context, _ relocation.DialOptions, h *relocation.Hello) (net.Conn, *relocation.Welcome, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch h.Op {
	case relocation.OpStatus:
		t.asked++
		s := t.states[min(t.asked, len(t.states))-1]
		if s == "-" {
			return nil, nil, errors.New("connection refused")
		}
		return nil, &relocation.Welcome{OK: true, State: s}, nil
	case relocation.OpReceive:
		a, b := net.Pipe()
		t.peers = append(t.peers, b)
		return a, &relocation.Welcome{OK: true, Member: t.member}, nil
	}
	return nil, &relocation.Welcome{Error: "unexpected " + h.Op}, nil
}

func (t *fakeTarget) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.peers {
		c.Close()
	}
}

// fakeRepos are the repositories mounted on a target.
type fakeRepos []repository.Status

func (f fakeRepos) Mounted() []repository.Status { return f }
func (f fakeRepos) MountPoint(uuid string) (string, bool) {
	for _, r := range f {
		if r.UUID == uuid {
			return r.MountPoint, true
		}
	}
	return "", false
}

// fast makes the retries and polls of the package take milliseconds for
// one test.
func fast(t *testing.T) {
	saved := []time.Duration{pollEvery, askEvery, askOfflineEvery, goneEvery, maxLostFor, handOverRetry}
	pollEvery, askEvery, askOfflineEvery, goneEvery, maxLostFor, handOverRetry = time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond, 5*time.Millisecond, 2*time.Millisecond
	t.Cleanup(func() {
		pollEvery, askEvery, askOfflineEvery, goneEvery, maxLostFor, handOverRetry = saved[0], saved[1], saved[2], saved[3], saved[4], saved[5]
	})
}

// readWelcome reads the Welcome a receiving-side method wrote on c.
func readWelcome(t *testing.T, c net.Conn) relocation.Welcome {
	t.Helper()
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("read the welcome: %v", err)
	}
	data := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c, data); err != nil {
		t.Fatalf("read the welcome: %v", err)
	}
	var w relocation.Welcome
	if err := json.Unmarshal(data, &w); err != nil {
		t.Fatalf("welcome %s: %v", data, err)
	}
	return w
}
