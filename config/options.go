package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// optValue is one option's typed storage inside a Config.
type optValue interface {
	// set parses agent.ini text, checks it and stores it.
	set(s string) error
	// String writes the stored value as agent.ini holds it.
	String() string
	// check validates the stored value.
	check() error
}

// xendSetter is implemented by values whose xend spelling differs from
// agent.ini's (xend's wider set of boolean words, Python's int()).
type xendSetter interface {
	setXend(s string) error
}

type option struct {
	section, key string
	val          optValue
}

// options binds every option to its field in c. The order is the order of
// ExampleINI.
func (c *Config) options() []option {
	s, a, ac, l, ag, q, r, rp, pl := &c.Server, &c.Auth, &c.Access, &c.Log, &c.Agent, &c.QEMU, &c.Relocation, &c.Repository, &c.Pool
	return []option{
		{"server", "tcp_server", boolVal{&s.TCPServer}},
		{"server", "listen_address", strVal{&s.ListenAddress, checkListenAddress}},
		{"server", "port", portVal{&s.Port}},
		{"server", "ssl", boolVal{&s.SSL}},
		{"server", "ssl_cert", strVal{&s.SSLCert, optionalPath}},
		{"server", "ssl_key", strVal{&s.SSLKey, optionalPath}},
		{"server", "unix_server", boolVal{&s.UnixServer}},
		{"server", "unix_socket", strVal{&s.UnixSocket, checkSocketPath}},
		{"server", "max_request_bytes", intVal{&s.MaxRequestBytes, 4096, 1 << 30}},
		{"server", "read_timeout", durVal{&s.ReadTimeout, time.Second, time.Hour}},
		{"server", "header_timeout", durVal{&s.HeaderTimeout, time.Second, 10 * time.Minute}},
		{"server", "max_pending_connections", intVal{&s.MaxPending, 1, 1 << 20}},
		{"server", "max_pending_per_address", intVal{&s.MaxPendingPerAddress, 1, 1 << 20}},

		{"auth", "user", strVal{&a.User, checkUser}},
		{"auth", "password_hash", strVal{&a.PasswordHash, checkPasswordHash}},
		{"auth", "failed_login_delay", durVal{&a.FailedLoginDelay, 0, time.Minute}},
		{"auth", "login_workers", intVal{&a.LoginWorkers, 0, 1024}},
		{"auth", "login_queue", intVal{&a.LoginQueue, 0, 1 << 16}},

		{"access", "allow", accessVal{&ac.Allow}},
		{"access", "deny", accessVal{&ac.Deny}},

		{"log", "file", strVal{&l.File, optionalPath}},
		{"log", "level", choiceVal{&l.Level, []string{"debug", "info", "warn", "error"}}},
		{"log", "audit_file", strVal{&l.AuditFile, optionalPath}},
		{"log", "max_size", intVal{&l.MaxSize, 0, 1 << 20}},
		{"log", "max_files", intVal{&l.MaxFiles, 1, 1000}},

		{"agent", "state_dir", strVal{&ag.StateDir, requiredPath}},
		{"agent", "xend_config", strVal{&ag.XendConfig, optionalPath}},
		{"agent", "hypervisor", choiceVal{&ag.Hypervisor, []string{"auto", "kvm", "sim"}}},
		{"agent", "memory_reserve", intVal{&ag.MemoryReserve, 0, 1 << 30}},
		{"agent", "memory_backing", choiceVal{&ag.MemoryBacking, []string{"auto", "4k", "hugetlb", "thp"}}},
		{"agent", "vmm_binary", strVal{&ag.VMMBinary, optionalPath}},
		{"agent", "file_dirs", pathsVal{&ag.FileDirs}},
		{"agent", "block_devices", devicePatternsVal{&ag.BlockDevices}},
		{"agent", "sys_shutdown_command", strVal{&ag.SysShutdownCommand, checkCommand}},
		{"agent", "sys_reboot_command", strVal{&ag.SysRebootCommand, checkCommand}},
		{"agent", "ntp_file", strVal{&ag.NTPFile, optionalPath}},
		{"agent", "ntp_enable_command", strVal{&ag.NTPEnableCommand, checkCommand}},
		{"agent", "ntp_disable_command", strVal{&ag.NTPDisableCommand, checkCommand}},
		{"agent", "ntp_restart_command", strVal{&ag.NTPRestartCommand, checkCommand}},
		{"agent", "secondary_storage_dir", strVal{&ag.SecondaryStorageDir, checkMountDir}},
		{"agent", "network_devices", netDevicePatternsVal{&ag.NetworkDevices}},
		{"agent", "storage_fence", choiceVal{&ag.StorageFence, []string{"domains", "crash", "none"}}},

		{"qemu", "binary", strVal{&q.Binary, checkProgram}},
		{"qemu", "accel", choiceVal{&q.Accel, []string{"auto", "kvm", "tcg"}}},

		{"relocation", "server", boolVal{&r.Server}},
		{"relocation", "address", strVal{&r.Address, checkListenAddress}},
		{"relocation", "port", portVal{&r.Port}},
		{"relocation", "ssl_server", boolVal{&r.SSLServer}},
		{"relocation", "ssl_port", portVal{&r.SSLPort}},
		{"relocation", "ssl", boolVal{&r.SSL}},
		{"relocation", "hosts_allow", hostsVal{&r.HostsAllow}},
		{"relocation", "ssl_cert", strVal{&r.SSLCert, optionalPath}},
		{"relocation", "ssl_key", strVal{&r.SSLKey, optionalPath}},
		{"relocation", "peer_user", strVal{&r.PeerUser, checkUser}},
		{"relocation", "peer_password_file", strVal{&r.PeerPasswordFile, optionalPath}},
		{"relocation", "handshake_timeout", durVal{&r.HandshakeTimeout, time.Second, 10 * time.Minute}},
		{"relocation", "max_pending_connections", intVal{&r.MaxPending, 1, 1 << 20}},
		{"relocation", "max_pending_per_address", intVal{&r.MaxPendingPerAddress, 1, 1 << 20}},
		{"relocation", "progress_timeout", durVal{&r.ProgressTimeout, time.Second, time.Hour}},

		{"repository", "enabled", boolVal{&rp.Enabled}},
		{"repository", "root", strVal{&rp.Root, requiredPath}},
		{"repository", "repositories_file", strVal{&rp.RepositoriesFile, requiredPath}},
		{"repository", "options_file", strVal{&rp.OptionsFile, requiredPath}},
		{"repository", "staging_dir", strVal{&rp.StagingDir, requiredPath}},
		{"repository", "state_file", strVal{&rp.StateFile, requiredPath}},
		{"repository", "mount_timeout", durVal{&rp.MountTimeout, time.Second, time.Hour}},
		{"repository", "heartbeat_interval", durVal{&rp.HeartbeatInterval, time.Second, time.Hour}},

		{"pool", "name", strVal{&pl.Name, checkPoolName}},
		{"pool", "host_name", strVal{&pl.HostName, checkMemberName}},
		{"pool", "endpoints", endpointsVal{&pl.Endpoints}},
		{"pool", "lease_ttl", secondsVal{durVal{&pl.LeaseTTL, 2 * time.Second, 5 * time.Minute}}},
		{"pool", "fencing_margin", durVal{&pl.FencingMargin, 500 * time.Millisecond, 150 * time.Second}},
		{"pool", "dial_timeout", durVal{&pl.DialTimeout, 100 * time.Millisecond, time.Minute}},
		{"pool", "ca_file", strVal{&pl.CAFile, optionalPath}},
		{"pool", "cert_file", strVal{&pl.CertFile, optionalPath}},
		{"pool", "key_file", strVal{&pl.KeyFile, optionalPath}},
		{"pool", "user", strVal{&pl.User, optionalUser}},
		{"pool", "password_file", strVal{&pl.PasswordFile, optionalPath}},
		{"pool", "drain_on_stop", boolVal{&pl.DrainOnStop}},
		{"pool", "drain_timeout", durVal{&pl.DrainTimeout, 10 * time.Second, time.Hour}},

		{"metrics", "address", strVal{&c.Metrics.Address, checkHostPort}},
		{"metrics", "auth", boolVal{&c.Metrics.Auth}},
	}
}

