package relocation

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ovs-agent/ovs-agent/internal/connlimit/connlimittest"
)

// limitServer starts a Server on 127.0.0.2 that accepts every host; the
// caller may adjust s before the listener starts (through edit).
func limitServer(t *testing.T, edit func(s *Server)) (string, *Server) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	h, _ := NewHostsAllow(nil)
	var hosts atomic.Pointer[HostsAllow]
	hosts.Store(&h)
	s := &Server{
		Log:   zap.NewNop(),
		Hosts: &hosts,
		Authenticate: func(u, p string) error {
			if u == "admin" && p == "pw" {
				return nil
			}
			return errors.New("denied")
		},
		HandshakeTimeout: 30 * time.Second,
		Handle: func(_ context.Context, c net.Conn, _ *bufio.Reader, _ *Hello) {
			WriteWelcome(c, &Welcome{OK: true})
			c.Close()
		},
	}
	if edit != nil {
		edit(s)
	}
	go s.Serve(context.Background(), l)
	return l.Addr().String(), s
}

func prefix(n uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return b[:]
}

// Many peers announcing a 1 MiB hello and sending only a few bytes of it
// must not make the receiver allocate the announced size.
func TestHalfSentHellosDoNotAllocateAnnouncedSize(t *testing.T) {
	addr, _ := limitServer(t, func(s *Server) { s.MaxPending, s.MaxPendingPerAddress = 1000, 1000 })
	const n = 60
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		msg := append([]byte(Magic+" 1\n"), prefix(1<<20)...)
		msg = append(msg, `{"op":"rec`...)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // let the server read what was sent
	runtime.ReadMemStats(&after)
	got := after.TotalAlloc - before.TotalAlloc
	if limit := uint64(n) * 96 << 10; got > limit {
		t.Fatalf("%d half-sent 1 MiB hellos allocated %d KiB (more than %d KiB)", n, got>>10, limit>>10)
	}
	t.Logf("%d half-sent hellos: %d KiB allocated", n, got>>10)
}

