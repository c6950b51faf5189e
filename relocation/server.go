package relocation

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/internal/connlimit"
)

// Handler takes an authenticated relocation connection. It owns conn and
// must answer with WriteWelcome. r holds whatever the peer sent after the
// hello (buffered); read the rest of the stream from r, not from conn.
type Handler func(ctx context.Context, conn net.Conn, r *bufio.Reader, h *Hello)

// Server is the relocation listener.
type Server struct {
	Log *zap.Logger
	// Hosts is the current hosts-allow (swapped on reload).
	Hosts *atomic.Pointer[HostsAllow]
	// Names returns the verified host names of a peer.
	Names func(ctx context.Context, ip netip.Addr) []string
	// Authenticate checks the credentials a sender presents: nil when
	// they are right, ErrBusy when the check could not run now (not a
	// failed login), any other error when they are wrong.
	Authenticate func(user, password string) error
	// Throttle, when set, gives the delay before answering a failed
	// login, doubling per consecutive failure from an address (the
	// agent passes the API's, so both ports share one record per peer).
	// Without it a failed login is answered after a second.
	Throttle Throttle
	// TLS, when set, makes this the TLS relocation listener.
	TLS    *tls.Config
	Handle Handler
	// HandshakeTimeout bounds reading the hello (default 15s).
	HandshakeTimeout time.Duration
	// MaxPending and MaxPendingPerAddress cap the connections that have
	// not authenticated yet (from accept until the password check passes),
	// in all and per peer address; a connection over a cap is closed at
	// once. 0 means the defaults, 64 and 8.
	MaxPending           int
	MaxPendingPerAddress int
	// Refused, when set, is told of every connection refused before it
	// reached Handle, with a bounded reason: "limit" (a pending cap),
	// "hosts_allow", "handshake" (TLS or the hello), "login".
	Refused func(reason string)

	pendingOnce sync.Once
	pending     *connlimit.Pending

	wg sync.WaitGroup
}

// ErrBusy is what Authenticate returns when the login workers are all busy.
var ErrBusy = errors.New("the agent is busy checking other logins; retry in a moment")

// Throttle slows down peers that fail to log in (auth.Throttle).
type Throttle interface {
	Failed(addr netip.Addr) (time.Duration, int)
	Succeeded(addr netip.Addr)
}

// Serve accepts connections on l until it is closed.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				s.wg.Wait()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(ctx, c)
		}()
	}
}

func (s *Server) limit() *connlimit.Pending {
	s.pendingOnce.Do(func() {
		s.pending = &connlimit.Pending{Max: s.MaxPending, PerAddress: s.MaxPendingPerAddress, Log: s.Log, What: "relocation"}
		if s.pending.Max <= 0 {
			s.pending.Max = 64
		}
		if s.pending.PerAddress <= 0 {
			s.pending.PerAddress = 8
		}
	})
	return s.pending
}

// serve takes one connection through the listener's gates in order:
// the pending-connection caps, hosts-allow (before any byte is read), TLS,
// the hello and the login; then it hands the connection to Handle.
func (s *Server) serve(ctx context.Context, c net.Conn) {
	ip := connlimit.PeerAddr(c)
	refuse := func(reason string) {
		c.Close()
		if s.Refused != nil {
			s.Refused(reason)
		}
	}
	release, ok := s.limit().Acquire(ip)
	if !ok {
		refuse("limit")
		return
	}
	defer release()
	if !s.allowed(ctx, ip) {
		refuse("hosts_allow")
		return
	}
	c, err := s.startTLS(ctx, c, ip)
	if err != nil {
		refuse("handshake")
		return
	}
	r, h, ok := s.readHello(c, ip)
	if !ok {
		refuse("handshake")
		return
	}
	if !s.login(ctx, c, ip, h) {
		refuse("login")
		return
	}
	h.Password = ""
	release()
	r = bufio.NewReaderSize(r, 64<<10)
	fields := []zap.Field{zap.String("peer", ip.String()), zap.String("op", h.Op), zap.String("domain", h.Offer.Name), zap.String("migration", h.Migration), zap.String("user", h.User)}
	if s.TLS == nil {
		fields = append(fields, zap.Bool("tls", false))
	}
	s.Log.Info("relocation peer accepted", fields...)
	s.Handle(ctx, c, r, h)
}

