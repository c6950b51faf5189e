package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOvmCLI(t *testing.T) {
	a := startAgent(t, agentConf{})
	unixURL := "--url=unix://" + a.Socket

	out, code := runCmd(t, "", nil, bin("ovm"), unixURL, "host-info")
	if code != 0 || !strings.Contains(out, "memory:") || !strings.Contains(out, "kvm:") {
		t.Fatalf("ovm host-info (exit %d):\n%s", code, out)
	}
	out, code = runCmd(t, "", nil, bin("ovm"), unixURL, "version")
	if code != 0 || !strings.Contains(out, "agent:") {
		t.Fatalf("ovm version (exit %d):\n%s", code, out)
	}

	out, code = runCmd(t, "", nil, bin("ovm"), unixURL, "-o", "json", "host-info")
	var info map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil || info["cpu_count"] == nil {
		t.Fatalf("ovm -o json host-info (exit %d):\n%s", code, out)
	}

	// Over TCP with a password file, and through the environment.
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte(testPassword+"\n"), 0o600)
	out, code = runCmd(t, "", nil, bin("ovm"), "--url", a.URL(), "--password-file", pw, "status")
	if code != 0 || !strings.Contains(out, "admin@tcp:127.0.0.1") {
		t.Fatalf("ovm status over TCP (exit %d):\n%s", code, out)
	}
	out, code = runCmd(t, "", []string{"OVM_URL=" + a.URL(), "OVM_PASSWORD_FILE=" + pw}, bin("ovm"), "host-stats")
	if code != 0 || !strings.Contains(out, "load1:") {
		t.Fatalf("ovm host-stats with OVM_URL (exit %d):\n%s", code, out)
	}

	// Exit codes and messages a person can act on.
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("wrong\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"fault", []string{unixURL, "call", "no.such.method"}, 1, "fault -32601"},
		{"bad params", []string{unixURL, "call", "host.info", "1"}, 1, "fault -32602"},
		{"wrong password", []string{"--url", a.URL(), "--password-file", bad, "version"}, 4, "--password-file"},
		{"unreachable", []string{"--url", "unix:///nonexistent/agent.sock", "version"}, 3, "is the agent running"},
		{"usage", []string{"no-such-command"}, 2, "unknown command"},
		{"bad output", []string{unixURL, "-o", "yaml", "version"}, 2, "want text or json"},
	} {
		out, code := runCmd(t, "", nil, bin("ovm"), tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%s: ovm %v: exit %d, output %q; want exit %d and %q", tc.name, tc.args, code, out, tc.code, tc.want)
		}
	}
	out, code = runCmd(t, "", nil, bin("ovm"), unixURL, "-o", "json", "call", "agent.echo", "42", "true", `{"a":[1,"x"]}`, "plain")
	if code != 0 || strings.Join(strings.Fields(out), "") != `[42,true,{"a":[1,"x"]},"plain"]` {
		t.Fatalf("ovm call agent.echo (exit %d): %s", code, out)
	}
}