func TestReadHelloLimits(t *testing.T) {
	for name, data := range map[string][]byte{
		"over MaxHello":   append([]byte(Magic+" 1\n"), prefix(MaxHello+1)...),
		"4 GiB":           append([]byte(Magic+" 1\n"), prefix(0xffffffff)...),
		"long line":       []byte(strings.Repeat("A", 10<<10) + "\n"),
		"line never ends": bytes.Repeat([]byte("x"), 1<<20),
	} {
		_, err := ReadHello(bufio.NewReader(bytes.NewReader(data)))
		if err == nil || !strings.Contains(err.Error(), "too l") {
			t.Errorf("%s: %v, want a too large / too long error", name, err)
		}
	}
	// Exactly at the cap is read.
	var good bytes.Buffer
	good.WriteString(Magic + " 1\n")
	if err := writeMsg(&good, &Hello{Op: OpCheck, Offer: Offer{Config: strings.Repeat("#", MaxHello-1000)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHello(bufio.NewReader(&good)); err != nil {
		t.Fatalf("a hello under the cap: %v", err)
	}
}

func TestDialRefusesOversizeHello(t *testing.T) {
	_, _, err := Dial(context.Background(), DialOptions{Addr: "127.0.0.1:1", Timeout: time.Second},
		&Hello{Op: OpReceive, Offer: Offer{Name: "big", Config: strings.Repeat("x", MaxHello)}})
	if err == nil || !strings.Contains(err.Error(), "more than") || !strings.Contains(err.Error(), "big") {
		t.Fatalf("oversize hello: %v", err)
	}
}

type fakeThrottle struct {
	mu              sync.Mutex
	failed, success int
	delay           time.Duration
}

func (f *fakeThrottle) Failed(netip.Addr) (time.Duration, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed++
	return f.delay, f.failed
}

func (f *fakeThrottle) Succeeded(netip.Addr) {
	f.mu.Lock()
	f.success++
	f.mu.Unlock()
}

func TestFailedLoginUsesThrottle(t *testing.T) {
	th := &fakeThrottle{delay: 300 * time.Millisecond}
	addr, _ := limitServer(t, func(s *Server) { s.Throttle = th })
	start := time.Now()
	wl, err := dialFrom("127.0.0.3", addr, &Hello{Op: OpCheck, User: "admin", Password: "nope"})
	if err != nil || wl.OK || wl.Code != 1000 {
		t.Fatalf("wrong password: %+v %v", wl, err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("answered after %v, want the throttle's 300ms", d)
	}
	if wl, err := dialFrom("127.0.0.3", addr, &Hello{Op: OpCheck, User: "admin", Password: "pw"}); err != nil || !wl.OK {
		t.Fatalf("right password: %+v %v", wl, err)
	}
	th.mu.Lock()
	defer th.mu.Unlock()
	if th.failed != 1 || th.success != 1 {
		t.Fatalf("throttle failed=%d succeeded=%d", th.failed, th.success)
	}
}

func TestBusyLoginIsNotAFailure(t *testing.T) {
	th := &fakeThrottle{delay: 5 * time.Second}
	addr, _ := limitServer(t, func(s *Server) {
		s.Throttle = th
		s.Authenticate = func(string, string) error { return ErrBusy }
	})
	start := time.Now()
	wl, err := dialFrom("127.0.0.3", addr, &Hello{Op: OpCheck, User: "admin", Password: "pw"})
	if err != nil || wl.OK || wl.Code != 1006 || !strings.Contains(wl.Error, "busy") {
		t.Fatalf("busy: %+v %v", wl, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("busy answer took %v", d)
	}
	if th.failed != 0 {
		t.Fatal("a busy refusal counted as a failed login")
	}
}

// dialSilent connects from src and sends nothing.
func dialSilent(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestPendingConnectionCaps(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	addr, srv := limitServer(t, func(s *Server) {
		s.Log = zap.New(core)
		s.MaxPending, s.MaxPendingPerAddress = 3, 2
		s.Handle = func(_ context.Context, c net.Conn, _ *bufio.Reader, _ *Hello) {
			WriteWelcome(c, &Welcome{OK: true})
			<-hold
			c.Close()
		}
	})
	a1 := dialSilent(t, "127.0.0.3", addr)
	dialSilent(t, "127.0.0.3", addr)
	connlimittest.WaitHeld(t, srv.limit(), 2)
	for range 3 {
		if c := dialSilent(t, "127.0.0.3", addr); !connlimittest.Closed(c) {
			t.Fatal("a third pending connection from one address was kept")
		}
	}
	if c := dialSilent(t, "127.0.0.4", addr); !connlimittest.Kept(c) {
		t.Fatal("another address's first connection was closed")
	}
	connlimittest.WaitHeld(t, srv.limit(), 3)
	if c := dialSilent(t, "127.0.0.5", addr); !connlimittest.Closed(c) {
		t.Fatal("a connection over the listener's cap was kept")
	}
	// A closed pending connection gives its place back.
	a1.Close()
	connlimittest.WaitHeld(t, srv.limit(), 2)
	if c := dialSilent(t, "127.0.0.5", addr); !connlimittest.Kept(c) {
		t.Fatal("the place of a closed connection was not given back")
	}
	// One line for 127.0.0.3's three refusals (rate-limited), one for .5.
	var peers []string
	for _, e := range logs.FilterMessage("connection refused: too many connections not yet logged in").All() {
		peers = append(peers, e.ContextMap()["peer"].(string))
	}
	if strings.Join(peers, ",") != "127.0.0.3,127.0.0.5" {
		t.Fatalf("refusal log lines for %v, want one for 127.0.0.3 and one for 127.0.0.5", peers)
	}
}

func TestAuthenticatedConnectionsAreNotPending(t *testing.T) {
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	addr, _ := limitServer(t, func(s *Server) {
		s.MaxPending, s.MaxPendingPerAddress = 10, 1
		s.Handle = func(_ context.Context, c net.Conn, _ *bufio.Reader, _ *Hello) {
			WriteWelcome(c, &Welcome{OK: true})
			<-hold
			c.Close()
		}
	})
	for i := range 3 {
		c := dialSilent(t, "127.0.0.3", addr)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte(Magic + " 1\n"))
		if err := writeMsg(c, &Hello{Op: OpCheck, User: "admin", Password: "pw"}); err != nil {
			t.Fatal(err)
		}
		var wl Welcome
		if err := readMsg(c, &wl); err != nil || !wl.OK {
			t.Fatalf("authenticated connection %d: %+v %v", i, wl, err)
		}
	}
}
