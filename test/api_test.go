package test

import (
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kolo/xmlrpc"

	"github.com/ovs-agent/ovs-agent/agent/client"
)

// pythonClient drives the agent with Python's standard xmlrpc.client, as
// manager software written in Python does.
const pythonClient = `
import sys, datetime, xmlrpc.client as x
url = sys.argv[1]
s = x.ServerProxy(url, allow_none=True, use_builtin_types=True)

v = s.agent.version()
assert isinstance(v["version"], str) and v["protocol"] >= 1, v
assert s.agent.ping() is True

info = s.host.info()
assert info["memory_total"] > 2**31, "memory_total should travel as i8: %r" % info["memory_total"]
assert isinstance(info["boot_time"], datetime.datetime), info["boot_time"]
assert info["cpu_count"] >= 1 and isinstance(info["cpu_flags"], list)

# Every XML-RPC type, sent and returned unchanged.
when = datetime.datetime(2026, 11, 21, 13, 14, 15)
blob = bytes(range(256))
# (Python refuses to send ints beyond 32 bits; it reads i8, as host.info showed.)
echo = s.agent.echo(None, 2**31-1, -7, True, 1.5, "héllo <&>", when, blob, [1, "a", None], {"k": [{"n": None}]})
assert echo == [None, 2**31-1, -7, True, 1.5, "héllo <&>", when, blob, [1, "a", None], {"k": [{"n": None}]}], echo

methods = s.system.listMethods()
for m in ("agent.version", "agent.ping", "host.info", "host.stats", "system.multicall"):
    assert m in methods, (m, methods)
assert "host name" in s.system.methodHelp("host.info")
assert s.system.methodSignature("agent.ping") == [["boolean"]]

# A fault keeps its code and sentence.
try:
    s.no.such.method()
    raise SystemExit("no fault for an unknown method")
except x.Fault as f:
    assert f.faultCode == -32601, f
    assert "no.such.method" in f.faultString, f

# multicall: results in order, a failing call does not spoil the others.
mc = x.MultiCall(s)
mc.agent.ping()
mc.no.such()
mc.agent.echo(-2**31)
r = mc()
assert r[0] is True
try:
    r[1]
    raise SystemExit("multicall fault not raised")
except x.Fault as f:
    assert f.faultCode == -32601
assert r[2] == [-2**31]
print("python ok")
`

func python(t *testing.T) string {
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is needed for the interoperability test (.ci/run installs it)")
	}
	return p
}

func TestPythonXMLRPCClient(t *testing.T) {
	a := startAgent(t, agentConf{})
	url := "http://admin:" + testPassword + "@" + a.Addr + "/RPC2"
	out, code := runCmd(t, "", nil, python(t), "-c", pythonClient, url)
	if code != 0 || !strings.Contains(out, "python ok") {
		t.Fatalf("python client failed (exit %d):\n%s", code, out)
	}
	// One audit line per call, with the caller and no password.
	log := a.Log()
	if n := len(logLines(log, `"method":"host.info"`)); n != 1 {
		t.Errorf("host.info audit lines = %d, want 1", n)
	}
	if strings.Contains(log, testPassword) {
		t.Error("the password appears in the log")
	}
	line := logLines(log, `"method":"agent.version"`)
	if len(line) != 1 || !strings.Contains(line[0], `"user":"admin"`) || !strings.Contains(line[0], `"peer":"127.0.0.1"`) || !strings.Contains(line[0], `"result":"ok"`) || !strings.Contains(line[0], `"duration"`) {
		t.Errorf("audit line for agent.version: %v", line)
	}
	if f := logLines(log, `"method":"no.such.method"`); len(f) != 1 || !strings.Contains(f[0], `"fault_code":-32601`) {
		t.Errorf("audit line for a fault: %v", f)
	}
}

func TestPythonOverTLSWithGeneratedCert(t *testing.T) {
	a := startAgent(t, agentConf{SSL: true})
	cert := a.Dir + "/state/tls/agent.crt"
	if _, err := os.Stat(cert); err != nil {
		t.Fatalf("no self-signed certificate generated: %v", err)
	}
	script := `
import sys, ssl, xmlrpc.client as x
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = x.ServerProxy(sys.argv[1], context=ctx)
assert s.agent.ping() is True
print("tls ok")
`
	url := "https://admin:" + testPassword + "@localhost:" + strings.Split(a.Addr, ":")[1] + "/RPC2"
	out, code := runCmd(t, "", nil, python(t), "-c", script, url, cert)
	if code != 0 || !strings.Contains(out, "tls ok") {
		t.Fatalf("python over TLS, verifying the generated certificate (exit %d):\n%s", code, out)
	}
	// A plain-HTTP request to the TLS port gets no API.
	resp, err := http.Post("http://"+a.Addr+"/RPC2", "text/xml", strings.NewReader("<methodCall><methodName>agent.ping</methodName></methodCall>"))
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered on the TLS port")
		}
	}
	// The same pair is used after a restart (not regenerated).
	before, _ := os.ReadFile(cert)
	a.Stop()
	a.start()
	a.waitReady()
	after, _ := os.ReadFile(cert)
	if string(before) != string(after) {
		t.Fatal("the self-signed certificate was regenerated on restart")
	}
}