// sections lists the sections in ExampleINI order.
var sections = []string{"server", "auth", "access", "log", "agent", "qemu", "relocation", "repository", "pool", "metrics"}

func (c *Config) option(section, key string) *option {
	for _, o := range c.options() {
		if o.section == section && o.key == key {
			return &o
		}
	}
	return nil
}

func knownSection(name string) bool {
	for _, s := range sections {
		if s == name {
			return true
		}
	}
	return false
}

// optionNames lists every option as [section, key], in table order.
var optionNames = func() [][2]string {
	var out [][2]string
	for _, o := range Default().options() {
		out = append(out, [2]string{o.section, o.key})
	}
	return out
}()

// keysOf lists the keys of a section, and sectionsOf the sections that
// have a key, for suggestions.
func keysOf(section string) []string {
	var out []string
	for _, n := range optionNames {
		if n[0] == section {
			out = append(out, n[1])
		}
	}
	return out
}

func sectionsOf(key string) []string {
	var out []string
	for _, n := range optionNames {
		if n[1] == key {
			out = append(out, n[0])
		}
	}
	return out
}

// --- booleans

type boolVal struct{ p *bool }

func (v boolVal) set(s string) error {
	switch strings.ToLower(s) {
	case "yes", "true", "on", "1":
		*v.p = true
	case "no", "false", "off", "0":
		*v.p = false
	default:
		return fmt.Errorf("%q is not a boolean (yes/no, true/false, on/off, 1/0)", s)
	}
	return nil
}

