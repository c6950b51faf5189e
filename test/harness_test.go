package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/auth"
	"github.com/ovs-agent/ovs-agent/agent/client"
)

// binDir holds the binaries built once for the whole test run.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ovs-agent-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("go", "build", "-o", dir+"/", "../cmd/...")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		return 1
	}
	binDir = dir
	code := m.Run()
	// Domains outlive agents by design: end every VMM this run started.
	killVMMs(dir)
	return code
}

// unmountUnder detaches every mount below dir (repositories a test's agent
// mounted stay mounted when the agent stops, by design), deepest first.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// killVMMs ends the ovs-vmm processes whose command line mentions dir (an
// agent's folder, or the folder of the binaries).
func killVMMs(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		if strings.Contains(s, "ovs-vmm") && strings.Contains(s, dir) {
			if pid, err := strconv.Atoi(strings.Split(p, "/")[2]); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

func bin(name string) string { return filepath.Join(binDir, name) }

const testPassword = "e2e-Secret-pw"

var (
	hashOnce sync.Once
	pwHash   string
)

// passwordHash is the bcrypt hash of testPassword, made once (bcrypt is slow).
func passwordHash(t testing.TB) string {
	hashOnce.Do(func() {
		h, err := auth.Hash(testPassword)
		if err != nil {
			panic(err)
		}
		pwHash = h
	})
	return pwHash
}

// freePort finds a TCP port free on ip.
func freePort(t testing.TB, ip string) int {
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// agentConf is what a test wants in agent.ini; Extra lines are appended to
// their sections verbatim.
type agentConf struct {
	Listen string // default 127.0.0.1
	Port   int    // default: a free port
	SSL    bool
	Allow  string // default *
	Deny   string
	NoPass bool
	// RelocPort, when set, turns the relocation listener on at Listen:RelocPort.
	RelocPort int
	// FileDirs is [agent] file_dirs; by default the test's temporary root
	// (the parent of every t.TempDir of the test), so that save, restore
	// and create from temp paths stay allowed. Confined leaves it empty:
	// only the repositories.
	FileDirs []string
	Confined bool
	Extra    map[string][]string // section -> lines
	// CPUs, when set, pins the agent (and so the VMMs it starts, which
	// inherit its affinity) to those CPUs (taskset -c CPUs): the
	// benchmarks' two emulated hosts.
	CPUs string
}

func fileDirs(c agentConf, dir string) string {
	switch {
	case c.Confined:
		return ""
	case len(c.FileDirs) > 0:
		return strings.Join(c.FileDirs, " ")
	}
	return filepath.Dir(dir)
}

func relocLines(c agentConf) []string {
	if c.RelocPort == 0 {
		return []string{"server = no"}
	}
	return []string{"server = yes", "address = " + c.Listen, fmt.Sprintf("port = %d", c.RelocPort)}
}

// Agent is one ovs-agent process started by a test.
type Agent struct {
	t       testing.TB
	Dir     string
	Config  string
	Socket  string
	Addr    string // host:port of the TCP API
	Reloc   string // host:port of the relocation listener, if on
	SSL     bool
	CPUs    string // taskset -c list the agent runs on, "" for any
	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan struct{}
	waitErr error
	scanned bool // checkVMMPanics ran
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (c agentConf) render(t testing.TB, dir string) (string, agentConf) {
	if c.Listen == "" {
		c.Listen = "127.0.0.1"
	}
	if c.Port == 0 {
		c.Port = freePort(t, c.Listen)
	}
	if c.Allow == "" {
		c.Allow = "*"
	}
	ssl := "no"
	if c.SSL {
		ssl = "yes"
	}
	hash := ""
	if !c.NoPass {
		hash = passwordHash(t)
	}
	sections := []struct {
		name  string
		lines []string
	}{
		{"server", []string{
			"listen_address = " + c.Listen,
			fmt.Sprintf("port = %d", c.Port),
			"ssl = " + ssl,
			"unix_socket = " + filepath.Join(dir, "agent.sock"),
		}},
		{"auth", []string{"user = admin", "password_hash = " + hash}},
		{"access", []string{"allow = " + c.Allow, "deny = " + c.Deny}},
		{"log", []string{"file = " + filepath.Join(dir, "agent.log"), "level = debug"}},
		{"agent", append([]string{"state_dir = " + filepath.Join(dir, "state"), "file_dirs = " + fileDirs(c, dir),
			"secondary_storage_dir = " + filepath.Join(dir, "nfsmnt")}, backingLine(c)...)},
		{"qemu", nil}, // only Extra's lines (qemuAgent's accel, a test's binary)
		{"relocation", relocLines(c)},
		{"repository", []string{
			"root = " + filepath.Join(dir, "OVS"),
			"repositories_file = " + filepath.Join(dir, "ovs", "repositories"),
			"options_file = " + filepath.Join(dir, "ovs", "repositories.options"),
			"staging_dir = " + filepath.Join(dir, "mount"),
			"state_file = " + filepath.Join(dir, "repositories.state"),
		}},
		{"pool", nil},    // only Extra's lines (the pool tests' etcd cluster)
		{"metrics", nil}, // only Extra's lines (the metrics tests' endpoint)
	}
	for name := range c.Extra {
		known := false
		for _, s := range sections {
			known = known || s.name == name
		}
		if !known {
			panic("agentConf.Extra names section [" + name + "], which the harness does not write: add it to the sections list")
		}
	}
	var b strings.Builder
	b.WriteString("; written by the end-to-end tests\n")
	for _, s := range sections {
		fmt.Fprintf(&b, "\n[%s]\n", s.name)
		for _, l := range append(s.lines, c.Extra[s.name]...) {
			b.WriteString(l + "\n")
		}
	}
	return b.String(), c
}

// startAgent writes an agent.ini for c and starts `ovs-agent serve` on it,
// waiting until it answers. The agent is stopped when the test ends.
func startAgent(t testing.TB, c agentConf, env ...string) *Agent {
	t.Helper()
	dir := t.TempDir()
	text, c := c.render(t, dir)
	cfg := filepath.Join(dir, "agent.ini")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &Agent{t: t, Dir: dir, Config: cfg, Socket: filepath.Join(dir, "agent.sock"),
		Addr: net.JoinHostPort(c.Listen, fmt.Sprint(c.Port)), SSL: c.SSL, CPUs: c.CPUs}
	if c.RelocPort != 0 {
		a.Reloc = net.JoinHostPort(c.Listen, fmt.Sprint(c.RelocPort))
	}
	a.start(env...)
	a.waitReady()
	return a
}

func (a *Agent) start(env ...string) {
	if a.done != nil {
		// A restart: the previous process's end is recorded first (its
		// Wait goroutine closes a.done), never taken for the new one's.
		select {
		case <-a.done:
		case <-time.After(30 * time.Second):
			a.t.Fatal("restart: the previous agent process has not ended after 30s")
		}
	}
	a.out = &syncBuffer{}
	a.done = make(chan struct{})
	a.cmd = exec.Command(bin("ovs-agent"), "serve", "--config", a.Config)
	if a.CPUs != "" {
		// taskset execs the agent in its place: the pid is the agent's.
		a.cmd = exec.Command("taskset", "-c", a.CPUs, bin("ovs-agent"), "serve", "--config", a.Config)
	}
	a.cmd.Env = append(os.Environ(), env...)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	go func() {
		a.waitErr = a.cmd.Wait()
		close(a.done)
	}()
	a.t.Cleanup(func() {
		a.Stop()
		killVMMs(a.Dir)
		unmountUnder(a.Dir)
		a.checkVMMPanics()
		if a.t.Failed() {
			a.t.Logf("agent output:\n%s\nagent log:\n%s", a.out.String(), a.Log())
			a.logVMMs()
		}
	})
}

// checkVMMPanics fails the test when a VMM of the agent panicked, even
// one whose guest the test did not look at again, or one that recovered
// (a control connection's panic is recovered and logged): either is a
// bug, whatever the test checked.
func (a *Agent) checkVMMPanics() {
	if a.scanned {
		return
	}
	a.scanned = true
	logs, _ := filepath.Glob(filepath.Join(a.Dir, "state", "domains", "*", "vmm.log"))
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
				a.t.Errorf("a VMM panicked, %s: %s", p, line)
				break
			}
		}
	}
}

// logVMMs logs the end of every domain's vmm.log and its exit record
// under the agent's state directory (why a VMM ended is there, not in the
// agent's log).
func (a *Agent) logVMMs() {
	logs, _ := filepath.Glob(filepath.Join(a.Dir, "state", "domains", "*", "vmm.log"))
	exits, _ := filepath.Glob(filepath.Join(a.Dir, "state", "domains", "*", "exit.json"))
	for _, p := range append(logs, exits...) {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		const tail = 8 << 10
		if st, err := f.Stat(); err == nil && st.Size() > tail {
			f.Seek(st.Size()-tail, io.SeekStart)
		}
		b, _ := io.ReadAll(io.LimitReader(f, tail))
		f.Close()
		a.t.Logf("%s (its last %d bytes at most):\n%s", p, tail, b)
	}
}

// waitReady polls agent.ping on the unix socket for up to 20 seconds.
func (a *Agent) waitReady() {
	a.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-a.done:
			a.t.Fatalf("agent exited early: %v\n%s\n%s", a.waitErr, a.out.String(), a.Log())
		default:
		}
		var ok bool
		if err := a.Unix().Call(context.Background(), "agent.ping", &ok); err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.t.Fatalf("agent not answering after 20s:\n%s\n%s", a.out.String(), a.Log())
}

