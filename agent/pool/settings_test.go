package pool

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/config"
	"github.com/ovs-agent/ovs-agent/internal/etcdtest"
)

func parse(t *testing.T, text string) *config.Config {
	t.Helper()
	c, err := config.Parse("/etc/ovs-agent/agent.ini", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// [pool] with https endpoints, a CA, a client pair, a user and a password
// file joins a cluster that requires all of them; a wrong password does
// not.
func TestSettingsFromTLSAndAuth(t *testing.T) {
	c := etcdtest.StartWith(t, 3, etcdtest.Options{TLS: true})
	c.EnableAuth("s3cret")
	ini := func(pw string) string {
		return fmt.Sprintf("[pool]\nname = tls\nendpoints = %s\nlease_ttl = 4s\nfencing_margin = 1s\ndial_timeout = 2s\nca_file = %s\ncert_file = %s\nkey_file = %s\nuser = root\npassword_file = %s\n",
			strings.Join(c.Endpoints(), ", "), c.TLS.CA, c.TLS.ClientCert, c.TLS.ClientKey, writeFile(t, "pw", pw+"\n"))
	}
	s, err := SettingsFrom(parse(t, ini("s3cret")))
	if err != nil {
		t.Fatal(err)
	}
	if s.Pool != "tls" || s.LeaseTTL != 4*time.Second || s.FencingMargin != time.Second || s.Client.DialTimeout != 2*time.Second ||
		s.Client.Username != "root" || s.Client.Password != "s3cret" || s.Client.TLS == nil || len(s.Client.TLS.Certificates) != 1 {
		t.Fatalf("SettingsFrom = %+v", s)
	}
	m := joinT(t, s, "host-a")
	ctx := ctxFor(t, 30*time.Second)
	if ms, err := m.Members(ctx); err != nil || len(ms) != 1 {
		t.Fatalf("Members over TLS with authentication: %v, %v", ms, err)
	}

	bad, err := SettingsFrom(parse(t, ini("wrong")))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := Join(ctx, bad, Info{Host: "host-b"}, zap.NewNop()); err == nil {
		m.Close(ctx)
		t.Fatal("joined with a wrong password")
	} else if !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("wrong password: %v", err)
	}
}

func TestSettingsFromErrors(t *testing.T) {
	const head = "[pool]\nname = p\nendpoints = https://127.0.0.1:2379\n"
	empty := writeFile(t, "empty", "\n")
	notPEM := writeFile(t, "ca.pem", "not a certificate\n")
	tests := []struct {
		name, in, want string
	}{
		{"no pool", "", "/etc/ovs-agent/agent.ini: [pool] name (default): empty: the agent is in no pool"},
		{"missing ca", head + "ca_file = /nonexistent/ca.pem\n",
			"/etc/ovs-agent/agent.ini:4: [pool] ca_file: open /nonexistent/ca.pem: no such file or directory"},
		{"ca not pem", head + "ca_file = " + notPEM + "\n",
			"/etc/ovs-agent/agent.ini:4: [pool] ca_file: " + notPEM + " holds no PEM certificate"},
		{"missing cert", head + "cert_file = /nonexistent/c.pem\nkey_file = /nonexistent/c.key\n",
			"/etc/ovs-agent/agent.ini:4: [pool] cert_file: open /nonexistent/c.pem: no such file or directory"},
		{"bad pair", head + "cert_file = " + notPEM + "\nkey_file = " + notPEM + "\n",
			"/etc/ovs-agent/agent.ini:4: [pool] cert_file: " + notPEM + " with " + notPEM + ": tls: failed to find any PEM data in certificate input"},
		{"missing password file", head + "user = agent\npassword_file = /nonexistent/pw\n",
			"/etc/ovs-agent/agent.ini:5: [pool] password_file: open /nonexistent/pw: no such file or directory"},
		{"empty password", head + "user = agent\npassword_file = " + empty + "\n",
			"/etc/ovs-agent/agent.ini:5: [pool] password_file: " + empty + ": the first line is empty; etcd users have a password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SettingsFrom(parse(t, tt.in))
			if err == nil || err.Error() != tt.want {
				t.Errorf("SettingsFrom: %v\nwant %s", err, tt.want)
			}
		})
	}
}
