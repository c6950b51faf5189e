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

func (s *Server) serve(ctx context.Context, c net.Conn) {
	ip := connlimit.PeerAddr(c)
	release, ok := s.limit().Acquire(ip)
	if !ok {
		c.Close()
		return
	}
	defer release()
	// hosts-allow, before any byte is read.
	var names []string
	looked := false
	lookup := func() []string {
		if !looked && s.Names != nil {
			looked = true
			names = s.Names(ctx, ip)
		}
		return names
	}
	hosts := s.Hosts.Load()
	if ok, _ := hosts.Match(ip.String(), lookup); !ok {
		lookup()
		s.Log.Warn("relocation peer refused by hosts-allow", zap.String("peer", ip.String()), zap.Strings("names", names))
		c.Close()
		return
	}
	if s.TLS != nil {
		tc := tls.Server(c, s.TLS)
		hctx, cancel := context.WithTimeout(ctx, s.timeout())
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			s.Log.Warn("relocation TLS handshake failed", zap.String("peer", ip.String()), zap.Error(err))
			c.Close()
			return
		}
		c = tc
	}
	c.SetReadDeadline(time.Now().Add(s.timeout()))
	// A small buffer until the peer has logged in; the stream gets a
	// large one below.
	r := bufio.NewReaderSize(c, 4<<10)
	h, err := ReadHello(r)
	if err != nil {
		s.Log.Warn("relocation handshake refused", zap.String("peer", ip.String()), zap.Error(err))
		_ = WriteWelcome(c, &Welcome{Error: err.Error(), Code: 1007})
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	// A status question ("does domain UUID run here?") needs no password:
	// a source agent that restarted in the middle of a commit must be able
	// to ask without the credentials it no longer has.
	if h.Op != OpStatus {
		err := errors.New("no password check configured")
		if s.Authenticate != nil {
			err = s.Authenticate(h.User, h.Password)
		}
		switch {
		case errors.Is(err, ErrBusy):
			s.Log.Debug("relocation login refused: login workers busy", zap.String("peer", ip.String()))
			_ = WriteWelcome(c, &Welcome{Error: ErrBusy.Error(), Code: 1006})
			c.Close()
			return
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
			c.Close()
			return
		}
		if s.Throttle != nil {
			s.Throttle.Succeeded(ip)
		}
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

func (s *Server) timeout() time.Duration {
	if s.HandshakeTimeout > 0 {
		return s.HandshakeTimeout
	}
	return 15 * time.Second
}
