package etcdtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Binary is the etcd server the clusters run.
const Binary = "/usr/bin/etcd"

// StartTimeout bounds the wait for a started or restarted cluster to
// answer.
const StartTimeout = 60 * time.Second

// Timing of the members' raft: etcd's defaults, a heartbeat every 100ms
// and an election after 1s without one (shorter ones make leaders change
// on a loaded test machine, and writes fail with "leader changed"). The
// smallest lease etcd then grants is 1.5 election timeouts, below the 2s
// [pool] lease_ttl allows.
const (
	HeartbeatMillis = 100
	ElectionMillis  = 1000
)

// Cluster is a running etcd cluster.
type Cluster struct {
	t       testing.TB
	token   string
	opts    Options
	Members []*Member
	// TLS holds the CA and pairs of a cluster started with Options.TLS.
	TLS *TLSFiles

	authMu             sync.Mutex
	username, password string // set by EnableAuth
}

// Options change how a cluster runs.
type Options struct {
	// TLS serves the client URLs over https with a certificate of a CA
	// made for the cluster, and requires client certificates signed by
	// it (Cluster.TLS has the files). Peers talk plain http.
	TLS bool
}

// Member is one etcd server of a Cluster.
type Member struct {
	c          *Cluster
	Name       string
	IP         string // its own 127.0.0.x address
	ClientPort int
	PeerPort   int
	DataDir    string
	LogFile    string // the server's standard output and error

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	starts int
}

// next hands out 127.0.0.x addresses, so that clusters in one test
// binary do not share one.
var next atomic.Int32

// Start starts an n-member cluster (n is 1 or 3) and waits until every
// member answers and a leader is elected. Members are stopped, by pid,
// when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartWith(t, n, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if n != 1 && n != 3 {
		t.Fatalf("etcdtest: a cluster of %d members: use 1 or 3", n)
	}
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("etcdtest: %v: install Debian's etcd-server (.ci/run does)", err)
	}
	// A port found free may be taken before etcd binds it; start again on
	// new ports, a bounded number of times.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var c *Cluster
		c, err = start(t, n, attempt, opts)
		if err == nil {
			return c
		}
		t.Logf("etcdtest: cluster did not start (attempt %d): %v", attempt+1, err)
	}
	t.Fatalf("etcdtest: %v", err)
	return nil
}

func start(t testing.TB, n, attempt int, opts Options) (*Cluster, error) {
	dir := t.TempDir()
	c := &Cluster{t: t, token: fmt.Sprintf("etcdtest-%d-%d", os.Getpid(), attempt), opts: opts}
	var initial []string
	for i := 0; i < n; i++ {
		// 127.0.0.100 onwards, away from the low addresses the
		// end-to-end tests give agents.
		ip := fmt.Sprintf("127.0.0.%d", 100+int(next.Add(1))%150)
		cp, err := freePort(ip)
		if err != nil {
			return nil, err
		}
		pp, err := freePort(ip)
		if err != nil {
			return nil, err
		}
		m := &Member{
			c:          c,
			Name:       fmt.Sprintf("m%d", i),
			IP:         ip,
			ClientPort: cp,
			PeerPort:   pp,
			DataDir:    filepath.Join(dir, fmt.Sprintf("m%d", i)),
			LogFile:    filepath.Join(dir, fmt.Sprintf("m%d.log", i)),
		}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL())
	}
	if opts.TLS {
		var ips []string
		for _, m := range c.Members {
			ips = append(ips, m.IP)
		}
		f, err := writeTLS(dir, ips)
		if err != nil {
			return nil, fmt.Errorf("make TLS files: %w", err)
		}
		c.TLS = f
	}
	t.Cleanup(c.stopAll)
	for _, m := range c.Members {
		if err := m.start(strings.Join(initial, ","), "new"); err != nil {
			c.stopAll()
			return nil, err
		}
	}
	if err := c.WaitHealthy(StartTimeout); err != nil {
		c.stopAll()
		return nil, err
	}
	return c, nil
}

// freePort returns a TCP port that nothing listens on at ip just now.
func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ClientURL is the member's client endpoint.
func (m *Member) ClientURL() string {
	scheme := "http://"
	if m.c.opts.TLS {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(m.IP, strconv.Itoa(m.ClientPort))
}

// PeerURL is the member's raft peer endpoint.
func (m *Member) PeerURL() string {
	return "http://" + net.JoinHostPort(m.IP, strconv.Itoa(m.PeerPort))
}

// Endpoints lists every member's client URL.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientURL())
	}
	return out
}

