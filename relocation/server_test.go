package relocation

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func startServer(t *testing.T, patterns []string) (string, *observer.ObservedLogs, chan *Hello) {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	core, logs := observer.New(zap.InfoLevel)
	h, err := NewHostsAllow(patterns)
	if err != nil {
		t.Fatal(err)
	}
	var hosts atomic.Pointer[HostsAllow]
	hosts.Store(&h)
	got := make(chan *Hello, 4)
	s := &Server{
		Log:   zap.New(core),
		Hosts: &hosts,
		Names: func(context.Context, netip.Addr) []string { return []string{"peer.example.org"} },
		Authenticate: func(u, p string) error {
			if u == "admin" && p == "pw" {
				return nil
			}
			return errors.New("wrong")
		},
		Handle: func(_ context.Context, c net.Conn, r *bufio.Reader, h *Hello) {
			got <- h
			WriteWelcome(c, &Welcome{OK: true, Host: "target"})
			c.Close()
		},
	}
	go s.Serve(context.Background(), l)
	return l.Addr().String(), logs, got
}

func dialFrom(src, addr string, h *Hello) (*Welcome, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(Magic + " 1\n")); err != nil {
		return nil, err
	}
	if err := writeMsg(c, h); err != nil {
		return nil, err
	}
	var wl Welcome
	if err := readMsg(c, &wl); err != nil {
		return nil, err
	}
	return &wl, nil
}

func TestHostsAllowRefusesBeforeReading(t *testing.T) {
	addr, logs, got := startServer(t, []string{`127\.0\.0\.3$`})
	hello := &Hello{Op: OpCheck, User: "admin", Password: "pw", Offer: Offer{Name: "d"}}
	if _, err := dialFrom("127.0.0.4", addr, hello); err == nil {
		t.Fatal("a peer outside hosts-allow got an answer")
	}
	deadline := time.Now().Add(5 * time.Second)
	for logs.FilterMessage("relocation peer refused by hosts-allow").Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	e := logs.FilterMessage("relocation peer refused by hosts-allow").All()
	if len(e) != 1 || e[0].ContextMap()["peer"] != "127.0.0.4" || !strings.Contains(strings.Join(toStrings(e[0].ContextMap()["names"]), ","), "peer.example.org") {
		t.Fatalf("refusal log: %v", e)
	}
	if len(got) != 0 {
		t.Fatal("the handler ran for a refused peer")
	}
	wl, err := dialFrom("127.0.0.3", addr, hello)
	if err != nil || !wl.OK {
		t.Fatalf("allowed peer: %+v %v", wl, err)
	}
	if h := <-got; h.Password != "" || h.Offer.Name != "d" {
		t.Fatalf("handler got %+v (the password must be dropped)", h)
	}
}

func toStrings(v any) []string {
	switch x := v.(type) {
	case []string:
		return x
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, e.(string))
		}
		return out
	}
	return nil
}

func TestHostsAllowByName(t *testing.T) {
	addr, _, _ := startServer(t, []string{`^.*\.example\.org$`})
	wl, err := dialFrom("127.0.0.5", addr, &Hello{Op: OpCheck, User: "admin", Password: "pw"})
	if err != nil || !wl.OK {
		t.Fatalf("peer allowed by its host name: %+v %v", wl, err)
	}
}

func TestAuthentication(t *testing.T) {
	addr, logs, got := startServer(t, nil)
	wl, err := dialFrom("127.0.0.3", addr, &Hello{Op: OpReceive, User: "admin", Password: "wrong"})
	if err != nil || wl.OK || wl.Code != 1000 {
		t.Fatalf("wrong password: %+v %v", wl, err)
	}
	if len(got) != 0 {
		t.Fatal("handler ran without authentication")
	}
	for _, e := range logs.All() {
		for _, v := range e.ContextMap() {
			if s, ok := v.(string); ok && strings.Contains(s, "wrong") {
				t.Fatalf("the password reached the log: %v", e)
			}
		}
	}
}

func TestDialReportsRefusal(t *testing.T) {
	addr, _, _ := startServer(t, []string{`^10\.`})
	_, _, err := Dial(context.Background(), DialOptions{Addr: addr, Timeout: 5 * time.Second}, &Hello{Op: OpCheck})
	if err == nil || !strings.Contains(err.Error(), "hosts-allow") {
		t.Fatalf("Dial to a receiver that refuses us: %v", err)
	}
}