func TestKoloClient(t *testing.T) {
	a := startAgent(t, agentConf{})
	c, err := xmlrpc.NewClient("http://admin:"+testPassword+"@"+a.Addr+"/RPC2", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var info struct {
		Hostname    string    `xmlrpc:"hostname"`
		CPUCount    int       `xmlrpc:"cpu_count"`
		MemoryTotal int64     `xmlrpc:"memory_total"`
		KVM         bool      `xmlrpc:"kvm_usable"`
		BootTime    time.Time `xmlrpc:"boot_time"`
	}
	if err := c.Call("host.info", nil, &info); err != nil {
		t.Fatal(err)
	}
	if info.Hostname == "" || info.CPUCount < 1 || info.MemoryTotal < 1<<30 || info.BootTime.IsZero() {
		t.Fatalf("host.info through kolo/xmlrpc: %+v", info)
	}
	if _, err := os.Stat("/dev/kvm"); err == nil && !info.KVM {
		t.Error("host.info says KVM is not usable on a host with /dev/kvm")
	}
	var echoed []any
	// kolo sends base64 as xmlrpc.Base64 text and hands it back undecoded.
	blob := base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 255})
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := c.Call("agent.echo", []any{int64(1) << 40, "x", xmlrpc.Base64(blob), when, true}, &echoed); err != nil {
		t.Fatal(err)
	}
	if len(echoed) != 5 || echoed[0] != int64(1)<<40 || echoed[1] != "x" || echoed[2] != blob || !echoed[3].(time.Time).Equal(when) || echoed[4] != true {
		t.Fatalf("echo through kolo/xmlrpc: %#v", echoed)
	}
	var stats map[string]any
	if err := c.Call("host.stats", nil, &stats); err != nil {
		t.Fatal(err)
	}
	if _, ok := stats["load1"]; !ok {
		t.Fatalf("host.stats: %v", stats)
	}
	// Faults keep their codes through our client wrapper.
	err = a.TCP().Call(context.Background(), "host.info", nil, "unexpected")
	var f *client.Fault
	if !asFault(err, &f) || f.Code != -32602 {
		t.Fatalf("host.info with a parameter: %v, want a bad-params fault", err)
	}
}

func asFault(err error, f **client.Fault) bool {
	ff, ok := err.(*client.Fault)
	if ok {
		*f = ff
	}
	return ok
}

func TestAuth(t *testing.T) {
	a := startAgent(t, agentConf{Extra: map[string][]string{"auth": {"failed_login_delay = 200ms"}}})
	for _, tc := range []struct {
		name, user, pass string
	}{
		{"wrong password", "admin", "nope"},
		{"wrong user", "root", testPassword},
		{"no credentials", "", ""},
	} {
		c, _ := client.New(client.Options{URL: a.URL(), User: tc.user, Password: tc.pass})
		err := c.Call(context.Background(), "agent.ping", nil)
		if !client.IsAuth(err) || !strings.Contains(err.Error(), "401") {
			t.Errorf("%s: %v, want HTTP 401", tc.name, err)
		}
	}
	a.WaitLog(`"login failed"`)
	if strings.Contains(a.Log(), "nope") {
		t.Error("a tried password appears in the log")
	}
	// Failed logins are slowed down, more with each consecutive failure
	// (200ms, 400ms, then 800ms for this third one).
	c, _ := client.New(client.Options{URL: a.URL(), User: "admin", Password: "bad"})
	start := time.Now()
	_ = c.Call(context.Background(), "agent.ping", nil)
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Errorf("a repeated failed login was answered after %v, want it slowed down", d)
	}
	// The right password works; local root needs none on the unix socket.
	if err := a.TCP().Call(context.Background(), "agent.ping", nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Unix().Call(context.Background(), "agent.ping", nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(a.Socket)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("unix socket mode %v, %v; want 0600", fi.Mode(), err)
	}
}

func TestNoPasswordSet(t *testing.T) {
	a := startAgent(t, agentConf{NoPass: true})
	err := a.TCP().Call(context.Background(), "agent.ping", nil)
	if !client.IsAuth(err) || !strings.Contains(err.Error(), "ovs-agent configure") {
		t.Fatalf("TCP call with no password configured: %v", err)
	}
	if err := a.Unix().Call(context.Background(), "agent.ping", nil); err != nil {
		t.Fatalf("unix socket as root: %v", err)
	}
}

