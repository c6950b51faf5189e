package migration

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/repository"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// Options are a migration's settings, as domain.migrate takes them.
type Options struct {
	Live        bool
	RateLimit   int64         // bytes/s, 0 = no cap
	MaxDowntime time.Duration // 0 = the default (300 ms)
	SSL         bool
	Port        int    // 0: 8002, or 8003 with SSL
	User        string // the target agent's API user
	Password    string // its password; never logged
	Fingerprint string // SHA-256 of the target's TLS certificate, hex
	Parallel    int
	// Compress names the page compression ("", "none", "s2", "zstd", "auto").
	Compress string

	// Offline migration of a stopped domain (see offline.go).
	Start      bool   // start the domain on the target afterwards
	Remove     bool   // remove the source copy of the data instead of keeping it renamed
	Force      bool   // skip validation (logged)
	TargetRepo string // UUID of the target repository that receives copied disks ("" = the target chooses)
}

// DefaultMaxDowntime is QEMU's default downtime target.
const DefaultMaxDowntime = 300 * time.Millisecond

// Registry is what migration needs of the domain registry
// (agent/domains.Manager): a domain's state, its offer and its VMM on
// either side, and the registry's records of migrations in flight.
type Registry interface {
	Info(name string) (domains.Info, error)
	Offer(name string) (relocation.Offer, error)
	Call(name string, req control.Request, timeout time.Duration, files ...*os.File) (*control.Response, error)

	// The sending side.
	Migrating(name, target string) error
	InDoubt() map[string]string
	BeginOffline(name, target string) error
	EndOffline(name, reason string)
	FinishOffline(name string, copied []string, remove bool) (string, error)
	OfflineInDoubt() map[string]string

	// The receiving side.
	CheckIncoming(o relocation.Offer, memMiB int) []relocation.Problem
	CheckFiles(config string) []relocation.Problem
	TargetFacts(config string) *relocation.TargetFacts
	Incoming(config, from string, runUntil control.Monotonic, generation int64) error
	WatchIncoming(name string) domains.State
	Destroy(name string) error
	Create(text []byte, source string) (*domains.Info, []string, error)
	Start(name string) error
}

// Repositories is what the receiving side needs of this host's storage
// repositories (agent/repository.Manager, nil-safe in the agent).
type Repositories interface {
	// Mounted lists the repositories mounted here.
	Mounted() []repository.Status
	// MountPoint says where repository uuid is mounted, if it is.
	MountPoint(uuid string) (string, bool)
}

// Dialer reaches a peer agent's relocation port: relocation.Dial, or a
// fake target agent in tests.
type Dialer func(ctx context.Context, o relocation.DialOptions, h *relocation.Hello) (net.Conn, *relocation.Welcome, error)

// Pool is what a migration of a pool domain needs of this agent's pool
// membership (agent/pooldomains.go). A pool domain's live migration hands
// its ownership over, in this order:
//
//	source: Outgoing            the offer carries a PoolMove (pool, owner, generation)
//	target: Admit               a member of that pool holding its lease, or a hard problem;
//	                            the incoming VMM starts under the target's run-until time,
//	                            the Welcome names the member (PoolMember)
//	target: Receiving           the incoming VMM is renewed with the target's lease
//	source: (verified)          the source VMM waits for the agent's decision (no auto-commit)
//	source: HandOver            the owner key moves to the target member's lease
//	                            (handed: commit, and the source never resumes the guest;
//	                            kept: abort, the source resumes it; undecided: ask again,
//	                            the guest paused, its lease no longer renewed here)
//	source: commit              the target resumes the guest under its own lease
//	target: Arrived             takes the domain up as owned at the new generation (or
//	                            releases a key it got for a guest that does not run)
//	source: MoveEnded           the migration ended, committed or not
//
// nil: the agent is in no pool; a pool domain neither leaves nor arrives.
type Pool interface {
	// Outgoing is the PoolMove of domain name's offer: nil when it is no
	// pool domain; an error when it is one that may not move now.
	Outgoing(name string) (*relocation.PoolMove, error)
	// HandOver gives name's ownership to the target member. handed: the
	// target owns it (commit); not handed, no error: this agent kept it,
	// at a new generation no late hand-over can take (abort); an error
	// wrapping ErrOwnershipLost: it is neither's here any more (the copy
	// here must not run again: it is destroyed); any other error: not
	// known yet.
	HandOver(name string, to *relocation.PoolMember) (handed bool, err error)
	// MoveEnded says an outgoing migration of pool domain name ended,
	// committed (the guest runs on the target) or not.
	MoveEnded(name string, committed bool)
	// Admit says who takes pool domain o here and the run-until time its
	// incoming VMM starts with, or why this agent cannot.
	Admit(o relocation.Offer) (*relocation.PoolMember, control.Monotonic, error)
	// Receiving: the incoming VMM of pool domain o runs (renew its lease
	// until Arrived).
	Receiving(name string, o relocation.Offer)
	// Arrived: the incoming migration of pool domain o ended in state st.
	Arrived(name string, o relocation.Offer, st domains.State)
}