func (m *Member) start(initialCluster, state string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return fmt.Errorf("etcd member %s is already running (pid %d)", m.Name, m.cmd.Process.Pid)
	}
	log, err := os.OpenFile(m.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	args := []string{
		"--name", m.Name,
		"--data-dir", m.DataDir,
		"--listen-client-urls", m.ClientURL(),
		"--advertise-client-urls", m.ClientURL(),
		"--listen-peer-urls", m.PeerURL(),
		"--initial-advertise-peer-urls", m.PeerURL(),
		"--initial-cluster", initialCluster,
		"--initial-cluster-state", state,
		"--initial-cluster-token", m.c.token,
		"--heartbeat-interval", strconv.Itoa(HeartbeatMillis),
		"--election-timeout", strconv.Itoa(ElectionMillis),
		"--logger", "zap",
		"--log-outputs", "stderr",
	}
	if f := m.c.TLS; f != nil {
		args = append(args, "--cert-file", f.ServerCert, "--key-file", f.ServerKey,
			"--trusted-ca-file", f.CA, "--client-cert-auth")
	}
	cmd := exec.Command(Binary, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, and killed if the test binary dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start etcd member %s: %w", m.Name, err)
	}
	m.cmd = cmd
	m.starts++
	exited := make(chan struct{})
	m.exited = exited
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	return nil
}

// Pid is the member's process id, 0 when it is not running.
func (m *Member) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Running says whether the member's process is alive (it may be stopped).
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to the member and waits until it has exited.
func (m *Member) Kill() {
	m.c.t.Helper()
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		m.c.t.Errorf("etcdtest: member %s (pid %d) did not exit 30s after SIGKILL", m.Name, cmd.Process.Pid)
	}
}

// Stop sends SIGSTOP: the member stops answering, as a hung host does,
// and keeps its sockets. Continue undoes it.
func (m *Member) Stop() {
	m.c.t.Helper()
	if err := m.signal(syscall.SIGSTOP); err != nil {
		m.c.t.Fatalf("etcdtest: stop member %s: %v", m.Name, err)
	}
	// kill(2) queues the signal; the member stops when its threads next
	// run. Wait until every thread is stopped, so that nothing it answers
	// afterwards can come from before the stop.
	if err := m.waitStopped(5 * time.Second); err != nil {
		m.c.t.Fatalf("etcdtest: stop member %s: %v", m.Name, err)
	}
}

// waitStopped waits until every thread of the member's process is in
// state T (stopped), at most within.
func (m *Member) waitStopped(within time.Duration) error {
	m.mu.Lock()
	pid := m.cmd.Process.Pid
	m.mu.Unlock()
	deadline := time.Now().Add(within)
	for {
		stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		stopped := len(stats) > 0
		for _, st := range stats {
			b, err := os.ReadFile(st)
			if err != nil {
				continue // a thread that ended meanwhile
			}
			// pid (comm) state ...: the state follows the last ')'.
			i := bytes.LastIndexByte(b, ')')
			if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				stopped = false
				break
			}
		}
		if stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d not stopped %v after SIGSTOP", pid, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Continue sends SIGCONT to a member that Stop stopped.
func (m *Member) Continue() {
	m.c.t.Helper()
	if err := m.signal(syscall.SIGCONT); err != nil {
		m.c.t.Fatalf("etcdtest: continue member %s: %v", m.Name, err)
	}
}

func (m *Member) signal(sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return errors.New("not running")
	}
	return m.cmd.Process.Signal(sig)
}

// Restart starts a killed member again on its data directory, addresses
// and ports, and waits until the cluster is healthy.
func (m *Member) Restart() {
	t := m.c.t
	t.Helper()
	var initial []string
	for _, o := range m.c.Members {
		initial = append(initial, o.Name+"="+o.PeerURL())
	}
	if err := m.start(strings.Join(initial, ","), "existing"); err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	if err := m.c.WaitHealthy(StartTimeout); err != nil {
		t.Fatalf("etcdtest: after restarting %s: %v", m.Name, err)
	}
}

// stopAll kills every member and waits for each (a stopped member is
// continued first so that nothing is left behind stopped).
func (c *Cluster) stopAll() {
	for _, m := range c.Members {
		_ = m.signal(syscall.SIGCONT)
		m.Kill()
	}
}