// Unix is a client on the local socket (root, no password).
func (a *Agent) Unix() *client.Client {
	c, err := client.New(client.Options{URL: "unix://" + a.Socket, Timeout: 10 * time.Second})
	if err != nil {
		a.t.Fatal(err)
	}
	return c
}

// URL is the TCP API's URL, without credentials.
func (a *Agent) URL() string {
	scheme := "http"
	if a.SSL {
		scheme = "https"
	}
	return scheme + "://" + a.Addr + "/RPC2"
}

// TCP is a client on the TCP API with the test password.
func (a *Agent) TCP() *client.Client {
	c, err := client.New(client.Options{URL: a.URL(), User: "admin", Password: testPassword, Insecure: true, Timeout: 10 * time.Second})
	if err != nil {
		a.t.Fatal(err)
	}
	return c
}

// Log is the agent's log file.
func (a *Agent) Log() string {
	b, _ := os.ReadFile(filepath.Join(a.Dir, "agent.log"))
	return string(b)
}

// WaitLog waits up to 10s for the log to contain s.
func (a *Agent) WaitLog(s string) {
	a.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(a.Log(), s) {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	a.t.Fatalf("log never said %q:\n%s", s, a.Log())
}

// Signal sends sig to the agent.
func (a *Agent) Signal(sig syscall.Signal) {
	if err := a.cmd.Process.Signal(sig); err != nil {
		a.t.Fatal(err)
	}
}

// Stop sends SIGTERM and waits (up to 30s, then SIGKILL).
func (a *Agent) Stop() error {
	select {
	case <-a.done:
		return a.waitErr
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
		a.t.Errorf("agent did not stop within 30s of SIGTERM")
	}
	return a.waitErr
}

// Exited reports whether the process has ended.
func (a *Agent) Exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// logLines returns the log's JSON lines containing s.
func logLines(log, s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// runCmd runs a binary and returns its combined output and exit code.
func runCmd(t testing.TB, stdin string, env []string, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// backingLine is memory_backing = 4k unless the test sets memory_backing
// itself: other test binaries run beside this one reserve huge pages for
// their own guests, which auto would take.
func backingLine(c agentConf) []string {
	for _, l := range c.Extra["agent"] {
		if strings.HasPrefix(strings.TrimSpace(l), "memory_backing") {
			return nil
		}
	}
	return []string{"memory_backing = 4k"}
}