// TestDenyBySourceAddress binds the agent on 127.0.0.1 and refuses
// 127.0.0.2: a client connecting from 127.0.0.2 has its connection closed
// before any request is read, while 127.0.0.1 is served.
func TestDenyBySourceAddress(t *testing.T) {
	a := startAgent(t, agentConf{Allow: "127.0.0.0/8", Deny: "127.0.0.2"})
	from := func(src string) error {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
		req, _ := http.NewRequest("POST", a.URL(), strings.NewReader(`<?xml version="1.0"?><methodCall><methodName>agent.ping</methodName></methodCall>`))
		req.SetBasicAuth("admin", testPassword)
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return &client.HTTPError{Status: resp.StatusCode}
		}
		return nil
	}
	err := from("127.0.0.2")
	if err == nil {
		t.Fatal("127.0.0.2 was served despite deny = 127.0.0.2")
	}
	if _, ok := err.(*client.HTTPError); ok {
		t.Fatalf("127.0.0.2 got an HTTP answer (%v); its connection should be closed before any request", err)
	}
	a.WaitLog(`"connection refused by access rules"`)
	l := logLines(a.Log(), "connection refused by access rules")
	if !strings.Contains(l[0], `"peer":"127.0.0.2"`) || !strings.Contains(l[0], "127.0.0.2") {
		t.Fatalf("refusal log line: %s", l[0])
	}
	if len(logLines(a.Log(), `"peer":"127.0.0.2","user"`)) != 0 {
		t.Fatal("a request from the denied peer reached the API")
	}
	if err := from("127.0.0.1"); err != nil {
		t.Fatalf("127.0.0.1: %v", err)
	}
	if err := from("127.0.0.3"); err != nil {
		t.Fatalf("127.0.0.3 (allowed, not denied): %v", err)
	}
}

func TestLimits(t *testing.T) {
	a := startAgent(t, agentConf{Extra: map[string][]string{"server": {"max_request_bytes = 65536"}}})
	post := func(body string) (*http.Response, error) {
		req, _ := http.NewRequest("POST", a.URL(), strings.NewReader(body))
		req.SetBasicAuth("admin", testPassword)
		return http.DefaultClient.Do(req)
	}
	big := "<?xml version=\"1.0\"?><methodCall><methodName>agent.echo</methodName><params><param><value><string>" + strings.Repeat("x", 70000) + "</string></value></param></params></methodCall>"
	resp, err := post(big)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized request: HTTP %d, want 413", resp.StatusCode)
	}
	deep := "<?xml version=\"1.0\"?><methodCall><methodName>agent.echo</methodName><params><param>" + strings.Repeat("<value><array><data>", 500) + strings.Repeat("</data></array></value>", 500) + "</param></params></methodCall>"
	resp, err = post(deep)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 4096)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body[:n]), "<fault>") {
		t.Fatalf("deeply nested request: HTTP %d %s, want a fault", resp.StatusCode, body[:n])
	}
	resp, err = post("<methodCall><methodName>agent.ping</methodName><params><param><value><int>1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Still alive.
	if err := a.Unix().Call(context.Background(), "agent.ping", nil); err != nil {
		t.Fatal(err)
	}
	if a.Exited() {
		t.Fatal("agent died on bad input")
	}
}

// TestAuditFile: with [log] audit_file the audit lines (one per API call)
// go to that file and not to the agent's log, whose other lines stay; a
// reload (SIGHUP) reopens both, so that logrotate may move them away.
func TestAuditFile(t *testing.T) {
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.log")
	a := startAgent(t, agentConf{Extra: map[string][]string{"log": {"audit_file = " + auditPath}}})
	var v, h map[string]any
	a.call(t, "agent.version", &v)
	a.call(t, "host.info", &h)
	audit, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(logLines(string(audit), `"method":"host.info"`)); n != 1 {
		t.Errorf("host.info lines in the audit file: %d, want 1\n%s", n, audit)
	}
	if n := len(logLines(a.Log(), `"logger":"audit"`)); n != 0 {
		t.Errorf("%d audit lines in the agent's log, want them in %s only", n, auditPath)
	}
	if !strings.Contains(a.Log(), "listening") {
		t.Errorf("the agent's own lines are missing from its log:\n%s", a.Log())
	}
	// logrotate's move, then a reload: the next line lands in a new file.
	if err := os.Rename(auditPath, auditPath+".1"); err != nil {
		t.Fatal(err)
	}
	a.Signal(syscall.SIGHUP)
	a.WaitLog("configuration reloaded")
	a.call(t, "agent.version", &v)
	fresh, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatalf("no new audit file after the reload: %v", err)
	}
	if n := len(logLines(string(fresh), `"method":"agent.version"`)); n != 1 {
		t.Errorf("the new audit file has %d agent.version lines, want 1\n%s", n, fresh)
	}
}
