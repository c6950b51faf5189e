package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/config/ini"
)

// FuzzParse feeds the agent.ini loader arbitrary agent.ini text and, for
// any xend_config it names, arbitrary xend-config.sxp text (read from
// memory, never from disk).
func FuzzParse(f *testing.F) {
	realistic, err := os.ReadFile("testdata/xend-config.sxp")
	if err != nil {
		f.Fatal(err)
	}
	const xendINI = "[agent]\nxend_config = /etc/xen/xend-config.sxp\n"
	seeds := []struct{ ini, sxp string }{
		{string(ExampleINI), ""},
		{"", ""},
		{"[server]\nport = 88x\nssl = maybe\n[srever]\nx=1\n", ""},
		{"[server]\nlisten_address = ::\nport = 9000\nssl_cert = /c\nssl_key = /k\n[access]\nallow = 10.1.1.*, 10.0.0.0/8, *.example.com, ::1\ndeny = 10.1.1.13\n", ""},
		{"[relocation]\nhosts_allow = ^localhost$ ^.*\\.example\\.org$ (?=x)\nport = 8899\n", ""},
		{"[auth]\npassword_hash = $2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy\nfailed_login_delay = 250ms\n", ""},
		{"port = 1\n[server]\nport: 2\n", ""},
		{xendINI, string(realistic)},
		{xendINI + "[relocation]\nport = 9002\n", "(xend-relocation-port 7)\n(xend-relocation-port 8)\n"},
		{xendINI, "(xend-relocation-hosts-allow ^a$ ^b$)\n(xend-tcp-xmlrpc-server-port ' +9000 ')\n(xend-relocation-ssl t)"},
		{xendINI, "(xend-relocation-address (a))\n(xend-unix-xmlrpc-server no)\n(xend-tcp-xmlrpc-server no)"},
		{xendINI, "(xend-relocation-port 8002}\n"},
		{xendINI, "(xend-relocation-server-ssl-key-file '/a ;b')\n(xend-relocation-server-ssl-cert-file ' /c')"},
	}
	for _, s := range seeds {
		f.Add([]byte(s.ini), []byte(s.sxp))
	}
	f.Fuzz(func(t *testing.T, iniData, sxpData []byte) {
		read := func(path string) ([]byte, error) {
			if len(sxpData) == 0 {
				return nil, errors.New("no such file")
			}
			return sxpData, nil
		}
		c, err := parse("f.ini", iniData, read)
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errs) == 0 {
				t.Fatalf("error %T is not a non-empty *ValidationError: %v", err, err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.ini") && !strings.HasPrefix(line, "/") {
					t.Fatalf("error line %q names no file", line)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate rejects: %v", err)
		}
		for _, o := range c.options() {
			w := c.Where(o.section, o.key)
			if w != "default" && !strings.HasPrefix(w, "f.ini:") && !strings.HasPrefix(w, c.Agent.XendConfig+":") {
				t.Fatalf("Where(%s, %s) = %q", o.section, o.key, w)
			}
		}
		// Writing every value back into an agent.ini gives the same
		// configuration, whenever ini can hold the values.
		doc, err := ini.Parse("g.ini", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range c.options() {
			v, _ := c.Value(o.section, o.key)
			if o.section == "agent" && o.key == "xend_config" {
				v = "" // the values read from it are written out instead
			}
			if err := doc.Set(o.section, o.key, v); err != nil {
				return // e.g. an imported path with " ;" in it
			}
		}
		again, err := parse("g.ini", doc.Bytes(), read)
		if err != nil {
			t.Fatalf("written-back configuration does not parse: %v\n%s", err, doc.Bytes())
		}
		want := exported(c)
		want.Agent.XendConfig = ""
		if got := exported(again); !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip changed the configuration:\n%+v\n%+v", got, want)
		}
	})
}