func TestOvsAgentStatus(t *testing.T) {
	a := startAgent(t, agentConf{})
	out, code := runCmd(t, "", nil, bin("ovs-agent"), "status", "--config", a.Config)
	if code != 0 || !strings.Contains(out, "running") || !strings.Contains(out, a.Addr) || !strings.Contains(out, a.Socket) {
		t.Fatalf("ovs-agent status while running (exit %d):\n%s", code, out)
	}
	a.Stop()
	out, code = runCmd(t, "", nil, bin("ovs-agent"), "status", "--config", a.Config)
	if code != 3 || !strings.Contains(out, "not running") {
		t.Fatalf("ovs-agent status when stopped (exit %d, want 3):\n%s", code, out)
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.ini")
	os.WriteFile(cfg, []byte("[server]\nport = 88x\n\n[access]\nallow = 10.1.1.*, 10.1.1.300\n"), 0o600)
	out, code := runCmd(t, "", nil, bin("ovs-agent"), "check-config", "--config", cfg)
	if code == 0 || !strings.Contains(out, cfg+":2") || !strings.Contains(out, "port") || !strings.Contains(out, cfg+":5") || !strings.Contains(out, "10.1.1.300") {
		t.Fatalf("check-config on a bad file (exit %d):\n%s", code, out)
	}
	// The serve command refuses it too, with the same errors.
	out, code = runCmd(t, "", nil, bin("ovs-agent"), "serve", "--config", cfg)
	if code == 0 || !strings.Contains(out, cfg+":2") {
		t.Fatalf("serve on a bad file (exit %d):\n%s", code, out)
	}
}

// TestConfigure runs `ovs-agent configure` the way the Oracle VM guide
// shows: allowed IPs, denied IPs, change password y/N; then checks the file
// kept its comments and the new values work after a reload.
func TestConfigure(t *testing.T) {
	a := startAgent(t, agentConf{})
	// A comment the operator wrote must survive.
	orig, _ := os.ReadFile(a.Config)
	withComment := strings.Replace(string(orig), "[access]", "; our management network only\n[access]", 1)
	os.WriteFile(a.Config, []byte(withComment), 0o600)

	answers := "127.0.0.1, 10.1.1.*\n127.0.0.9\ny\nnew-Secret-1\nnew-Secret-1\n"
	out, code := runCmd(t, answers, nil, bin("ovs-agent"), "configure", "--config", a.Config)
	if code != 0 {
		t.Fatalf("configure (exit %d):\n%s", code, out)
	}
	for _, want := range []string{";rules := if addr.match(allow) and not addr.match(deny): return True", "allow=*", "now allow=127.0.0.1,10.1.1.*", "deny=", "now deny=127.0.0.9", "would you like to modify password to communicate with agent?[y/N]"} {
		if !strings.Contains(out, want) {
			t.Errorf("configure dialog lacks %q:\n%s", want, out)
		}
	}
	data, _ := os.ReadFile(a.Config)
	text := string(data)
	if !strings.Contains(text, "; our management network only") || !strings.Contains(text, "; written by the end-to-end tests") {
		t.Errorf("configure lost comments:\n%s", text)
	}
	if strings.Contains(text, "new-Secret-1") || strings.Contains(out, "new-Secret-1") {
		t.Fatal("the new password was written in clear")
	}
	a.Signal(syscall.SIGHUP)
	a.WaitLog("configuration reloaded")
	time.Sleep(100 * time.Millisecond)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("new-Secret-1\n"), 0o600)
	if out, code := runCmd(t, "", nil, bin("ovm"), "--url", a.URL(), "--password-file", pw, "version"); code != 0 {
		t.Fatalf("new password after configure + reload (exit %d): %s", code, out)
	}

	// Non-interactive form, and a bad item is refused without touching the file.
	before, _ := os.ReadFile(a.Config)
	out, code = runCmd(t, "", nil, bin("ovs-agent"), "configure", "--config", a.Config, "--allow", "10.1.1.300", "--no-password")
	if code == 0 || !strings.Contains(out, "10.1.1.300") {
		t.Fatalf("configure --allow with a bad item (exit %d): %s", code, out)
	}
	after, _ := os.ReadFile(a.Config)
	if string(before) != string(after) {
		t.Fatal("a refused configure changed the file")
	}
	out, code = runCmd(t, "", nil, bin("ovs-agent"), "configure", "--config", a.Config, "--allow", "*", "--deny", "", "--no-password")
	if code != 0 {
		t.Fatalf("configure --allow '*' (exit %d): %s", code, out)
	}
}

func TestSysVInitScript(t *testing.T) {
	dir := t.TempDir()
	text, c := agentConf{}.render(t, dir)
	cfg := filepath.Join(dir, "agent.ini")
	os.WriteFile(cfg, []byte(text), 0o600)
	env := []string{
		"OVS_AGENT_BIN=" + bin("ovs-agent"),
		"OVS_AGENT_CONFIG=" + cfg,
		"OVS_AGENT_PIDFILE=" + filepath.Join(dir, "agent.pid"),
		"OVS_AGENT_CONSOLE=" + filepath.Join(dir, "console.log"),
		"OVS_AGENT_WAIT=20",
	}
	script, _ := filepath.Abs("../scripts/ovs-agent")
	t.Cleanup(func() { runCmd(t, "", env, script, "stop") })

	out, code := runCmd(t, "", env, script, "start")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("init start (exit %d): %s\n%s", code, out, readFile(filepath.Join(dir, "agent.log")))
	}
	out, code = runCmd(t, "", env, script, "status")
	if code != 0 || !strings.Contains(out, "127.0.0.1:") {
		t.Fatalf("init status (exit %d): %s", code, out)
	}
	if out, code = runCmd(t, "", env, script, "reload"); code != 0 {
		t.Fatalf("init reload (exit %d): %s", code, out)
	}
	out, code = runCmd(t, "", env, script, "restart")
	if code != 0 {
		t.Fatalf("init restart (exit %d): %s", code, out)
	}
	out, code = runCmd(t, "", env, script, "stop")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("init stop (exit %d): %s", code, out)
	}
	out, code = runCmd(t, "", env, script, "status")
	if code != 3 {
		t.Fatalf("init status after stop: exit %d (want 3): %s", code, out)
	}
	_ = c
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func TestSystemdUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is needed (.ci/run installs the systemd package)")
	}
	dir := t.TempDir()
	for _, name := range []string{"ovs-agent.service", "ovs-agent-api.socket", "ovs-agent-unix.socket", "ovsrepositories.service"} {
		data, err := os.ReadFile("../scripts/" + name)
		if err != nil {
			t.Fatal(err)
		}
		// Point ExecStart at the binary this test built, which is where the
		// installed unit's /usr/sbin/ovs-agent would be.
		text := strings.ReplaceAll(string(data), "/usr/sbin/ovs-agent", bin("ovs-agent"))
		os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
	}
	out, code := runCmd(t, "", nil, sa, "verify", filepath.Join(dir, "ovs-agent.service"), filepath.Join(dir, "ovs-agent-api.socket"), filepath.Join(dir, "ovs-agent-unix.socket"), filepath.Join(dir, "ovsrepositories.service"))
	if code != 0 || strings.Contains(out, dir) {
		t.Fatalf("systemd-analyze verify (exit %d):\n%s", code, out)
	}
}

