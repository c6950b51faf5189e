package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/agent/access"
	"github.com/ovs-agent/ovs-agent/internal/connlimit"
)

// guardedListener applies the allow/deny rules to every accepted TCP
// connection before anything is read from it: a refused peer is logged and
// its connection closed. The check runs in its own goroutine so that a slow
// reverse lookup does not hold up other peers.
type guardedListener struct {
	net.Listener
	policy  *atomic.Pointer[access.Policy]
	checker *access.Checker
	log     *zap.Logger

	// pending caps the connections not yet authenticated (nil: no cap).
	pending *connlimit.Pending

	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	acceptErr error
	inflight  sync.WaitGroup
}

func newGuardedListener(l net.Listener, policy *atomic.Pointer[access.Policy], checker *access.Checker, log *zap.Logger, pending *connlimit.Pending) *guardedListener {
	g := &guardedListener{Listener: l, policy: policy, checker: checker, log: log, pending: pending,
		conns: make(chan net.Conn), done: make(chan struct{})}
	go g.loop()
	return g
}

// maxPendingChecks bounds the connections waiting for an access decision.
const maxPendingChecks = 256

func (g *guardedListener) loop() {
	sem := make(chan struct{}, maxPendingChecks)
	defer close(g.conns)
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			g.acceptErr = err
			g.inflight.Wait()
			return
		}
		if g.pending != nil {
			release, ok := g.pending.Acquire(connlimit.PeerAddr(c))
			if !ok {
				c.Close()
				continue
			}
			c = &pendingConn{Conn: c, release: release}
		}
		select {
		case sem <- struct{}{}:
		case <-g.done:
			c.Close()
			continue
		}
		g.inflight.Add(1)
		go func() {
			defer g.inflight.Done()
			defer func() { <-sem }()
			if !g.admit(c) {
				c.Close()
				return
			}
			select {
			case g.conns <- c:
			case <-g.done:
				c.Close()
			}
		}()
	}
}

func (g *guardedListener) admit(c net.Conn) bool {
	addr, ok := remoteAddr(c)
	if !ok {
		g.log.Warn("connection refused: peer address unknown", zap.String("peer", c.RemoteAddr().String()))
		return false
	}
	d := g.checker.Check(context.Background(), *g.policy.Load(), addr)
	if !d.Allowed {
		g.log.Warn("connection refused by access rules",
			zap.String("peer", addr.String()), zap.Strings("names", d.Names), zap.String("reason", d.Reason()))
	}
	return d.Allowed
}

func (g *guardedListener) Accept() (net.Conn, error) {
	c, ok := <-g.conns
	if !ok {
		if g.acceptErr != nil {
			return nil, g.acceptErr
		}
		return nil, net.ErrClosed
	}
	return c, nil
}

func (g *guardedListener) Close() error {
	g.closeOnce.Do(func() { close(g.done) })
	return g.Listener.Close()
}

// pendingConn is a TCP connection counted against the pending caps until
// it makes an authenticated request (authenticated) or closes.
type pendingConn struct {
	net.Conn
	release func()
}

func (p *pendingConn) Close() error {
	p.release()
	return p.Conn.Close()
}

// authenticated stops counting the connection under c (a *pendingConn,
// possibly inside a TLS connection) as pending.
func authenticated(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if p, ok := c.(*pendingConn); ok {
		p.release()
	}
}

// remoteAddr is the IP address of a TCP connection's peer; false when the
// connection is not TCP or the address unreadable.
func remoteAddr(c net.Conn) (netip.Addr, bool) {
	a := connlimit.PeerAddr(c)
	return a, a.IsValid()
}

// listenUnix creates the API's unix socket with mode 0600, replacing a stale
// socket file left by a previous run but refusing to steal one that a live
// agent still answers on.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("unix socket %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("unix socket %s: another agent is listening there", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("unix socket %s: remove stale socket: %w", path, err)
		}
	}
	// Create the socket with no access for anyone but the owner from the start.
	old := unix.Umask(0o177)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("unix socket %s: %w", path, err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	return l, nil
}

// peerCred returns the uid and pid of the process at the other end of a unix
// socket connection.
func peerCred(c net.Conn) (uid uint32, pid int32, err error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, 0, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if serr != nil {
		return 0, 0, serr
	}
	return cred.Uid, cred.Pid, nil
}
