package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/config/ini"
)

const testINI = "/etc/ovs-agent/agent.ini"

func TestParseValues(t *testing.T) {
	in := `; a real-looking agent.ini
[Server]
listen_address = 10.0.0.5
port = 9443
SSL = off
ssl_cert = /etc/ovs-agent/cert.pem
ssl_key = /etc/ovs-agent/key.pem
unix_server = TRUE
unix_socket = /run/ovs-agent.sock
max_request_bytes = 1048576
read_timeout = 2m

[auth]
user = root@ops
password_hash = $2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy
failed_login_delay = 0

[access]
allow = 10.1.1.*, 10.2.0.0/16,192.168.1.7 , *.example.com, ::1, fd00::/8
deny = 10.1.1.13

[log]
file = /var/log/ovs-agent/agent.log
level = DEBUG

[agent]
state_dir = /srv/ovs

[relocation]
server = 0
address = localhost
port = 18002
ssl_server = 1
ssl_port = 18003
ssl = yes
hosts_allow = ^localhost$   ^10\.1\.1\.[0-9]+$ ^.*\.example\.org$
`
	c, err := Parse(testINI, []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Server = ServerConfig{
		TCPServer: true, ListenAddress: "10.0.0.5", Port: 9443, SSL: false,
		SSLCert: "/etc/ovs-agent/cert.pem", SSLKey: "/etc/ovs-agent/key.pem",
		UnixServer: true, UnixSocket: "/run/ovs-agent.sock", MaxRequestBytes: 1 << 20, ReadTimeout: 2 * time.Minute,
		HeaderTimeout: want.Server.HeaderTimeout, MaxPending: want.Server.MaxPending, MaxPendingPerAddress: want.Server.MaxPendingPerAddress,
	}
	want.Auth = AuthConfig{User: "root@ops", PasswordHash: "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", LoginQueue: want.Auth.LoginQueue}
	want.Access = AccessConfig{
		Allow: []string{"10.1.1.*", "10.2.0.0/16", "192.168.1.7", "*.example.com", "::1", "fd00::/8"},
		Deny:  []string{"10.1.1.13"},
	}
	want.Log = LogConfig{File: "/var/log/ovs-agent/agent.log", Level: "debug", MaxFiles: 5}
	want.Agent = AgentConfig{StateDir: "/srv/ovs", Hypervisor: "auto", MemoryReserve: 1024, MemoryBacking: "auto", BlockDevices: DefaultBlockDevices(), SecondaryStorageDir: "/nfsmnt", StorageFence: "domains"}
	want.Relocation = RelocationConfig{
		Server: false, Address: "localhost", Port: 18002, SSLServer: true, SSLPort: 18003, SSL: true,
		HostsAllow:       []string{`^localhost$`, `^10\.1\.1\.[0-9]+$`, `^.*\.example\.org$`},
		PeerUser:         "admin",
		HandshakeTimeout: want.Relocation.HandshakeTimeout, MaxPending: want.Relocation.MaxPending,
		MaxPendingPerAddress: want.Relocation.MaxPendingPerAddress, ProgressTimeout: want.Relocation.ProgressTimeout,
	}
	if got := exported(c); !reflect.DeepEqual(got, exported(want)) {
		t.Errorf("got\n%+v\nwant\n%+v", got, exported(want))
	}
	if got := c.Where("relocation", "hosts_allow"); got != testINI+":36" {
		t.Errorf("Where(hosts_allow) = %q", got)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after Parse: %v", err)
	}
}

func TestParseEmptyIsDefault(t *testing.T) {
	for _, in := range []string{"", "; nothing\n\n", "[server]\n[relocation]\n"} {
		c, err := Parse(testINI, []byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if !reflect.DeepEqual(exported(c), exported(Default())) {
			t.Errorf("%q did not give the defaults", in)
		}
	}
}

func TestParseBooleans(t *testing.T) {
	for in, want := range map[string]bool{
		"yes": true, "YES": true, "true": true, "True": true, "on": true, "1": true,
		"no": false, "No": false, "false": false, "OFF": false, "0": false,
	} {
		c, err := Parse(testINI, []byte("[server]\nssl = "+in+"\n"))
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if c.Server.SSL != want {
			t.Errorf("ssl = %q gave %v", in, c.Server.SSL)
		}
	}
}

// TestParseErrors checks the exact message for each kind of bad input.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"bad port", "[server]\nport = 88x\n", []string{
			`/etc/ovs-agent/agent.ini:2: [server] port: "88x" is not a port number (1-65535)`}},
		{"port zero", "[server]\nport = 0\n", []string{
			`/etc/ovs-agent/agent.ini:2: [server] port: "0" is not a port number (1-65535)`}},
		{"port too big", "[relocation]\nssl_port = 65536\n", []string{
			`/etc/ovs-agent/agent.ini:2: [relocation] ssl_port: "65536" is not a port number (1-65535)`}},
		{"signed port", "[relocation]\nport = +8002\n", []string{
			`/etc/ovs-agent/agent.ini:2: [relocation] port: "+8002" is not a port number (1-65535)`}},
		{"bad bool", "[server]\nssl = maybe\n", []string{
			`/etc/ovs-agent/agent.ini:2: [server] ssl: "maybe" is not a boolean (yes/no, true/false, on/off, 1/0)`}},
		{"xend-only bool word", "[relocation]\nserver = y\n", []string{
			`/etc/ovs-agent/agent.ini:2: [relocation] server: "y" is not a boolean (yes/no, true/false, on/off, 1/0)`}},
		{"bad number", "[server]\nmax_request_bytes = 4M\n", []string{
			`/etc/ovs-agent/agent.ini:2: [server] max_request_bytes: "4M" is not a whole number`}},
		{"number out of range", "[server]\nmax_request_bytes = 100\n", []string{
			`/etc/ovs-agent/agent.ini:2: [server] max_request_bytes: 100 is out of range (4096-1073741824)`}},
		{"bad duration", "[server]\nread_timeout = 30\n", []string{
			`/etc/ovs-agent/agent.ini:2: [server] read_timeout: "30" is not a duration (like 500ms, 1s, 2m)`}},
		{"duration out of range", "[auth]\nfailed_login_delay = 2m\n", []string{
			`/etc/ovs-agent/agent.ini:2: [auth] failed_login_delay: 2m is out of range (0s-1m)`}},
		{"relative path", "[agent]\nstate_dir = var/lib\n", []string{
			`/etc/ovs-agent/agent.ini:2: [agent] state_dir: "var/lib" is not an absolute path`}},
		{"file_dirs root", "[agent]\nfile_dirs = /srv/images /\n", []string{
			`/etc/ovs-agent/agent.ini:2: [agent] file_dirs: "/" would let API callers name any file on the host; list the directories meant for them`}},
		{"file_dirs relative", "[agent]\nfile_dirs = images\n", []string{
			`/etc/ovs-agent/agent.ini:2: [agent] file_dirs: "images" is not an absolute path`}},
		{"block_devices outside /dev", "[agent]\nblock_devices = /dev/mapper/* /srv/*\n", []string{
			`/etc/ovs-agent/agent.ini:2: [agent] block_devices: "/srv/*" is not a block device pattern: write an absolute, clean path under /dev/, such as /dev/mapper/*`}},
		{"block_devices under /dev/shm", "[agent]\nblock_devices = /dev/shm/*\n", []string{
			`/etc/ovs-agent/agent.ini:2: [agent] block_devices: "/dev/shm/*" is under /dev/shm, where anyone may create files (a symlink there would name any device): list the devices' own names`}},
		{"sys_shutdown_command relative", "[agent]\nsys_shutdown_command = systemctl poweroff\n", []string{
			`/etc/ovs-agent/agent.ini:2: [agent] sys_shutdown_command: "systemctl" is not an absolute program path (the command runs without a shell or PATH lookup: write /usr/bin/systemctl poweroff)`}},
		{"secondary_storage_dir", "[agent]\nsecondary_storage_dir = /etc\n", []string{
			`/etc/ovs-agent/agent.ini:2: [agent] secondary_storage_dir: "/etc" is a system directory: name a directory of its own for the mounts, such as /nfsmnt`}},
		{"secondary_storage_dir relative", "[agent]\nsecondary_storage_dir = nfsmnt\n", []string{
			`/etc/ovs-agent/agent.ini:2: [agent] secondary_storage_dir: "nfsmnt" is not an absolute path`}},
		{"secondary_storage_dir unclean", "[agent]\nsecondary_storage_dir = /srv/../nfsmnt/\n", []string{
			`/etc/ovs-agent/agent.ini:2: [agent] secondary_storage_dir: "/srv/../nfsmnt/" is not a clean path: write /nfsmnt`}},
		{"ntp options", "[agent]\nntp_file = timesyncd.conf\nntp_restart_command = systemctl restart systemd-timesyncd\n", []string{
			`/etc/ovs-agent/agent.ini:2: [agent] ntp_file: "timesyncd.conf" is not an absolute path`,
			`/etc/ovs-agent/agent.ini:3: [agent] ntp_restart_command: "systemctl" is not an absolute program path (the command runs without a shell or PATH lookup: write /usr/bin/systemctl poweroff)`}},
		{"network_devices bad patterns", "[agent]\nnetwork_devices = control0 xenbr[ /dev/eth0\n", []string{
			`/etc/ovs-agent/agent.ini:2: [agent] network_devices: "xenbr[" is not a valid pattern (syntax error in pattern): * ? and [a-z] as in a shell; "/dev/eth0" is not a network device pattern: write a device name or a shell pattern of names, such as xenbr* or control0 (no / or :, at most 64 bytes)`}},
		{"block_devices bad pattern", "[agent]\nblock_devices = /dev/sd[\n", []string{
			`/etc/ovs-agent/agent.ini:2: [agent] block_devices: "/dev/sd[" is not a valid pattern (syntax error in pattern): * ? and [a-z] as in a shell`}},
		{"empty state dir", "[agent]\nstate_dir =\n", []string{
			`/etc/ovs-agent/agent.ini:2: [agent] state_dir: must not be empty`}},
		{"long socket", "[server]\nunix_socket = /" + strings.Repeat("s", 107) + "\n", []string{
			`/etc/ovs-agent/agent.ini:2: [server] unix_socket: "/` + strings.Repeat("s", 107) + `" is 108 bytes long; a unix socket path can be at most 107`}},
		{"bad address", "[server]\nlisten_address = 10.0.0.300\n", []string{
			`/etc/ovs-agent/agent.ini:2: [server] listen_address: "10.0.0.300" is not an IP address or host name`}},
		{"address with port", "[relocation]\naddress = 10.0.0.1:8002\n", []string{
			`/etc/ovs-agent/agent.ini:2: [relocation] address: "10.0.0.1:8002" is not an IP address or host name (the port is a separate option)`}},
		{"bracketed v6", "[server]\nlisten_address = [::1]\n", []string{
			`/etc/ovs-agent/agent.ini:2: [server] listen_address: "[::1]": write an IPv6 address without brackets`}},
		{"bad user", "[auth]\nuser = ad min\n", []string{
			`/etc/ovs-agent/agent.ini:2: [auth] user: "ad min" is not a valid user name (1-64 of letters, digits, '.', '_', '@', '-', starting with a letter or digit)`}},
		{"clear-text password", "[auth]\npassword_hash = hunter2\n", []string{
			"/etc/ovs-agent/agent.ini:2: [auth] password_hash: not a bcrypt hash (\"$2a$\" or \"$2b$\" followed by cost and hash, as `ovs-agent configure` writes it)"}},
		{"bad level", "[log]\nlevel = verbose\n", []string{
			`/etc/ovs-agent/agent.ini:2: [log] level: "verbose" is not one of debug, info, warn, error`}},
		{"bad allow item", "[access]\nallow = 10.1.1.*, 10.1.1.300\n", []string{
			`/etc/ovs-agent/agent.ini:2: [access] allow: item "10.1.1.300": not a valid IPv4 address`}},
		{"stray comma", "[access]\ndeny = 10.1.1.1,\n", []string{
			`/etc/ovs-agent/agent.ini:2: [access] deny: item 2 is empty (a stray comma?)`}},
		{"python regex", "[relocation]\nhosts_allow = ^ok$ ^(?!bad).*$\n", []string{
			"/etc/ovs-agent/agent.ini:2: [relocation] hosts_allow: pattern \"^(?!bad).*$\": error parsing regexp: invalid or unsupported Perl syntax: `(?!` (Go's regular expressions have no look-ahead, look-behind or (?P=name) back-references)"}},
		{"glob in hosts_allow", "[relocation]\nhosts_allow = *.example.org\n", []string{
			"/etc/ovs-agent/agent.ini:2: [relocation] hosts_allow: pattern \"*.example.org\": error parsing regexp: missing argument to repetition operator: `*` (hosts_allow takes regular expressions, not host name patterns: for *.example.com write ^.*\\.example\\.com$)"}},
		{"unknown key with suggestion", "[server]\nprot = 1\n", []string{
			`/etc/ovs-agent/agent.ini:2: [server] prot: unknown option (did you mean port?)`}},
		{"key in wrong section", "[server]\nhosts_allow = x\n", []string{
			`/etc/ovs-agent/agent.ini:2: [server] hosts_allow: unknown option in [server] (it belongs in [relocation])`}},
		{"unknown key listing", "[log]\nrotate = daily\n", []string{
			`/etc/ovs-agent/agent.ini:2: [log] rotate: unknown option (known: file, level, audit_file, max_size, max_files)`}},
		{"unknown section", "[srever]\nport = 1\n[extras]\n", []string{
			`/etc/ovs-agent/agent.ini:1: [srever]: unknown section (did you mean [server]?)`,
			`/etc/ovs-agent/agent.ini:3: [extras]: unknown section`}},
		{"key outside sections", "port = 1\nwhatever = 2\n[server]\n", []string{
			`/etc/ovs-agent/agent.ini:1: port: outside any section (it belongs in [server] or [relocation])`,
			`/etc/ovs-agent/agent.ini:2: whatever: outside any section`}},
		{"syntax errors", "[server]\nport: 1\nport = 1\nport = 2\n", []string{
			`/etc/ovs-agent/agent.ini:2: expected "[section]", "key = value" or a comment, found "port: 1"`,
			`/etc/ovs-agent/agent.ini:4: duplicate key "port" in [server] (first set at line 3)`}},
		{"all errors collected", "[server]\nport = x\nssl = x\n[log]\nlevel = x\n", []string{
			`/etc/ovs-agent/agent.ini:2: [server] port: "x" is not a port number (1-65535)`,
			`/etc/ovs-agent/agent.ini:3: [server] ssl: "x" is not a boolean (yes/no, true/false, on/off, 1/0)`,
			`/etc/ovs-agent/agent.ini:5: [log] level: "x" is not one of debug, info, warn, error`}},
		{"cert without key", "[server]\nssl_cert = /etc/c.pem\n", []string{
			`/etc/ovs-agent/agent.ini:2: [server] ssl_cert: set without ssl_key; set both or neither`}},
		{"key without cert", "[relocation]\nssl_key = /etc/k.pem\n", []string{
			`/etc/ovs-agent/agent.ini:2: [relocation] ssl_key: set without ssl_cert; set both or neither`}},
		{"no API at all", "[server]\ntcp_server = no\nunix_server = no\n", []string{
			`/etc/ovs-agent/agent.ini:3: [server] unix_server: tcp_server and unix_server are both off: the agent would serve its API nowhere`}},
		{"secondary mounts inside the repositories", "[agent]\nsecondary_storage_dir = /OVS/nfsmnt\n", []string{
			`/etc/ovs-agent/agent.ini:2: [agent] secondary_storage_dir: /OVS/nfsmnt overlaps [repository] root /OVS (default): give the storage plugin's mounts a directory of their own`}},
		{"port clash with default", "[relocation]\nport = 8899\n", []string{
			`/etc/ovs-agent/agent.ini:2: [relocation] port: port 8899 is also [server] port (default)`}},
		{"qemu binary relative", "[qemu]\nbinary = bin/qemu\naccel = hvf\n", []string{
			`/etc/ovs-agent/agent.ini:2: [qemu] binary: "bin/qemu" is a relative path: give a command name (looked up in PATH) or an absolute path`,
			`/etc/ovs-agent/agent.ini:3: [qemu] accel: "hvf" is not one of auto, kvm, tcg`}},
		{"memory backing", "[agent]\nmemory_backing = huge\n", []string{
			`/etc/ovs-agent/agent.ini:2: [agent] memory_backing: "huge" is not one of auto, 4k, hugetlb, thp`}},
		{"qemu binary with arguments", "[qemu]\nbinary = qemu-system-x86_64 -enable-kvm\n", []string{
			`/etc/ovs-agent/agent.ini:2: [qemu] binary: "qemu-system-x86_64 -enable-kvm" contains a blank or a NUL byte: give the program alone, without arguments`}},
		{"ssl port clash", "[relocation]\nssl_server = yes\nssl_port = 8002\n", []string{
			`/etc/ovs-agent/agent.ini:3: [relocation] ssl_port: port 8002 is also [relocation] port (default)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(testINI, []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", exported(c))
			}
			if c != nil {
				t.Error("Parse returned a Config with an error")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error is %T, want *ValidationError", err)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if len(ve.Errs) != len(tt.want) {
				t.Errorf("%d errors in Errs, want %d", len(ve.Errs), len(tt.want))
			}
		})
	}
}

func TestParseErrorTypes(t *testing.T) {
	_, err := Parse(testINI, []byte("[server]\nport = x\nbad line\n"))
	var ie *ini.Error
	if !errors.As(err, &ie) || ie.Line != 3 {
		t.Errorf("syntax error not an *ini.Error at line 3: %v", err)
	}
	_, err = Parse(testINI, []byte("[server]\nport = x\n"))
	var p *Problem
	if !errors.As(err, &p) || p.Section != "server" || p.Key != "port" || p.Where != testINI+":2" {
		t.Errorf("option error is not a positioned *Problem: %#v", err)
	}
}

func TestPortsOnDifferentAddresses(t *testing.T) {
	in := "[server]\nlisten_address = 10.0.0.1\nport = 8002\n[relocation]\naddress = 10.0.0.2\n"
	if _, err := Parse(testINI, []byte(in)); err != nil {
		t.Errorf("same port on two addresses rejected: %v", err)
	}
	in = "[server]\nlisten_address = 10.0.0.1\nport = 8002\n[relocation]\naddress = ::\n"
	if _, err := Parse(testINI, []byte(in)); err == nil {
		t.Error("clash with a wildcard address accepted")
	}
	in = "[server]\ntcp_server = no\nport = 8002\n"
	if _, err := Parse(testINI, []byte(in)); err != nil {
		t.Errorf("port of a disabled listener clashed: %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.ini")
	if err := os.WriteFile(path, []byte("[server]\nport = 9000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Port != 9000 || c.Where("server", "port") != path+":2" {
		t.Errorf("port %d from %s", c.Server.Port, c.Where("server", "port"))
	}

	if _, err := Load(filepath.Join(dir, "missing.ini")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("fifo: %v", err)
	}
	big := filepath.Join(dir, "big.ini")
	if err := os.WriteFile(big, []byte(strings.Repeat(";\n", MaxFileSize)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
	bad := filepath.Join(dir, "bad.ini")
	if err := os.WriteFile(bad, []byte("[server]\nport = 88x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || err.Error() != bad+`:2: [server] port: "88x" is not a port number (1-65535)` {
		t.Errorf("bad file: %v", err)
	}
}

func TestParseManyErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("[server]\n")
	for i := 0; i < 500; i++ {
		b.WriteString("k" + strconv.Itoa(i) + " = 1\n")
	}
	_, err := Parse(testINI, []byte(b.String()))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errs) != maxErrors+1 {
		t.Fatalf("got %v", err)
	}
	if got, want := ve.Errs[maxErrors].Error(), testINI+": too many errors, only the first 20 are shown"; got != want {
		t.Errorf("last error %q, want %q", got, want)
	}
}