// setXend accepts what xend's get_config_bool accepts.
func (v boolVal) setXend(s string) error {
	switch strings.ToLower(s) {
	case "yes", "y", "1", "on", "true", "t":
		*v.p = true
	case "no", "n", "0", "off", "false", "f":
		*v.p = false
	default:
		return fmt.Errorf("%q is not a boolean (yes/y/1/on/true/t or no/n/0/off/false/f)", s)
	}
	return nil
}

func (v boolVal) String() string {
	if *v.p {
		return "yes"
	}
	return "no"
}

func (v boolVal) check() error { return nil }

// --- ports

type portVal struct{ p *int }

func (v portVal) set(s string) error {
	n, ok := parseDecimal(s)
	if !ok || n < 1 || n > 65535 {
		return fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	*v.p = int(n)
	return nil
}

// setXend accepts what Python's int() does: blanks around, a sign.
func (v portVal) setXend(s string) error {
	t := strings.TrimSpace(s)
	t = strings.TrimPrefix(t, "+")
	n, ok := parseDecimal(t)
	if !ok || n < 1 || n > 65535 {
		return fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	*v.p = int(n)
	return nil
}

func (v portVal) String() string { return strconv.Itoa(*v.p) }

func (v portVal) check() error {
	if *v.p < 1 || *v.p > 65535 {
		return fmt.Errorf("%d is not a port number (1-65535)", *v.p)
	}
	return nil
}

// parseDecimal accepts only ASCII digits (no sign, no blanks).
func parseDecimal(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// --- whole numbers

type intVal struct {
	p        *int64
	min, max int64
}

func (v intVal) set(s string) error {
	n, ok := parseDecimal(s)
	if !ok {
		return fmt.Errorf("%q is not a whole number", s)
	}
	old := *v.p
	*v.p = n
	if err := v.check(); err != nil {
		*v.p = old
		return err
	}
	return nil
}

func (v intVal) String() string { return strconv.FormatInt(*v.p, 10) }

func (v intVal) check() error {
	if *v.p < v.min || *v.p > v.max {
		return fmt.Errorf("%d is out of range (%d-%d)", *v.p, v.min, v.max)
	}
	return nil
}

// --- durations

type durVal struct {
	p        *time.Duration
	min, max time.Duration
}

func (v durVal) set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (like 500ms, 1s, 2m)", s)
	}
	old := *v.p
	*v.p = d
	if err := v.check(); err != nil {
		*v.p = old
		return err
	}
	return nil
}

func (v durVal) String() string { return formatDuration(*v.p) }

func (v durVal) check() error {
	if *v.p < v.min || *v.p > v.max {
		return fmt.Errorf("%s is out of range (%s-%s)", formatDuration(*v.p), formatDuration(v.min), formatDuration(v.max))
	}
	return nil
}

// formatDuration writes "1s" rather than time's "1s", "1m0s" -> "1m",
// "1h0m0s" -> "1h"; the result always parses back to d.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// --- durations in whole seconds (etcd grants leases in seconds)

type secondsVal struct{ durVal }

func (v secondsVal) set(s string) error {
	old := *v.p
	if err := v.durVal.set(s); err != nil {
		return err
	}
	if err := v.whole(); err != nil {
		*v.p = old
		return err
	}
	return nil
}

func (v secondsVal) check() error {
	if err := v.durVal.check(); err != nil {
		return err
	}
	return v.whole()
}

func (v secondsVal) whole() error {
	if *v.p%time.Second != 0 {
		return fmt.Errorf("%s is not a whole number of seconds (etcd grants leases in seconds)", formatDuration(*v.p))
	}
	return nil
}

// --- [pool] endpoints: comma-separated etcd client URLs

type endpointsVal struct{ p *[]string }

func (v endpointsVal) set(s string) error {
	var eps []string
	if strings.TrimSpace(s) != "" {
		for i, e := range strings.Split(s, ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				return fmt.Errorf("endpoint %d is empty (a stray comma?)", i+1)
			}
			eps = append(eps, e)
		}
	}
	old := *v.p
	*v.p = eps
	if err := v.check(); err != nil {
		*v.p = old
		return err
	}
	return nil
}

