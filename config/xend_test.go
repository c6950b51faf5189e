package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/config/sxp"
)

// writeXend writes an xend-config.sxp into a temporary directory and
// returns an agent.ini text that imports it.
func writeXend(t *testing.T, sxpText string) (sxpPath string) {
	t.Helper()
	sxpPath = filepath.Join(t.TempDir(), "xend-config.sxp")
	if err := os.WriteFile(sxpPath, []byte(sxpText), 0o644); err != nil {
		t.Fatal(err)
	}
	return sxpPath
}

func TestXendImportRealistic(t *testing.T) {
	data, err := os.ReadFile("testdata/xend-config.sxp")
	if err != nil {
		t.Fatal(err)
	}
	sxpPath := writeXend(t, string(data))
	in := "[agent]\nxend_config = " + sxpPath + "\n"
	c, err := Parse(testINI, []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Server.TCPServer = true
	want.Server.ListenAddress = "localhost"
	want.Server.Port = 8006
	want.Server.SSLKey = "/etc/xen/xmlrpc.key"
	want.Server.SSLCert = "/etc/xen/xmlrpc.crt"
	want.Server.UnixServer = true
	want.Agent.XendConfig = sxpPath
	want.Relocation.Server = true
	want.Relocation.Port = 8002
	want.Relocation.Address = ""
	want.Relocation.HostsAllow = []string{`^localhost$`, `^localhost\.localdomain$`, `^10\.1\.1\.[0-9]+$`}
	if got := exported(c); !reflect.DeepEqual(got, exported(want)) {
		t.Errorf("got\n%+v\nwant\n%+v", got, exported(want))
	}
	for key, line := range map[string]int{
		"server.tcp_server": 27, "server.unix_server": 28, "relocation.server": 29,
		"server.listen_address": 36, "server.port": 37, "server.ssl_key": 42, "server.ssl_cert": 43,
		"relocation.port": 50, "relocation.address": 56, "relocation.hosts_allow": 69,
	} {
		sec, k, _ := strings.Cut(key, ".")
		if got, want := c.Where(sec, k), sxpPath+":"+strconv.Itoa(line); got != want {
			t.Errorf("Where(%s) = %q, want %q", key, got, want)
		}
	}
	for _, key := range []string{"relocation.ssl_server", "relocation.ssl_port", "relocation.ssl", "server.ssl", "log.level"} {
		sec, k, _ := strings.Cut(key, ".")
		if got := c.Where(sec, k); got != "default" {
			t.Errorf("Where(%s) = %q, want default", key, got)
		}
	}
	if got := c.Where("agent", "xend_config"); got != testINI+":2" {
		t.Errorf("Where(xend_config) = %q", got)
	}
	if c.XendSource() != sxpPath {
		t.Errorf("XendSource() = %q", c.XendSource())
	}
	// A later check of an imported value points at the sxp file and names
	// the xend option.
	err = OptionError(c, "server", "ssl_key", errors.New("open /etc/xen/xmlrpc.key: no such file or directory"))
	if got, want := err.Error(), sxpPath+":42: xend-tcp-xmlrpc-server-ssl-key-file (imported as [server] ssl_key): open /etc/xen/xmlrpc.key: no such file or directory"; got != want {
		t.Errorf("OptionError = %q\nwant %q", got, want)
	}
}

func TestXendImportEveryOption(t *testing.T) {
	sxpText := `(xend-relocation-server no)
(xend-relocation-port 18002)
(xend-relocation-address 10.0.0.9)
(xend-relocation-hosts-allow '')
(xend-relocation-ssl-server y)
(xend-relocation-ssl-port " 18003 ")
(xend-relocation-ssl T)
(xend-relocation-server-ssl-key-file /etc/xen/reloc.key)
(xend-relocation-server-ssl-cert-file /etc/xen/reloc.crt)
(xend-tcp-xmlrpc-server off)
(xend-tcp-xmlrpc-server-address '')
(xend-tcp-xmlrpc-server-port +9000)
(xend-tcp-xmlrpc-server-ssl-key-file /etc/xen/x.key)
(xend-tcp-xmlrpc-server-ssl-cert-file /etc/xen/x.crt)
(xend-unix-xmlrpc-server Yes)
(xend-unix-path /tmp/not-imported)
(xend-http-server yes)
(some-future-option (nested (list)) 'and a string')
`
	sxpPath := writeXend(t, sxpText)
	c, err := Parse(testINI, []byte("[agent]\nxend_config = "+sxpPath+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := exported(c)
	want := exported(Default())
	want.Agent.XendConfig = sxpPath
	want.Relocation = RelocationConfig{
		Server: false, Port: 18002, Address: "10.0.0.9", SSLServer: true, SSLPort: 18003, SSL: true,
		SSLKey: "/etc/xen/reloc.key", SSLCert: "/etc/xen/reloc.crt", PeerUser: "admin",
		HandshakeTimeout: want.Relocation.HandshakeTimeout, MaxPending: want.Relocation.MaxPending,
		MaxPendingPerAddress: want.Relocation.MaxPendingPerAddress, ProgressTimeout: want.Relocation.ProgressTimeout,
	}
	want.Server.TCPServer = false
	want.Server.ListenAddress = ""
	want.Server.Port = 9000
	want.Server.SSLKey, want.Server.SSLCert = "/etc/xen/x.key", "/etc/xen/x.crt"
	want.Server.UnixServer = true
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	if len(XendOptions) != 15 {
		t.Errorf("%d xend options mapped", len(XendOptions))
	}
	for i, m := range XendOptions {
		if c.Where(m.Section, m.Key) != sxpPath+":"+strconv.Itoa(i+1) {
			t.Errorf("%s -> [%s] %s came from %s", m.Xend, m.Section, m.Key, c.Where(m.Section, m.Key))
		}
		if Default().option(m.Section, m.Key) == nil {
			t.Errorf("%s maps to unknown option [%s] %s", m.Xend, m.Section, m.Key)
		}
	}
}

func TestXendImportIniWins(t *testing.T) {
	sxpPath := writeXend(t, "(xend-relocation-port 7777)\n(xend-relocation-hosts-allow '^a$')\n(xend-relocation-server 'bogus')\n")
	in := "[agent]\nxend_config = " + sxpPath + "\n[relocation]\nport = 8002\nserver = yes\n"
	c, err := Parse(testINI, []byte(in))
	if err != nil {
		t.Fatalf("a bad xend value that agent.ini overrides is still checked: %v", err)
	}
	if c.Relocation.Port != 8002 || c.Where("relocation", "port") != testINI+":4" {
		t.Errorf("port %d from %s; agent.ini should win", c.Relocation.Port, c.Where("relocation", "port"))
	}
	if !reflect.DeepEqual(c.Relocation.HostsAllow, []string{"^a$"}) || c.Where("relocation", "hosts_allow") != sxpPath+":2" {
		t.Errorf("hosts_allow %q from %s", c.Relocation.HostsAllow, c.Where("relocation", "hosts_allow"))
	}
}

func TestXendImportErrors(t *testing.T) {
	tests := []struct {
		name, sxp string
		want      []string // with SXP standing for the sxp path
	}{
		{"bad port", "\n(xend-relocation-port 80x)\n", []string{
			`SXP:2: xend-relocation-port (imported as [relocation] port): "80x" is not a port number (1-65535)`}},
		{"bad bool", "(xend-relocation-server maybe)", []string{
			`SXP:1: xend-relocation-server (imported as [relocation] server): "maybe" is not a boolean (yes/y/1/on/true/t or no/n/0/off/false/f)`}},
		{"unquoted list of regexps", "(xend-relocation-hosts-allow ^localhost$ ^.*$)", []string{
			`SXP:1: xend-relocation-hosts-allow (imported as [relocation] hosts_allow): takes exactly one value, found 2`}},
		{"no value", "(xend-relocation-port)", []string{
			`SXP:1: xend-relocation-port (imported as [relocation] port): takes exactly one value, found 0`}},
		{"list value", "(xend-relocation-address\n  (a b))", []string{
			`SXP:2: xend-relocation-address (imported as [relocation] address): takes a single value, found the list (a b)`}},
		{"bad regexp", `(xend-relocation-hosts-allow '^ok$ ^(?=x)')`, []string{
			"SXP:1: xend-relocation-hosts-allow (imported as [relocation] hosts_allow): pattern \"^(?=x)\": error parsing regexp: invalid or unsupported Perl syntax: `(?=` (Go's regular expressions have no look-ahead, look-behind or (?P=name) back-references)"}},
		{"relative key file", "(xend-relocation-server-ssl-key-file reloc.key)\n(xend-relocation-server-ssl-cert-file /c)", []string{
			`SXP:1: xend-relocation-server-ssl-key-file (imported as [relocation] ssl_key): "reloc.key" is not an absolute path`}},
		{"duplicate", "(xend-relocation-port 8002)\n# later\n(xend-relocation-port 8003)\n", []string{
			`SXP:3: xend-relocation-port (imported as [relocation] port): set again (first at line 1, which xend used); remove one`}},
		{"syntax error", "(xend-relocation-port 8002}\n(xend-relocation-address '')\n", []string{
			`SXP:3: unexpected end of file: '(' opened at line 1 is not closed`}},
		{"several", "(xend-relocation-port x)\n(xend-tcp-xmlrpc-server-port y)\n", []string{
			`SXP:1: xend-relocation-port (imported as [relocation] port): "x" is not a port number (1-65535)`,
			`SXP:2: xend-tcp-xmlrpc-server-port (imported as [server] port): "y" is not a port number (1-65535)`}},
		{"cross check on imported values", "(xend-relocation-port 8899)", []string{
			`SXP:1: xend-relocation-port (imported as [relocation] port): port 8899 is also [server] port (default)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sxpPath := writeXend(t, tt.sxp)
			_, err := Parse(testINI, []byte("[agent]\nxend_config = "+sxpPath+"\n"))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, strings.ReplaceAll(w, "SXP", sxpPath))
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestXendImportMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.sxp")
	_, err := Parse(testINI, []byte("; x\n[agent]\nxend_config = "+missing+"\n"))
	want := testINI + ":3: [agent] xend_config: open " + missing + ": no such file or directory"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	_, err = Parse(testINI, []byte("[agent]\nxend_config = etc/xen/xend-config.sxp\n"))
	if err == nil || !strings.Contains(err.Error(), "is not an absolute path") {
		t.Errorf("relative xend_config: %v", err)
	}
}

func TestXendSyntaxErrorType(t *testing.T) {
	sxpPath := writeXend(t, "(a")
	_, err := Parse(testINI, []byte("[agent]\nxend_config = "+sxpPath+"\n"))
	var se *sxp.Error
	if !errors.As(err, &se) || se.File != sxpPath || se.Line != 1 {
		t.Errorf("not an *sxp.Error for the file: %#v", err)
	}
}
