package test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/client"
)

// notifySocket is a unixgram socket the test owns, standing in for systemd's
// NOTIFY_SOCKET.
type notifySocket struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
}

func newNotifySocket(t *testing.T) *notifySocket {
	// Unix socket paths are limited to 108 bytes: keep it short.
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &notifySocket{path: filepath.Join(dir, "notify")}
	n.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := n.conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

func (n *notifySocket) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// waitFor waits for a message containing s after the first skip messages and
// returns its index.
func (n *notifySocket) waitFor(t *testing.T, skip int, s string) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for i, m := range n.all() {
			if i >= skip && strings.Contains(m, s) {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no sd_notify message %q after #%d; got %q", s, skip, n.all())
	return -1
}

func TestSystemdNotifyReloadStop(t *testing.T) {
	n := newNotifySocket(t)
	a := startAgent(t, agentConf{}, "NOTIFY_SOCKET="+n.path, "WATCHDOG_USEC=400000")
	ready := n.waitFor(t, 0, "READY=1")
	if !strings.Contains(n.all()[ready], "STATUS=serving") {
		t.Errorf("READY message has no STATUS line: %q", n.all()[ready])
	}
	// READY comes only once the API answers (startAgent already saw it answer).
	wd := n.waitFor(t, ready, "WATCHDOG=1")
	n.waitFor(t, wd+1, "WATCHDOG=1")

	a.Signal(syscall.SIGHUP)
	rl := n.waitFor(t, ready+1, "RELOADING=1")
	if !regexp.MustCompile(`MONOTONIC_USEC=\d+`).MatchString(n.all()[rl]) {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", n.all()[rl])
	}
	n.waitFor(t, rl+1, "READY=1")
	a.WaitLog("configuration reloaded")

	if err := a.Stop(); err != nil {
		t.Fatalf("agent exit after SIGTERM: %v", err)
	}
	n.waitFor(t, rl+1, "STOPPING=1")
	if !strings.Contains(a.Log(), "agent stopped") {
		t.Error("no clean stop in the log")
	}
	if _, err := os.Stat(a.Socket); !os.IsNotExist(err) {
		t.Errorf("unix socket left behind after stop: %v", err)
	}
}

// TestReloadKeepsOldConfigOnError breaks agent.ini, sends SIGHUP, and checks
// the old configuration stays in force; then a good change takes effect.
func TestReloadKeepsOldConfigOnError(t *testing.T) {
	a := startAgent(t, agentConf{})
	good, _ := os.ReadFile(a.Config)
	bad := strings.Replace(string(good), "allow = *", "allow = 10.1.1.300", 1) + "\n[server]\nbogus_option = 1\n"
	if err := os.WriteFile(a.Config, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	a.Signal(syscall.SIGHUP)
	a.WaitLog("the running configuration stays in force")
	line := logLines(a.Log(), "the running configuration stays in force")[0]
	if !strings.Contains(line, "agent.ini:") {
		t.Errorf("rejection does not name the file and line: %s", line)
	}
	if err := a.TCP().Call(context.Background(), "agent.ping", nil); err != nil {
		t.Fatalf("API after a rejected reload: %v", err)
	}
	if a.Exited() {
		t.Fatal("agent exited on a bad reload")
	}

	// A valid change: deny 127.0.0.1. After reload, TCP from 127.0.0.1 is refused.
	okChange := strings.Replace(string(good), "deny = ", "deny = 127.0.0.1", 1)
	if err := os.WriteFile(a.Config, []byte(okChange), 0o600); err != nil {
		t.Fatal(err)
	}
	a.Signal(syscall.SIGHUP)
	a.WaitLog("configuration reloaded")
	c, _ := client.New(client.Options{URL: a.URL(), User: "admin", Password: testPassword})
	if err := c.Call(context.Background(), "agent.ping", nil); err == nil {
		t.Fatal("deny = 127.0.0.1 not in force after reload")
	}
	// The unix socket is not subject to address rules.
	if err := a.Unix().Call(context.Background(), "agent.ping", nil); err != nil {
		t.Fatal(err)
	}
}

// TestSocketActivation starts the agent under systemd-socket-activate with a
// named TCP socket, as a .socket unit would.
func TestSocketActivation(t *testing.T) {
	sa, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Fatal("systemd-socket-activate is needed (.ci/run installs the systemd package)")
	}
	dir := t.TempDir()
	port := freePort(t, "127.0.0.1")
	text, _ := agentConf{Port: 1}.render(t, dir) // port 1: must not be bound; the socket comes from systemd
	cfg := filepath.Join(dir, "agent.ini")
	os.WriteFile(cfg, []byte(text), 0o600)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	a := &Agent{t: t, Dir: dir, Config: cfg, Socket: filepath.Join(dir, "agent.sock"), Addr: addr}
	a.out = &syncBuffer{}
	a.done = make(chan struct{})
	a.cmd = exec.Command(sa, "-l", addr, "--fdname=api", bin("ovs-agent"), "serve", "--config", cfg)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.waitErr = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.Stop()
		killVMMs(dir)
		if t.Failed() {
			t.Logf("output:\n%s\nlog:\n%s", a.out.String(), a.Log())
		}
	})
	// systemd-socket-activate starts the service on the first connection.
	var st struct {
		Endpoints []struct {
			Kind      string `xmlrpc:"kind"`
			Address   string `xmlrpc:"address"`
			Activated bool   `xmlrpc:"socket_activated"`
		} `xmlrpc:"endpoints"`
	}
	var callErr error
	for i := 0; i < 100; i++ {
		if callErr = a.TCP().Call(context.Background(), "agent.status", &st); callErr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if callErr != nil {
		t.Fatal(callErr)
	}
	found := false
	for _, e := range st.Endpoints {
		if e.Kind == "http" && e.Address == addr && e.Activated {
			found = true
		}
	}
	if !found {
		t.Fatalf("agent.status endpoints %+v: no socket-activated %s", st.Endpoints, addr)
	}
}