func (v endpointsVal) String() string { return strings.Join(*v.p, ", ") }

func (v endpointsVal) check() error {
	scheme := ""
	for _, e := range *v.p {
		if err := checkEndpoint(e); err != nil {
			return err
		}
		sc, _, _ := strings.Cut(e, "://")
		if scheme != "" && sc != scheme {
			return fmt.Errorf("%q is %s:// but an earlier endpoint is %s://; give every member of the etcd cluster the same scheme", e, sc, scheme)
		}
		scheme = sc
	}
	return nil
}

// checkEndpoint accepts http://host:port or https://host:port, the form
// etcd's --advertise-client-urls gives.
func checkEndpoint(e string) error {
	if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
		return fmt.Errorf("%q: an etcd endpoint is http://host:port or https://host:port", e)
	}
	u, err := url.Parse(e)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL: %v", e, err)
	case u.Host == "" || u.Port() == "":
		return fmt.Errorf("%q has no host:port (etcd's client port is usually 2379)", e)
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q: an etcd endpoint is only scheme://host:port (credentials go in [pool] user and password_file)", e)
	}
	if _, ok := parseDecimal(u.Port()); !ok {
		return fmt.Errorf("%q: port %q is not a number", e, u.Port())
	}
	return nil
}

// --- strings with a checker

type strVal struct {
	p  *string
	ok func(string) error
}

func (v strVal) set(s string) error {
	if err := v.ok(s); err != nil {
		return err
	}
	*v.p = s
	return nil
}

func (v strVal) String() string { return *v.p }
func (v strVal) check() error   { return v.ok(*v.p) }

type choiceVal struct {
	p       *string
	choices []string
}

