package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// TestOvmHostInfoUnits: ovm host-info prints memory in the unit it names
// (it printed the byte count labelled MiB).
func TestOvmHostInfoUnits(t *testing.T) {
	a := startAgent(t, agentConf{})
	var hi struct {
		Total int64 `xmlrpc:"memory_total"`
	}
	a.call(t, "host.info", &hi)
	out, code := runCmd(t, "", nil, bin("ovm"), "--url", "unix://"+a.Socket, "host-info")
	if code != 0 {
		t.Fatalf("ovm host-info: exit %d\n%s", code, out)
	}
	m := regexp.MustCompile(`(?m)^memory:\s+([0-9.]+) ([KMGT]iB) total`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no memory line with a unit:\n%s", out)
	}
	scale := map[string]float64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[m[2]]
	var v float64
	if _, err := fmt.Sscan(m[1], &v); err != nil {
		t.Fatal(err)
	}
	if got := v * scale; got < float64(hi.Total)*0.95 || got > float64(hi.Total)*1.05 {
		t.Fatalf("ovm says %s %s total, host.info says %d bytes:\n%s", m[1], m[2], hi.Total, out)
	}
}

// TestOvmNoPasswordIsNotAFailedLogin: ovm over TCP without a password file
// sends no credentials, so the agent does not count (and delay) a failed
// login for the address; ovm says what to give.
func TestOvmNoPasswordIsNotAFailedLogin(t *testing.T) {
	a := startAgent(t, agentConf{})
	out, code := runCmd(t, "", []string{"OVM_PASSWORD_FILE=", "OVM_PASSWORD="}, bin("ovm"), "--url", a.URL(), "host-info")
	if code != 4 || !strings.Contains(out, "password") {
		t.Fatalf("ovm without a password: exit %d (want 4)\n%s", code, out)
	}
	if lines := logLines(a.Log(), "login failed"); len(lines) != 0 {
		t.Fatalf("the agent counted a failed login:\n%s", strings.Join(lines, "\n"))
	}
}
