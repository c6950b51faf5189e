package config

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/config/ini"
)

// exported returns a copy of c without the bookkeeping fields, for
// comparing values.
func exported(c *Config) Config {
	v := *c
	v.file, v.xendFile, v.origins = "", "", nil
	return v
}

func TestExampleIsDefault(t *testing.T) {
	c, err := Parse("agent.ini.example", ExampleINI)
	if err != nil {
		t.Fatalf("ExampleINI does not parse:\n%v", err)
	}
	if got, want := exported(c), exported(Default()); !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(ExampleINI) =\n%+v\nwant Default() =\n%+v", got, want)
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default() does not validate: %v", err)
	}
}

// TestExampleCoversConfig checks that every Config field has an entry in
// the example, every entry in the example has a field, and the option
// table binds each field.
func TestExampleCoversConfig(t *testing.T) {
	fields := map[string]bool{}
	ct := reflect.TypeFor[Config]()
	for i := 0; i < ct.NumField(); i++ {
		sf := ct.Field(i)
		if !sf.IsExported() {
			continue
		}
		sec := sf.Tag.Get("ini")
		if sec == "" {
			t.Errorf("Config.%s has no ini tag", sf.Name)
			continue
		}
		st := sf.Type
		for j := 0; j < st.NumField(); j++ {
			f := st.Field(j)
			key := f.Tag.Get("ini")
			if key == "" {
				t.Errorf("Config.%s.%s has no ini tag", sf.Name, f.Name)
				continue
			}
			fields[sec+"."+key] = true
		}
	}

	f, err := ini.Parse("agent.ini.example", ExampleINI)
	if err != nil {
		t.Fatal(err)
	}
	example := map[string]bool{}
	for _, s := range f.Sections() {
		for _, k := range f.Keys(s.Name) {
			example[s.Name+"."+k.Name] = true
		}
	}
	table := map[string]bool{}
	for _, o := range Default().options() {
		table[o.section+"."+o.key] = true
	}
	for k := range fields {
		if !example[k] {
			t.Errorf("field %s is missing from agent.ini.example", k)
		}
		if !table[k] {
			t.Errorf("field %s is missing from the option table", k)
		}
	}
	for k := range example {
		if !fields[k] {
			t.Errorf("agent.ini.example sets %s, which is no Config field", k)
		}
	}
	for k := range table {
		if !fields[k] {
			t.Errorf("option table has %s, which is no Config field", k)
		}
	}

	// The table binds each option to its own field: setting through the
	// table changes exactly that field.
	for _, o := range Default().options() {
		c := Default()
		before := exported(c)
		opt := c.option(o.section, o.key)
		cur := opt.val.String()
		alt := map[string]string{"yes": "no", "no": "yes"}[cur]
		if alt == "" {
			continue
		}
		if err := opt.val.set(alt); err != nil {
			t.Fatal(err)
		}
		if reflect.DeepEqual(exported(c), before) {
			t.Errorf("setting %s.%s changed nothing", o.section, o.key)
		}
	}
}

// TestExampleDocumentsEveryOption: each option is preceded by a comment
// naming its default.
func TestExampleDocumentsEveryOption(t *testing.T) {
	lines := strings.Split(string(ExampleINI), "\n")
	f, err := ini.Parse("agent.ini.example", ExampleINI)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range f.Sections() {
		for _, k := range f.Keys(s.Name) {
			// Walk up over directly preceding keys (ssl_cert/ssl_key share
			// a comment) to the comment block.
			i := k.Line - 2
			for i >= 0 && !strings.HasPrefix(lines[i], ";") && strings.Contains(lines[i], "=") {
				i--
			}
			var block []string
			for ; i >= 0 && strings.HasPrefix(lines[i], ";"); i-- {
				block = append(block, lines[i])
			}
			text := strings.Join(block, " ")
			if len(block) == 0 {
				t.Errorf("[%s] %s (line %d) has no comment", s.Name, k.Name, k.Line)
			} else if !strings.Contains(text, "Default:") {
				t.Errorf("[%s] %s (line %d): comment does not give the default", s.Name, k.Name, k.Line)
			}
		}
	}
}