// WaitHealthy waits, at most timeout, until every running member answers
// a status request and all agree on one leader, and a linearizable read
// through them succeeds.
func (c *Cluster) WaitHealthy(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		if last = c.healthy(ctx); last == nil {
			return nil
		}
		for _, m := range c.Members {
			m.mu.Lock()
			cmd, exited := m.cmd, m.exited
			m.mu.Unlock()
			if cmd == nil {
				continue
			}
			select {
			case <-exited:
				return fmt.Errorf("etcd member %s exited: %s", m.Name, tail(m.LogFile))
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not healthy after %s: %v", timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) healthy(ctx context.Context) error {
	var leader uint64
	var eps []string
	for _, m := range c.Members {
		if !m.Running() {
			continue
		}
		eps = append(eps, m.ClientURL())
		st, err := m.status(ctx)
		if err != nil {
			return fmt.Errorf("member %s: %w", m.Name, err)
		}
		if st.Leader == 0 {
			return fmt.Errorf("member %s has no leader", m.Name)
		}
		if leader != 0 && st.Leader != leader {
			return fmt.Errorf("members disagree on the leader (%x, %x)", leader, st.Leader)
		}
		leader = st.Leader
	}
	if len(eps) == 0 {
		return errors.New("no member is running")
	}
	cli, err := c.client(eps)
	if err != nil {
		return err
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = cli.Get(rctx, "etcdtest-health")
	return err
}

type status struct {
	ID, Leader uint64
}

// status asks the member alone (a client with only its endpoint).
func (m *Member) status(ctx context.Context) (status, error) {
	cli, err := m.c.client([]string{m.ClientURL()})
	if err != nil {
		return status{}, err
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := cli.Status(sctx, m.ClientURL())
	if err != nil {
		return status{}, err
	}
	return status{ID: resp.Header.MemberId, Leader: resp.Leader}, nil
}

func (c *Cluster) client(eps []string) (*clientv3.Client, error) {
	cfg := c.ClientConfig()
	cfg.Endpoints = eps
	return clientv3.New(cfg)
}

// ClientConfig is a client configuration for the cluster: every
// endpoint, its TLS pair and CA, and the root credentials once
// EnableAuth has run.
func (c *Cluster) ClientConfig() clientv3.Config {
	cfg := clientv3.Config{
		Endpoints:   c.Endpoints(),
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	}
	if f := c.TLS; f != nil {
		pair, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
		if err != nil {
			c.t.Fatalf("etcdtest: client pair: %v", err)
		}
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			c.t.Fatalf("etcdtest: %v", err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(pem)
		cfg.TLS = &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	c.authMu.Lock()
	cfg.Username, cfg.Password = c.username, c.password
	c.authMu.Unlock()
	return cfg
}

// EnableAuth turns etcd's authentication on with a root user of the given
// password; from then on a client needs credentials.
func (c *Cluster) EnableAuth(password string) {
	c.t.Helper()
	cli, err := c.client(c.Endpoints())
	if err != nil {
		c.t.Fatalf("etcdtest: %v", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cli.UserAdd(ctx, "root", password); err != nil {
		c.t.Fatalf("etcdtest: add user root: %v", err)
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		c.t.Fatalf("etcdtest: grant root the root role: %v", err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		c.t.Fatalf("etcdtest: enable authentication: %v", err)
	}
	c.authMu.Lock()
	c.username, c.password = "root", password
	c.authMu.Unlock()
}

// Leader returns the member that is the raft leader, as the running
// members report it, waiting at most timeout for one to be elected.
func (c *Cluster) Leader(timeout time.Duration) (*Member, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		ids := map[uint64]*Member{}
		var leader uint64
		for _, m := range c.Members {
			if !m.Running() {
				continue
			}
			st, err := m.status(ctx)
			if err != nil {
				last = fmt.Errorf("member %s: %w", m.Name, err)
				continue
			}
			ids[st.ID] = m
			if st.Leader != 0 {
				leader = st.Leader
			}
		}
		if m, ok := ids[leader]; ok && leader != 0 {
			return m, nil
		}
		if leader != 0 {
			last = fmt.Errorf("leader %x is none of the running members", leader)
		} else if last == nil {
			last = errors.New("no leader")
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no leader after %s: %v", timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(bytes.TrimSpace(data))
}