// allowed checks the peer against hosts-allow, looking its names up only
// when a pattern needs them.
func (s *Server) allowed(ctx context.Context, ip netip.Addr) bool {
	var names []string
	looked := false
	lookup := func() []string {
		if !looked && s.Names != nil {
			looked = true
			names = s.Names(ctx, ip)
		}
		return names
	}
	if ok, _ := s.Hosts.Load().Match(ip.String(), lookup); !ok {
		lookup()
		s.Log.Warn("relocation peer refused by hosts-allow", zap.String("peer", ip.String()), zap.Strings("names", names))
		return false
	}
	return true
}

// startTLS runs the TLS handshake of a TLS listener, bounded by the
// handshake timeout; a plain listener returns c as it is.
func (s *Server) startTLS(ctx context.Context, c net.Conn, ip netip.Addr) (net.Conn, error) {
	if s.TLS == nil {
		return c, nil
	}
	tc := tls.Server(c, s.TLS)
	hctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		s.Log.Warn("relocation TLS handshake failed", zap.String("peer", ip.String()), zap.Error(err))
		return c, err
	}
	return tc, nil
}

// readHello reads the protocol line and the hello within the handshake
// timeout, through a small buffer (the peer has not logged in yet); a bad
// one is answered and refused.
func (s *Server) readHello(c net.Conn, ip netip.Addr) (*bufio.Reader, *Hello, bool) {
	c.SetReadDeadline(time.Now().Add(s.timeout()))
	r := bufio.NewReaderSize(c, 4<<10)
	h, err := ReadHello(r)
	if err != nil {
		s.Log.Warn("relocation handshake refused", zap.String("peer", ip.String()), zap.Error(err))
		_ = WriteWelcome(c, &Welcome{Error: err.Error(), Code: 1007})
		return nil, nil, false
	}
	c.SetReadDeadline(time.Time{})
	return r, h, true
}

// login checks the hello's credentials; a failure is answered after the
// throttle's delay. A status question ("does domain UUID run here?")
// needs no password: a source agent that restarted in the middle of a
// commit must be able to ask without the credentials it no longer has.
func (s *Server) login(ctx context.Context, c net.Conn, ip netip.Addr, h *Hello) bool {
	if h.Op == OpStatus {
		return true
	}
	err := errors.New("no password check configured")
	if s.Authenticate != nil {
		err = s.Authenticate(h.User, h.Password)
	}
	switch {
	case errors.Is(err, ErrBusy):
		s.Log.Debug("relocation login refused: login workers busy", zap.String("peer", ip.String()))
		_ = WriteWelcome(c, &Welcome{Error: ErrBusy.Error(), Code: 1006})
		return false
	case err != nil:
		delay, n := time.Second, 1
		if s.Throttle != nil {
			delay, n = s.Throttle.Failed(ip)
		}
		s.Log.Warn("relocation peer failed to authenticate", zap.String("peer", ip.String()), zap.String("user", h.User), zap.String("op", h.Op),
			zap.Int("consecutive_failures", n), zap.Duration("delay", delay))
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
		_ = WriteWelcome(c, &Welcome{Error: "authentication failed: give the receiving agent's API user and password", Code: 1000})
		return false
	}
	if s.Throttle != nil {
		s.Throttle.Succeeded(ip)
	}
	return true
}

func (s *Server) timeout() time.Duration {
	if s.HandshakeTimeout > 0 {
		return s.HandshakeTimeout
	}
	return 15 * time.Second
}
