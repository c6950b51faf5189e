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
	"strconv"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/agent/access"
	"github.com/ovs-agent/ovs-agent/agent/tlscert"
	"github.com/ovs-agent/ovs-agent/config"
	"github.com/ovs-agent/ovs-agent/internal/connlimit"
)

// Names of sockets that systemd may pass (FileDescriptorName= in the .socket unit).
const (
	SocketAPI           = "api"
	SocketUnix          = "unix"
	SocketRelocation    = "relocation"
	SocketRelocationSSL = "relocation-ssl"
)

// listen opens (or takes from systemd's activated sockets) the API
// listeners: TCP (HTTPS or HTTP) and the unix socket. On error it has
// closed what it opened.
func (a *Agent) listen(cfg *config.Config, activated map[string][]net.Listener) ([]net.Listener, error) {
	a.closeUnknownActivated(activated)
	tcp, err := a.listenTCP(cfg, activated[SocketAPI])
	if err != nil {
		return nil, err
	}
	unixLs, err := a.listenUnixAPI(cfg, activated[SocketUnix])
	if err != nil {
		for _, l := range tcp {
			l.Close()
		}
		return nil, err
	}
	out := append(tcp, unixLs...)
	if len(out) == 0 {
		return nil, errors.New("nothing to serve: enable [server] tcp_server or unix_server")
	}
	return out, nil
}

// closeUnknownActivated closes the activated sockets under names the agent
// does not serve.
func (a *Agent) closeUnknownActivated(activated map[string][]net.Listener) {
	for name, ls := range activated {
		switch name {
		case SocketAPI, SocketUnix, SocketRelocation, SocketRelocationSSL:
		default:
			a.log.Warn("ignoring socket-activated listener with unknown name", zap.String("name", name))
			for _, l := range ls {
				l.Close()
			}
		}
	}
}

// listenTCP opens the API's TCP listener unless systemd passed them, loads
// (or generates) the TLS certificate when the API is HTTPS, and puts the
// access rules and the pending-connection caps in front of each.
func (a *Agent) listenTCP(cfg *config.Config, tcp []net.Listener) ([]net.Listener, error) {
	activated := len(tcp) > 0
	if !activated && cfg.Server.TCPServer {
		l, err := net.Listen("tcp", net.JoinHostPort(cfg.Server.ListenAddress, strconv.Itoa(cfg.Server.Port)))
		if err != nil {
			return nil, config.OptionError(cfg, "server", "port", fmt.Errorf("listen: %w", err))
		}
		tcp = []net.Listener{l}
	}
	if cfg.Server.SSL && len(tcp) > 0 {
		dir := filepath.Join(cfg.Agent.StateDir, "tls")
		c, generated, err := tlscert.LoadOrCreate(cfg.Server.SSLCert, cfg.Server.SSLKey, dir, []string{cfg.Server.ListenAddress})
		if err != nil {
			for _, l := range tcp {
				l.Close()
			}
			return nil, config.OptionError(cfg, "server", "ssl_cert", err)
		}
		a.cert.Store(c)
		if generated {
			a.log.Info("generated a self-signed TLS certificate", zap.String("dir", dir), zap.String("sha256", tlscert.Fingerprint(c)))
		}
	}
	var out []net.Listener
	for _, l := range tcp {
		g := newGuardedListener(l, &a.policy, a.checker, a.log, &connlimit.Pending{
			Max: int(cfg.Server.MaxPending), PerAddress: int(cfg.Server.MaxPendingPerAddress), Log: a.log, What: "API"})
		kind := "http"
		var ln net.Listener = g
		if cfg.Server.SSL {
			kind = "https"
			ln = tls.NewListener(g, &tls.Config{
				MinVersion: tls.VersionTLS12,
				GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
					return a.cert.Load(), nil
				},
			})
		}
		out = append(out, ln)
		a.addEndpoint(Endpoint{Kind: kind, Address: l.Addr().String(), Activated: activated})
	}
	return out, nil
}

// listenUnixAPI opens the API's unix socket unless systemd passed it.
func (a *Agent) listenUnixAPI(cfg *config.Config, unixLs []net.Listener) ([]net.Listener, error) {
	activated := len(unixLs) > 0
	if !activated && cfg.Server.UnixServer && cfg.Server.UnixSocket != "" {
		l, err := listenUnix(cfg.Server.UnixSocket)
		if err != nil {
			return nil, config.OptionError(cfg, "server", "unix_socket", err)
		}
		unixLs = []net.Listener{l}
	}
	for _, l := range unixLs {
		a.addEndpoint(Endpoint{Kind: "unix", Address: l.Addr().String(), Activated: activated})
	}
	return unixLs, nil
}

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
