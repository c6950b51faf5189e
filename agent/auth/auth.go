package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"sync"
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

// Verifier checks a user name and password against the configured ones.
// Successful checks are remembered (as a keyed digest, never the password)
// for a while so that a client sending Basic auth on every request does not
// pay bcrypt's cost each time.
type Verifier struct {
	user string
	hash []byte
	key  [32]byte

	mu sync.Mutex
	ok map[[32]byte]time.Time
}

const (
	okTTL    = 5 * time.Minute
	maxCache = 1024
)

// NewVerifier returns a Verifier for user with the bcrypt hash; an empty
// hash means no password login is possible.
func NewVerifier(user, hash string) (*Verifier, error) {
	if hash != "" {
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, errors.New("not a bcrypt password hash (make one with `ovs-agent hash-password`)")
		}
	}
	v := &Verifier{user: user, hash: []byte(hash), ok: make(map[[32]byte]time.Time)}
	if _, err := rand.Read(v.key[:]); err != nil {
		return nil, fmt.Errorf("random key: %w", err)
	}
	return v, nil
}

// Enabled reports whether a password is configured at all.
func (v *Verifier) Enabled() bool { return len(v.hash) > 0 }

// Verify reports whether user and password are right.
func (v *Verifier) Verify(user, password string) bool {
	if !v.Enabled() {
		return false
	}
	mac := hmac.New(sha256.New, v.key[:])
	mac.Write([]byte(user))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var digest [32]byte
	copy(digest[:], mac.Sum(nil))

	now := time.Now()
	v.mu.Lock()
	exp, hit := v.ok[digest]
	v.mu.Unlock()
	if hit && now.Before(exp) {
		return true
	}
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(v.user)) == 1
	// Always run bcrypt so a wrong user name costs as much as a wrong password.
	passOK := bcrypt.CompareHashAndPassword(v.hash, []byte(password)) == nil
	if !userOK || !passOK {
		return false
	}
	v.mu.Lock()
	if len(v.ok) >= maxCache {
		clear(v.ok)
	}
	v.ok[digest] = now.Add(okTTL)
	v.mu.Unlock()
	return true
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