func (v choiceVal) set(s string) error {
	l := strings.ToLower(s)
	for _, c := range v.choices {
		if l == c {
			*v.p = c
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", s, strings.Join(v.choices, ", "))
}

func (v choiceVal) String() string { return *v.p }

func (v choiceVal) check() error {
	for _, c := range v.choices {
		if *v.p == c {
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", *v.p, strings.Join(v.choices, ", "))
}

// --- [access] item lists

type accessVal struct{ p *[]string }

func (v accessVal) set(s string) error {
	items, err := ParseAccessList(s)
	if err != nil {
		return err
	}
	*v.p = items
	return nil
}

func (v accessVal) String() string { return strings.Join(*v.p, ", ") }

func (v accessVal) check() error {
	var errs []error
	for _, it := range *v.p {
		if err := ValidateAccessItem(it); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// --- [relocation] hosts_allow

type hostsVal struct{ p *[]string }

func (v hostsVal) set(s string) error {
	pats := strings.Fields(s)
	if len(pats) == 0 {
		pats = nil
	}
	if _, err := CompileHostsAllow(pats); err != nil {
		return err
	}
	*v.p = pats
	return nil
}

func (v hostsVal) String() string { return strings.Join(*v.p, " ") }

func (v hostsVal) check() error {
	for _, p := range *v.p {
		if p == "" || strings.ContainsAny(p, " \t\r\n\v\f") {
			return fmt.Errorf("pattern %q: empty or contains a blank (patterns are separated by blanks)", p)
		}
	}
	_, err := CompileHostsAllow(*v.p)
	return err
}

// --- device patterns ([agent] block_devices)

type devicePatternsVal struct{ p *[]string }

func (v devicePatternsVal) set(s string) error {
	ps := strings.Fields(s)
	if len(ps) == 0 {
		ps = nil
	}
	*v.p = ps
	return v.check()
}

func (v devicePatternsVal) String() string { return strings.Join(*v.p, " ") }

func (v devicePatternsVal) check() error {
	var errs []error
	for _, p := range *v.p {
		if !strings.HasPrefix(p, "/dev/") || filepath.Clean(p) != p {
			errs = append(errs, fmt.Errorf("%q is not a block device pattern: write an absolute, clean path under /dev/, such as /dev/mapper/*", p))
			continue
		}
		if _, err := filepath.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("%q is not a valid pattern (%v): * ? and [a-z] as in a shell", p, err))
		}
		for _, open := range []string{"/dev/shm", "/dev/mqueue"} {
			if p == open || strings.HasPrefix(p, open+"/") {
				errs = append(errs, fmt.Errorf("%q is under %s, where anyone may create files (a symlink there would name any device): list the devices' own names", p, open))
			}
		}
	}
	return errors.Join(errs...)
}

// --- network device patterns ([agent] network_devices)

type netDevicePatternsVal struct{ p *[]string }

func (v netDevicePatternsVal) set(s string) error {
	ps := strings.Fields(s)
	if len(ps) == 0 {
		ps = nil
	}
	*v.p = ps
	return v.check()
}

func (v netDevicePatternsVal) String() string { return strings.Join(*v.p, " ") }

// maxNetDevicePattern is the longest pattern: a device name has at most 15
// bytes, a pattern some room for brackets.
const maxNetDevicePattern = 64

func (v netDevicePatternsVal) check() error {
	var errs []error
	for _, p := range *v.p {
		if len(p) > maxNetDevicePattern || strings.ContainsAny(p, "/:") || p == "." || p == ".." {
			errs = append(errs, fmt.Errorf("%q is not a network device pattern: write a device name or a shell pattern of names, such as xenbr* or control0 (no / or :, at most %d bytes)", p, maxNetDevicePattern))
			continue
		}
		if _, err := filepath.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("%q is not a valid pattern (%v): * ? and [a-z] as in a shell", p, err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// --- path lists ([agent] file_dirs)

type pathsVal struct{ p *[]string }

func (v pathsVal) set(s string) error {
	ps := strings.Fields(s)
	if len(ps) == 0 {
		ps = nil
	}
	*v.p = ps
	return v.check()
}

func (v pathsVal) String() string { return strings.Join(*v.p, " ") }

func (v pathsVal) check() error {
	var errs []error
	for _, p := range *v.p {
		if err := requiredPath(p); err != nil {
			errs = append(errs, err)
			continue
		}
		if filepath.Clean(p) == "/" {
			errs = append(errs, errors.New("\"/\" would let API callers name any file on the host; list the directories meant for them"))
		}
	}
	return errors.Join(errs...)
}

// --- checkers

// checkProgram accepts a program to run: a command name looked up in PATH
// (no slash) or an absolute path.
func checkProgram(s string) error {
	switch {
	case s == "":
		return errors.New("must not be empty: a command name (looked up in PATH) or an absolute path")
	case strings.ContainsAny(s, "\x00 \t\n"):
		return fmt.Errorf("%q contains a blank or a NUL byte: give the program alone, without arguments", s)
	case strings.ContainsRune(s, '/') && !filepath.IsAbs(s):
		return fmt.Errorf("%q is a relative path: give a command name (looked up in PATH) or an absolute path", s)
	}
	return nil
}

// checkCommand accepts "" (off) or an absolute program path followed by
// arguments separated by blanks (run without a shell).
func checkCommand(s string) error {
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil
	}
	if strings.ContainsRune(s, 0) {
		return errors.New("contains a NUL byte")
	}
	if !filepath.IsAbs(f[0]) {
		return fmt.Errorf("%q is not an absolute program path (the command runs without a shell or PATH lookup: write /usr/bin/systemctl poweroff)", f[0])
	}
	return nil
}

// checkMountDir accepts "" (off) or an absolute, clean directory that
// is not / and not one of the host's own system directories: the agent
// makes mount points inside it.
func checkMountDir(s string) error {
	if s == "" {
		return nil
	}
	if err := requiredPath(s); err != nil {
		return err
	}
	if filepath.Clean(s) != s {
		return fmt.Errorf("%q is not a clean path: write %s", s, filepath.Clean(s))
	}
	switch s {
	case "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var":
		return fmt.Errorf("%q is a system directory: name a directory of its own for the mounts, such as /nfsmnt", s)
	}
	return nil
}

func optionalPath(s string) error {
	if s == "" {
		return nil
	}
	return requiredPath(s)
}

func requiredPath(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if !filepath.IsAbs(s) {
		return fmt.Errorf("%q is not an absolute path", s)
	}
	if strings.ContainsRune(s, 0) {
		return fmt.Errorf("%q contains a NUL byte", s)
	}
	return nil
}

// maxSocketPath is the longest path a unix socket address holds on Linux
// (sun_path is 108 bytes including the terminating NUL).
const maxSocketPath = 107

func checkSocketPath(s string) error {
	if err := requiredPath(s); err != nil {
		return err
	}
	if len(s) > maxSocketPath {
		return fmt.Errorf("%q is %d bytes long; a unix socket path can be at most %d", s, len(s), maxSocketPath)
	}
	return nil
}

// checkListenAddress accepts "" (all addresses), an IP address (an IPv6
// one may carry a %zone) or a host name.
// checkHostPort validates an optional host:port (an IP address or host
// name, and a port 1-65535).
func checkHostPort(s string) error {
	if s == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port (such as 127.0.0.1:9899 or [::1]:9899): %v", s, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not 1-65535", s, port)
	}
	if host == "" {
		return fmt.Errorf("%q has no host: write 0.0.0.0:%s to listen on every address", s, port)
	}
	if _, err := netip.ParseAddr(host); err != nil && !validHostName(host) {
		return fmt.Errorf("%q: %q is not an IP address or host name", s, host)
	}
	return nil
}

func checkListenAddress(s string) error {
	if s == "" {
		return nil
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	if strings.HasPrefix(s, "[") {
		return fmt.Errorf("%q: write an IPv6 address without brackets", s)
	}
	if strings.Contains(s, ":") && strings.Count(s, ":") == 1 {
		return fmt.Errorf("%q is not an IP address or host name (the port is a separate option)", s)
	}
	if !validHostName(s) {
		return fmt.Errorf("%q is not an IP address or host name", s)
	}
	return nil
}

// validHostName checks RFC 1123 syntax and rejects names that are all
// digits and dots (a mistyped IPv4 address).
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	s = strings.TrimSuffix(s, ".")
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	_, numeric := parseDecimal(labels[len(labels)-1])
	return !numeric
}

var poolNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// checkPoolName accepts "" (no pool) or a name that can be a key segment
// in etcd.
func checkPoolName(s string) error {
	if s != "" && !poolNameRE.MatchString(s) {
		return fmt.Errorf("%q is not a valid pool name (1-64 of letters, digits, '.', '_', '-', starting with a letter or digit)", s)
	}
	return nil
}

// checkMemberName accepts "" (the system's host name) or a name that can
// be a key segment in etcd.
func checkMemberName(s string) error {
	if s != "" && !memberNameRE.MatchString(s) {
		return fmt.Errorf("%q is not a valid member name (1-128 of letters, digits, '.', '_', '-', starting with a letter or digit)", s)
	}
	return nil
}

var memberNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func optionalUser(s string) error {
	if s == "" {
		return nil
	}
	return checkUser(s)
}

var userRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

func checkUser(s string) error {
	if !userRE.MatchString(s) {
		return fmt.Errorf("%q is not a valid user name (1-64 of letters, digits, '.', '_', '@', '-', starting with a letter or digit)", s)
	}
	return nil
}

// checkPasswordHash accepts "" or a bcrypt hash. The value is never
// repeated in the message: it is a secret.
func checkPasswordHash(s string) error {
	if s == "" {
		return nil
	}
	if _, err := bcrypt.Cost([]byte(s)); err != nil {
		return errors.New("not a bcrypt hash (\"$2a$\" or \"$2b$\" followed by cost and hash, as `ovs-agent configure` writes it)")
	}
	return nil
}
