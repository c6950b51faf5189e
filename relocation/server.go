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
	// Authenticate checks the credentials a sender presents.
	Authenticate func(user, password string) bool
	// TLS, when set, makes this the TLS relocation listener.
	TLS    *tls.Config
	Handle Handler
	// HandshakeTimeout bounds reading the hello (default 15s).
	HandshakeTimeout time.Duration

	wg sync.WaitGroup
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

func (s *Server) serve(ctx context.Context, c net.Conn) {
	ta, _ := c.RemoteAddr().(*net.TCPAddr)
	var ip netip.Addr
	if ta != nil {
		ip, _ = netip.AddrFromSlice(ta.IP)
		ip = ip.Unmap()
	}
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
	r := bufio.NewReaderSize(c, 64<<10)
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
	if h.Op != OpStatus && (s.Authenticate == nil || !s.Authenticate(h.User, h.Password)) {
		s.Log.Warn("relocation peer failed to authenticate", zap.String("peer", ip.String()), zap.String("user", h.User), zap.String("op", h.Op))
		time.Sleep(time.Second)
		_ = WriteWelcome(c, &Welcome{Error: "authentication failed: give the receiving agent's API user and password", Code: 1000})
		c.Close()
		return
	}
	h.Password = ""
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