// TestMakeRunStyle starts the agent the way `make run` does: an embedded
// default configuration in a local folder, no file under /etc.
func TestMakeRunStyle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(bin("ovs-agent"), "serve", "--run-dir", dir, "--port", strconv.Itoa(freePort(t, "127.0.0.1")))
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "listening on unix://") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	text := out.String()
	if !strings.Contains(text, "listening on http://127.0.0.1:") || !strings.Contains(text, "listening on unix://"+dir) {
		t.Fatalf("make run output does not say where it listens:\n%s", text)
	}
	for _, f := range []string{"agent.ini", "admin-password"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Fatalf("%s: %v %v (want it private to the owner)", f, err, fi)
		}
	}
	if o, code := runCmd(t, "", nil, bin("ovm"), "--url", "unix://"+dir+"/agent.sock", "version"); code != 0 {
		t.Fatalf("ovm against make run's agent: %s", o)
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Ctrl-C: agent exited with %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not stop on Ctrl-C")
	}
}

func TestOvmDomainCommands(t *testing.T) {
	a := domainAgent(t, "kvm")
	u := "--url=unix://" + a.Socket
	cfg := filepath.Join(t.TempDir(), "web.cfg")
	os.WriteFile(cfg, []byte(vmcfgText("web", 128, "dirty=2M/s,hot=8M")+"colour = 'blue'\n"), 0o600)
	ovm := func(want int, args ...string) string {
		t.Helper()
		out, code := runCmd(t, "", nil, bin("ovm"), append([]string{u}, args...)...)
		if code != want {
			t.Fatalf("ovm %v: exit %d (want %d)\n%s", args, code, want, out)
		}
		return out
	}
	out := ovm(0, "create", cfg)
	if !strings.Contains(out, "created web") || !strings.Contains(out, "warning: web.cfg:7: colour") {
		t.Fatalf("ovm create: %s", out)
	}
	ovm(0, "start", "web")
	out = ovm(0, "list")
	if !strings.Contains(out, "NAME") || !regexp.MustCompile(`web\s+running\s+128\s+1\s+kvm`).MatchString(out) {
		t.Fatalf("ovm list:\n%s", out)
	}
	out = ovm(0, "info", "web")
	if !strings.Contains(out, "memory:") || !strings.Contains(out, "128 MiB") || !strings.Contains(out, "engine:") {
		t.Fatalf("ovm info:\n%s", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out, "HB ") && time.Now().Before(deadline) {
		out = ovm(0, "console", "web")
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(out, "WORKLOAD start") || !strings.Contains(out, "HB ") {
		t.Fatalf("ovm console:\n%s", out)
	}
	out = ovm(0, "top", "-n", "1")
	if !strings.Contains(out, "ovm top") || !strings.Contains(out, "committed to domains") || !strings.Contains(out, "web") {
		t.Fatalf("ovm top:\n%s", out)
	}
	out = ovm(1, "start", "web")
	if !strings.Contains(out, "web is running") || !strings.Contains(out, "fault 1003") {
		t.Fatalf("ovm start of a running domain:\n%s", out)
	}
	ovm(0, "pause", "web")
	ovm(0, "unpause", "web")
	out = ovm(0, "shutdown", "web", "-t", "10")
	if !strings.Contains(out, "stopped") {
		t.Fatalf("ovm shutdown: %s", out)
	}
	ovm(0, "delete", "web")
	ovm(1, "info", "web")
}
