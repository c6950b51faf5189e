package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Cost is the bcrypt cost used for new hashes.
const Cost = 11

// MaxPasswordLen is bcrypt's limit: longer passwords would be truncated silently.
const MaxPasswordLen = 72

// Hash returns a salted bcrypt hash of password, for agent.ini's password_hash.
func Hash(password string) (string, error) {
	if password == "" {
		return "", errors.New("the password is empty")
	}
	if len(password) > MaxPasswordLen {
		return "", fmt.Errorf("the password is longer than %d bytes", MaxPasswordLen)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), Cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// ErrDenied is Check's answer for a wrong user name or password.
var ErrDenied = errors.New("wrong user name or password")

// ErrBusy is Check's answer when every login worker is busy and the queue
// of waiting checks is full: the credentials were not looked at, so this is
// not a failed login; the caller should answer "busy, retry" at once.
var ErrBusy = errors.New("the agent is busy checking other logins; retry in a moment")

// Limits bound the password checks (bcrypt) of one Verifier.
type Limits struct {
	// Workers is how many checks run at once; 0 means half the CPUs, at
	// least one.
	Workers int
	// Queue is how many more checks may wait for a worker; beyond
	// Workers+Queue a check is answered ErrBusy at once.
	Queue int
}

// Verifier checks a user name and password against the configured ones.
// Successful checks are remembered (as a keyed digest, never the password)
// for a while so that a client sending Basic auth on every request does not
// pay bcrypt's cost each time.
//
// bcrypt runs on at most Limits.Workers goroutines at once, with at most
// Limits.Queue more waiting; anything beyond is refused with ErrBusy without
// waiting. Concurrent checks of identical credentials share one bcrypt run
// (keyed by the same digest as the cache), so a burst of simultaneous
// correct logins costs one comparison.
type Verifier struct {
	user string
	hash []byte
	key  [32]byte

	mu      sync.Mutex
	ok      map[[32]byte]time.Time
	flights map[[32]byte]*flight

	sem     chan struct{} // one token per running comparison
	admit   int64         // Workers + Queue
	pending atomic.Int64  // comparisons running or waiting for a worker

	// compare is bcrypt.CompareHashAndPassword; tests replace it.
	compare func(hash, password []byte) error
}

// flight is one bcrypt run that concurrent identical checks wait for.
type flight struct {
	done chan struct{}
	err  error // nil, ErrDenied or ErrBusy
}

const (
	okTTL    = 5 * time.Minute
	maxCache = 1024
)

// NewVerifier returns a Verifier for user with the bcrypt hash; an empty
// hash means no password login is possible.
func NewVerifier(user, hash string, lim Limits) (*Verifier, error) {
	if hash != "" {
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, errors.New("not a bcrypt password hash (make one with `ovs-agent hash-password`)")
		}
	}
	workers := lim.Workers
	if workers <= 0 {
		workers = max(runtime.NumCPU()/2, 1)
	}
	queue := max(lim.Queue, 0)
	v := &Verifier{
		user: user, hash: []byte(hash),
		ok:      make(map[[32]byte]time.Time),
		flights: make(map[[32]byte]*flight),
		sem:     make(chan struct{}, workers),
		admit:   int64(workers + queue),
		compare: bcrypt.CompareHashAndPassword,
	}
	if _, err := rand.Read(v.key[:]); err != nil {
		return nil, fmt.Errorf("random key: %w", err)
	}
	return v, nil
}

// Enabled reports whether a password is configured at all.
func (v *Verifier) Enabled() bool { return len(v.hash) > 0 }

// Verify reports whether user and password are right; a check refused as
// busy is false. Callers that can tell the peer to retry use Check.
func (v *Verifier) Verify(user, password string) bool {
	return v.Check(user, password) == nil
}

// Check returns nil if user and password are right, ErrDenied if not, and
// ErrBusy if the check could not run because the login workers and their
// queue are full.
func (v *Verifier) Check(user, password string) error {
	if !v.Enabled() {
		return ErrDenied
	}
	mac := hmac.New(sha256.New, v.key[:])
	mac.Write([]byte(user))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var digest [32]byte
	copy(digest[:], mac.Sum(nil))

	now := time.Now()
	v.mu.Lock()
	if exp, hit := v.ok[digest]; hit && now.Before(exp) {
		v.mu.Unlock()
		return nil
	}
	if f := v.flights[digest]; f != nil {
		v.mu.Unlock()
		<-f.done
		return f.err
	}
	if v.pending.Add(1) > v.admit {
		v.pending.Add(-1)
		v.mu.Unlock()
		return ErrBusy
	}
	f := &flight{done: make(chan struct{})}
	v.flights[digest] = f
	v.mu.Unlock()

	v.sem <- struct{}{}
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(v.user)) == 1
	// Always run bcrypt so a wrong user name costs as much as a wrong password.
	passOK := v.compare(v.hash, []byte(password)) == nil
	<-v.sem
	v.pending.Add(-1)

	f.err = ErrDenied
	if userOK && passOK {
		f.err = nil
	}
	v.mu.Lock()
	if f.err == nil {
		if len(v.ok) >= maxCache {
			clear(v.ok)
		}
		v.ok[digest] = time.Now().Add(okTTL)
	}
	delete(v.flights, digest)
	v.mu.Unlock()
	close(f.done)
	return f.err
}

// Throttle slows down peers that fail to log in: each consecutive failure
// from an address doubles the delay before the answer, from Base up to Max.
// A success clears the address's record; records expire after Forget.
type Throttle struct {
	Base   time.Duration
	Max    time.Duration
	Forget time.Duration

	mu    sync.Mutex
	peers map[netip.Addr]failures
}

type failures struct {
	n    int
	last time.Time
}

const maxPeers = 65536

// Failed records a failure from addr and returns how long to wait before
// answering, and how many consecutive failures the peer has.
func (t *Throttle) Failed(addr netip.Addr) (time.Duration, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.peers == nil || len(t.peers) >= maxPeers {
		t.peers = make(map[netip.Addr]failures)
	}
	now := time.Now()
	f := t.peers[addr]
	forget := t.Forget
	if forget <= 0 {
		forget = 15 * time.Minute
	}
	if now.Sub(f.last) > forget {
		f.n = 0
	}
	f.n++
	f.last = now
	t.peers[addr] = f
	d := t.Base
	for i := 1; i < f.n && d < t.Max; i++ {
		d *= 2
	}
	if t.Max > 0 && d > t.Max {
		d = t.Max
	}
	return d, f.n
}

// Succeeded forgets the failures of addr.
func (t *Throttle) Succeeded(addr netip.Addr) {
	t.mu.Lock()
	delete(t.peers, addr)
	t.mu.Unlock()
}
