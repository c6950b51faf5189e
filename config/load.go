package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ovs-agent/ovs-agent/config/ini"
	"github.com/ovs-agent/ovs-agent/config/sxp"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
)

// MaxFileSize is the largest agent.ini or xend-config.sxp that is read.
const MaxFileSize = ini.MaxSize

// Load reads and parses the agent.ini at path (see Parse).
func Load(path string) (*Config, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return Parse(path, data)
}

// Parse parses agent.ini text, naming it name in errors. Options not in
// the text keep their defaults. Unknown sections and options are errors.
// If [agent] xend_config names an xend-config.sxp, that file is read and
// the xend options listed in XendOptions fill the options agent.ini does
// not set. On failure the error is a *ValidationError holding every
// problem found.
func Parse(name string, data []byte) (*Config, error) {
	return parse(name, data, readConfigFile)
}

// XendOption maps an xend-config.sxp option onto an agent.ini option.
type XendOption struct {
	Xend         string
	Section, Key string
}

// XendOptions lists the xend-config.sxp options that are imported. The
// rest (xend has dozens) are ignored. xend-unix-path is not among them:
// it is the socket of xend's legacy HTTP server, not of the XML-RPC API.
var XendOptions = []XendOption{
	{"xend-relocation-server", "relocation", "server"},
	{"xend-relocation-port", "relocation", "port"},
	{"xend-relocation-address", "relocation", "address"},
	{"xend-relocation-hosts-allow", "relocation", "hosts_allow"},
	{"xend-relocation-ssl-server", "relocation", "ssl_server"},
	{"xend-relocation-ssl-port", "relocation", "ssl_port"},
	{"xend-relocation-ssl", "relocation", "ssl"},
	{"xend-relocation-server-ssl-key-file", "relocation", "ssl_key"},
	{"xend-relocation-server-ssl-cert-file", "relocation", "ssl_cert"},
	{"xend-tcp-xmlrpc-server", "server", "tcp_server"},
	{"xend-tcp-xmlrpc-server-address", "server", "listen_address"},
	{"xend-tcp-xmlrpc-server-port", "server", "port"},
	{"xend-tcp-xmlrpc-server-ssl-key-file", "server", "ssl_key"},
	{"xend-tcp-xmlrpc-server-ssl-cert-file", "server", "ssl_cert"},
	{"xend-unix-xmlrpc-server", "server", "unix_server"},
}

func parse(name string, data []byte, read func(string) ([]byte, error)) (*Config, error) {
	f, err := ini.Parse(name, data)
	if err != nil {
		return nil, &ValidationError{Errs: flatten(err)}
	}
	c := Default()
	c.file = name
	var errs []error
	at := func(line int) string { return fmt.Sprintf("%s:%d", name, line) }
	for _, s := range f.Sections() {
		if len(errs) > maxErrors {
			break // enough to report; don't spend time on the rest
		}
		if s.Name == "" {
			for _, k := range f.Keys("") {
				if len(errs) > maxErrors {
					break
				}
				msg := "outside any section"
				if secs := sectionsOf(k.Name); len(secs) > 0 {
					msg += fmt.Sprintf(" (it belongs in [%s])", strings.Join(secs, "] or ["))
				}
				errs = append(errs, &Problem{Where: at(k.Line), Key: k.Name, Err: errors.New(msg)})
			}
			continue
		}
		if !knownSection(s.Name) {
			msg := "unknown section"
			if g := suggest(s.Name, sections); g != "" {
				msg += fmt.Sprintf(" (did you mean [%s]?)", g)
			}
			errs = append(errs, &Problem{Where: at(s.Line), Section: s.Name, Err: errors.New(msg)})
			continue
		}
		for _, k := range f.Keys(s.Name) {
			if len(errs) > maxErrors {
				break
			}
			o := c.option(s.Name, k.Name)
			if o == nil {
				errs = append(errs, &Problem{Where: at(k.Line), Section: s.Name, Key: k.Name, Err: errors.New(unknownKey(s.Name, k.Name))})
				continue
			}
			if err := o.val.set(k.Value); err != nil {
				errs = append(errs, &Problem{Where: at(k.Line), Section: s.Name, Key: k.Name, Err: err})
				continue
			}
			c.origins[s.Name+"."+k.Name] = origin{file: name, line: k.Line}
		}
	}
	if c.Agent.XendConfig != "" {
		errs = append(errs, c.importXend(read)...)
	}
	// Rules between options only make sense once every value is good.
	if len(errs) == 0 {
		errs = c.crossCheck()
	}
	if len(errs) > maxErrors {
		errs = append(errs[:maxErrors:maxErrors], fmt.Errorf("%s: too many errors, only the first %d are shown", name, maxErrors))
	}
	if len(errs) > 0 {
		return nil, &ValidationError{Errs: errs}
	}
	return c, nil
}