func TestDefaultForDir(t *testing.T) {
	dir := t.TempDir()
	c := DefaultForDir(dir)
	if c.Server.ListenAddress != "127.0.0.1" || c.Server.SSL || c.Relocation.Address != "127.0.0.1" {
		t.Errorf("not local and plain: %+v %+v", c.Server, c.Relocation)
	}
	for name, p := range map[string]string{
		"unix_socket": c.Server.UnixSocket, "state_dir": c.Agent.StateDir, "log file": c.Log.File,
	} {
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Errorf("%s %q is not inside %s", name, p, dir)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	rel := DefaultForDir("run")
	if !filepath.IsAbs(rel.Agent.StateDir) {
		t.Errorf("relative dir kept relative: %q", rel.Agent.StateDir)
	}
	long := DefaultForDir("/" + strings.Repeat("d", 120))
	err := long.Validate()
	if err == nil || !strings.Contains(err.Error(), "[server] unix_socket (default):") || !strings.Contains(err.Error(), "at most 107") {
		t.Errorf("long socket path: %v", err)
	}
}

func TestWhereValueOptionError(t *testing.T) {
	in := "[server]\n\nport = 9000\n[auth]\nfailed_login_delay = 1500ms\n"
	c, err := Parse("/etc/ovs-agent/agent.ini", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Where("server", "port"); got != "/etc/ovs-agent/agent.ini:3" {
		t.Errorf("Where(server, port) = %q", got)
	}
	if got := c.Where("server", "ssl"); got != "default" {
		t.Errorf("Where(server, ssl) = %q", got)
	}
	if got := c.Where("server", "nope"); got != "" {
		t.Errorf("Where(server, nope) = %q", got)
	}
	if v, ok := c.Value("auth", "failed_login_delay"); !ok || v != "1.5s" {
		t.Errorf("Value(failed_login_delay) = %q, %v", v, ok)
	}
	if v, ok := c.Value("access", "allow"); !ok || v != "*" {
		t.Errorf("Value(allow) = %q, %v", v, ok)
	}
	if _, ok := c.Value("x", "y"); ok {
		t.Error("Value of unknown option succeeded")
	}
	if c.Source() != "/etc/ovs-agent/agent.ini" || c.XendSource() != "" {
		t.Errorf("Source %q XendSource %q", c.Source(), c.XendSource())
	}

	base := errors.New("cannot bind: address already in use")
	e := OptionError(c, "server", "port", base)
	if got, want := e.Error(), "/etc/ovs-agent/agent.ini:3: [server] port: cannot bind: address already in use"; got != want {
		t.Errorf("OptionError = %q, want %q", got, want)
	}
	if !errors.Is(e, base) {
		t.Error("OptionError does not wrap err")
	}
	var p *Problem
	if !errors.As(e, &p) || p.Section != "server" || p.Key != "port" {
		t.Errorf("OptionError is not a *Problem: %#v", e)
	}
	if got, want := OptionError(c, "server", "ssl_cert", base).Error(), "/etc/ovs-agent/agent.ini: [server] ssl_cert (default): cannot bind: address already in use"; got != want {
		t.Errorf("default OptionError = %q, want %q", got, want)
	}
	if got, want := OptionError(Default(), "log", "file", base).Error(), "[log] file (default): cannot bind: address already in use"; got != want {
		t.Errorf("OptionError on Default = %q, want %q", got, want)
	}
	if got, want := OptionError(nil, "log", "file", base).Error(), "[log] file: cannot bind: address already in use"; got != want {
		t.Errorf("OptionError(nil) = %q, want %q", got, want)
	}
}

func TestValidateCatchesCodeChanges(t *testing.T) {
	c := Default()
	c.Server.Port = 0
	c.Relocation.HostsAllow = []string{"(?=x)"}
	c.Access.Deny = []string{"10.1.1.300"}
	c.Log.Level = "loud"
	c.Auth.FailedLoginDelay = -time.Second
	err := c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v, want *ValidationError", err)
	}
	want := []string{
		"[server] port (default): 0 is not a port number (1-65535)",
		"[auth] failed_login_delay (default): -1s is out of range (0s-1m)",
		`[access] deny (default): item "10.1.1.300": not a valid IPv4 address`,
		`[log] level (default): "loud" is not one of debug, info, warn, error`,
		"[relocation] hosts_allow (default): pattern \"(?=x)\": error parsing regexp: invalid or unsupported Perl syntax: `(?=` (Go's regular expressions have no look-ahead, look-behind or (?P=name) back-references)",
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", time.Second: "1s", time.Minute: "1m", time.Hour: "1h", 90 * time.Second: "1m30s",
		time.Hour + time.Second: "1h0m1s", 1500 * time.Millisecond: "1.5s", 2*time.Hour + 3*time.Minute: "2h3m",
	} {
		got := formatDuration(d)
		if got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(got); err != nil || back != d {
			t.Errorf("%q parses back to %v, %v", got, back, err)
		}
	}
}