// ErrOwnershipLost is what Pool.HandOver's error wraps when the domain is
// no longer this agent's at all (its owner key gone, or another
// member's): its copy here must never run again.
var ErrOwnershipLost = errors.New("the pool domain's ownership is no longer this agent's")

// Local is both sides of migration on this agent: the sending side
// (dry run, live and offline migrations, their in-doubt resolution) and
// the receiving side (the relocation operations the agent dispatches to
// it). It is what the orchestration needs of this agent.
type Local struct {
	Domains      Registry
	AgentVersion string
	Protocol     int
	// SourceAddr is the address outgoing relocation connections come from
	// ("" lets the kernel choose).
	SourceAddr string
	// ProgressTimeout is [relocation] progress_timeout: the VMM's page
	// stream fails a write that moves no byte for this long (0: no limit).
	ProgressTimeout time.Duration
	// FileRoots returns, per call, the directories a disk copied by an
	// offline migration must resolve in (repositories and [agent]
	// file_dirs); nil refuses every copy.
	FileRoots func() []string
	// Repos are this host's repositories (nil: none).
	Repos Repositories
	// Lifetime is cancelled when the agent stops: every retry and wait
	// that outlives an API call ends with it (nil: never).
	Lifetime context.Context
	// Log is the receiving side's logger (nil: none).
	Log *zap.Logger
	// Dial reaches peers (nil: relocation.Dial).
	Dial Dialer
	// Ended, when set, is told of every migration of this agent's that
	// ended (its final status).
	Ended func(Status)
	// Pool is this agent's pool membership (nil: none).
	Pool Pool

	once sync.Once
	migs *registry
}

// life is the agent's lifetime context.
func (l *Local) life() context.Context {
	if l.Lifetime == nil {
		return context.Background()
	}
	return l.Lifetime
}

func (l *Local) log() *zap.Logger {
	if l.Log == nil {
		return zap.NewNop()
	}
	return l.Log
}

func (l *Local) dial(ctx context.Context, addr string, o Options, h *relocation.Hello) (net.Conn, *relocation.Welcome, error) {
	d := l.Dial
	if d == nil {
		d = relocation.Dial
	}
	return d(ctx, relocation.DialOptions{Addr: addr, TLS: tlsConfig(o), Source: l.SourceAddr}, h)
}

func (l *Local) hello(op, id string, o Options, offer relocation.Offer) *relocation.Hello {
	return &relocation.Hello{
		Op: op, AgentVersion: l.AgentVersion, Protocol: l.Protocol, Source: hostname(),
		Migration: id, User: o.User, Password: o.Password, Live: o.Live, Offer: offer,
	}
}

// welcome fills in who answers: this agent's version, protocol and host.
func (l *Local) welcome(w *relocation.Welcome) *relocation.Welcome {
	w.AgentVersion, w.Protocol, w.Host = l.AgentVersion, l.Protocol, hostname()
	return w
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// target splits HOST[:PORT], filling the default port.
func target(t string, o Options) (string, error) {
	host, port := t, ""
	if h, p, err := net.SplitHostPort(t); err == nil {
		host, port = h, p
	}
	if host == "" {
		return "", errors.New("no target host")
	}
	if port == "" {
		switch {
		case o.Port > 0:
			port = strconv.Itoa(o.Port)
		case o.SSL:
			port = "8003"
		default:
			port = "8002"
		}
	}
	return net.JoinHostPort(host, port), nil
}

// tlsConfig verifies the target against the pinned fingerprint; without
// one the certificate is not verified (and the status says so).
func tlsConfig(o Options) *tls.Config {
	if !o.SSL {
		return nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	if fp := strings.ToLower(strings.ReplaceAll(o.Fingerprint, ":", "")); fp != "" {
		c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("target sent no certificate")
			}
			sum := sha256.Sum256(raw[0])
			if hex.EncodeToString(sum[:]) != fp {
				return fmt.Errorf("target certificate sha256 %x does not match the pinned %s", sum, fp)
			}
			return nil
		}
	}
	return c
}

// sleep waits d, or less when ctx ends first (false then).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
