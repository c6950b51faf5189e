package etcdtest

import (
	"bytes"
	"context"
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

// Timing of the members' raft: a heartbeat every 50ms and an election
// after 500ms without one, a tenth of etcd's defaults' scale, so that a
// killed leader is replaced quickly. The smallest lease etcd then grants
// is 1.5 election timeouts, below the 2s [pool] lease_ttl allows.
const (
	HeartbeatMillis = 50
	ElectionMillis  = 500
)

// Cluster is a running etcd cluster.
type Cluster struct {
	t       testing.TB
	token   string
	Members []*Member
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
		c, err = start(t, n, attempt)
		if err == nil {
			return c
		}
		t.Logf("etcdtest: cluster did not start (attempt %d): %v", attempt+1, err)
	}
	t.Fatalf("etcdtest: %v", err)
	return nil
}

func start(t testing.TB, n, attempt int) (*Cluster, error) {
	dir := t.TempDir()
	c := &Cluster{t: t, token: fmt.Sprintf("etcdtest-%d-%d", os.Getpid(), attempt)}
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
	return "http://" + net.JoinHostPort(m.IP, strconv.Itoa(m.ClientPort))
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
	cmd := exec.Command(Binary,
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
	)
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
	return clientv3.New(clientv3.Config{
		Endpoints:   eps,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	})
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