// maxErrors bounds the errors reported for one file.
const maxErrors = 20

func unknownKey(section, key string) string {
	msg := "unknown option"
	if g := suggest(key, keysOf(section)); g != "" {
		return msg + fmt.Sprintf(" (did you mean %s?)", g)
	}
	if secs := sectionsOf(key); len(secs) > 0 {
		return msg + fmt.Sprintf(" in [%s] (it belongs in [%s])", section, strings.Join(secs, "] or ["))
	}
	return msg + fmt.Sprintf(" (known: %s)", strings.Join(keysOf(section), ", "))
}

// importXend reads [agent] xend_config and fills the options agent.ini
// left unset.
func (c *Config) importXend(read func(string) ([]byte, error)) []error {
	path := c.Agent.XendConfig
	data, err := read(path)
	if err != nil {
		return []error{OptionError(c, "agent", "xend_config", err)}
	}
	entries, err := sxp.Parse(path, data)
	if err != nil {
		return []error{err}
	}
	c.xendFile = path
	var errs []error
	first := map[string]int{}
	for _, e := range entries {
		m := xendOption(e.Name)
		if m == nil {
			continue
		}
		bad := func(line int, err error) {
			errs = append(errs, &Problem{Where: fmt.Sprintf("%s:%d", path, line), Section: m.Section, Key: m.Key, Xend: m.Xend, Err: err})
		}
		if l, dup := first[e.Name]; dup {
			bad(e.Line, fmt.Errorf("set again (first at line %d, which xend used); remove one", l))
			continue
		}
		first[e.Name] = e.Line
		if o := c.origins[m.Section+"."+m.Key]; o.line > 0 && o.xend == "" {
			continue // agent.ini sets it: that wins
		}
		if len(e.Values) != 1 {
			bad(e.Line, fmt.Errorf("takes exactly one value, found %d", len(e.Values)))
			continue
		}
		v := e.Values[0]
		if v.Kind == sxp.List {
			bad(v.Line, fmt.Errorf("takes a single value, found the list %s", v))
			continue
		}
		o := c.option(m.Section, m.Key)
		if xs, ok := o.val.(xendSetter); ok {
			err = xs.setXend(v.Text)
		} else {
			err = o.val.set(v.Text)
		}
		if err != nil {
			bad(v.Line, err)
			continue
		}
		c.origins[m.Section+"."+m.Key] = origin{file: path, line: v.Line, xend: m.Xend}
	}
	return errs
}

func xendOption(name string) *XendOption {
	for i := range XendOptions {
		if XendOptions[i].Xend == name {
			return &XendOptions[i]
		}
	}
	return nil
}

