package agent

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ovs-agent/ovs-agent/agent/access"
	"github.com/ovs-agent/ovs-agent/internal/connlimit"
	"github.com/ovs-agent/ovs-agent/internal/connlimit/connlimittest"
)

func pendingTestServer(t *testing.T, max, per int) (string, *connlimit.Pending, *observer.ObservedLogs) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	var pol atomic.Pointer[access.Policy]
	all, err := access.Parse("*")
	if err != nil {
		t.Fatal(err)
	}
	pol.Store(&access.Policy{Allow: all})
	pending := &connlimit.Pending{Max: max, PerAddress: per, Log: zap.New(core), What: "API"}
	g := newGuardedListener(l, &pol, &access.Checker{}, zap.New(core), pending)
	srv := &http.Server{
		ConnContext: connContext,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/login" {
				authenticated(r.Context().Value(connKey{}).(net.Conn))
			}
			w.Write([]byte("ok"))
		}),
	}
	go srv.Serve(g)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port, pending, logs
}

func dialFromPort(t *testing.T, src, port string) net.Conn {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func get(t *testing.T, c net.Conn, path string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c.SetDeadline(time.Time{})
}

func TestAPIPendingConnectionCaps(t *testing.T) {
	port, pending, logs := pendingTestServer(t, 3, 2)
	// 127.0.0.1 connects to itself; use loopback aliases as peers.
	dialFromPort(t, "127.0.0.3", port)
	dialFromPort(t, "127.0.0.3", port)
	connlimittest.WaitHeld(t, pending, 2)
	for range 3 {
		if !connlimittest.Closed(dialFromPort(t, "127.0.0.3", port)) {
			t.Fatal("a third pending connection from one address was kept")
		}
	}
	b := dialFromPort(t, "127.0.0.4", port)
	if !connlimittest.Kept(b) {
		t.Fatal("another address's first connection was closed")
	}
	if !connlimittest.Closed(dialFromPort(t, "127.0.0.5", port)) {
		t.Fatal("a connection over the listener's cap was kept")
	}
	// A connection that logged in is no longer pending, even kept alive;
	// one that only made an unauthenticated request still is.
	get(t, b, "/login")
	connlimittest.WaitHeld(t, pending, 2)
	if !connlimittest.Kept(dialFromPort(t, "127.0.0.5", port)) {
		t.Fatal("an authenticated connection still counted as pending")
	}
	var peers []string
	for _, e := range logs.FilterMessage("connection refused: too many connections not yet logged in").All() {
		peers = append(peers, e.ContextMap()["peer"].(string))
	}
	if strings.Join(peers, ",") != "127.0.0.3,127.0.0.5" {
		t.Fatalf("refusal log lines for %v, want one each for 127.0.0.3 and 127.0.0.5", peers)
	}
}

func TestAPIUnauthenticatedRequestsStayPending(t *testing.T) {
	port, pending, _ := pendingTestServer(t, 100, 1)
	a := dialFromPort(t, "127.0.0.3", port)
	get(t, a, "/no-login")
	if !connlimittest.Closed(dialFromPort(t, "127.0.0.3", port)) {
		t.Fatal("a connection that never logged in stopped counting")
	}
	a.Close()
	connlimittest.WaitHeld(t, pending, 0)
	if !connlimittest.Kept(dialFromPort(t, "127.0.0.3", port)) {
		t.Fatal("a closed connection's place was not given back")
	}
}