// crossCheck applies the rules between options.
func (c *Config) crossCheck() []error {
	var errs []error
	bad := func(section, key string, format string, args ...any) {
		errs = append(errs, OptionError(c, section, key, fmt.Errorf(format, args...)))
	}
	pair := func(section, cert, key string) {
		cv, _ := c.Value(section, cert)
		kv, _ := c.Value(section, key)
		switch {
		case cv != "" && kv == "":
			bad(section, cert, "set without %s; set both or neither", key)
		case cv == "" && kv != "":
			bad(section, key, "set without %s; set both or neither", cert)
		}
	}
	pair("server", "ssl_cert", "ssl_key")
	pair("relocation", "ssl_cert", "ssl_key")
	errs = append(errs, c.poolCheck()...)
	if !c.Server.TCPServer && !c.Server.UnixServer {
		bad("server", "unix_server", "tcp_server and unix_server are both off: the agent would serve its API nowhere")
	}
	for _, d := range []struct{ key, dir string }{{"root", c.Repository.Root}, {"staging_dir", c.Repository.StagingDir}} {
		if s := c.Agent.SecondaryStorageDir; s != "" && d.dir != "" && (pathWithin(s, d.dir) || pathWithin(d.dir, s)) {
			bad("agent", "secondary_storage_dir", "%s overlaps [repository] %s %s (%s): give the storage plugin's mounts a directory of their own", s, d.key, d.dir, c.Where("repository", d.key))
		}
	}

	type listener struct {
		section, key string // the port option
		addr         string
		port         int
	}
	var ls []listener
	if c.Server.TCPServer {
		ls = append(ls, listener{"server", "port", c.Server.ListenAddress, c.Server.Port})
	}
	if c.Relocation.Server {
		ls = append(ls, listener{"relocation", "port", c.Relocation.Address, c.Relocation.Port})
	}
	if c.Relocation.SSLServer {
		ls = append(ls, listener{"relocation", "ssl_port", c.Relocation.Address, c.Relocation.SSLPort})
	}
	for i := 1; i < len(ls); i++ {
		for j := 0; j < i; j++ {
			a, b := ls[i], ls[j]
			if a.port == b.port && overlap(a.addr, b.addr) {
				bad(a.section, a.key, "port %d is also [%s] %s (%s)", a.port, b.section, b.key, c.Where(b.section, b.key))
				break
			}
		}
	}
	return errs
}

// poolCheck applies the rules between [pool] options.
func (c *Config) poolCheck() []error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, OptionError(c, "pool", key, fmt.Errorf(format, args...)))
	}
	p := &c.Pool
	if p.Name == "" {
		// No pool: an option that differs from its default would be
		// accepted and ignored.
		def := Default()
		for _, o := range c.options() {
			if o.section != "pool" || o.key == "name" {
				continue
			}
			if v, _ := def.Value("pool", o.key); v != o.val.String() {
				bad(o.key, "set, but [pool] name is empty, so the agent is in no pool; set name or remove %s", o.key)
			}
		}
		return errs
	}
	if len(p.Endpoints) == 0 {
		bad("endpoints", "must not be empty when [pool] name is set: give the etcd cluster's client URLs, comma-separated")
	}
	if p.FencingMargin*2 > p.LeaseTTL {
		bad("fencing_margin", "%s is more than half of lease_ttl (%s, %s): the lease is renewed every third of its TTL, so a larger margin would stop guests between two renewals",
			formatDuration(p.FencingMargin), formatDuration(p.LeaseTTL), c.Where("pool", "lease_ttl"))
	}
	switch {
	case p.CertFile != "" && p.KeyFile == "":
		bad("cert_file", "set without key_file; set both or neither")
	case p.CertFile == "" && p.KeyFile != "":
		bad("key_file", "set without cert_file; set both or neither")
	}
	switch {
	case p.User != "" && p.PasswordFile == "":
		bad("user", "set without password_file; set both or neither")
	case p.User == "" && p.PasswordFile != "":
		bad("password_file", "set without user; set both or neither")
	}
	if len(p.Endpoints) > 0 && strings.HasPrefix(p.Endpoints[0], "http://") {
		for _, k := range []string{"ca_file", "cert_file", "key_file"} {
			if v, _ := c.Value("pool", k); v != "" {
				bad(k, "set, but the endpoints are http:// (no TLS); use https:// endpoints or remove %s", k)
			}
		}
	}
	return errs
}

// overlap reports whether listeners on addresses a and b could collide.
func overlap(a, b string) bool {
	return wildcard(a) || wildcard(b) || strings.EqualFold(a, b)
}

func wildcard(a string) bool {
	if a == "" {
		return true
	}
	ip, err := netip.ParseAddr(a)
	return err == nil && ip.IsUnspecified()
}

// readConfigFile reads a regular file of at most MaxFileSize bytes. It
// opens without blocking, so a FIFO or device named by mistake gives an
// error instead of a hang.
func readConfigFile(path string) ([]byte, error) {
	return boundedfile.ReadFile(path, MaxFileSize, boundedfile.Follow)
}

// pathWithin reports whether the clean absolute path p is dir or below it.
func pathWithin(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}
