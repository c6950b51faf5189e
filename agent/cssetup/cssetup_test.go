package cssetup

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/config"
)

func cfg(t *testing.T, ssl bool, port int) *config.Config {
	t.Helper()
	c, err := config.Parse("/etc/ovs-agent/agent.ini", fmt.Appendf(nil, "[server]\nssl = %v\nport = %d\n", map[bool]string{true: "yes", false: "no"}[ssl], port))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// scpClient plays the client side of an scp copy of one file and returns
// what the sink answered.
func scpClient(name string, content []byte) io.Reader {
	var b bytes.Buffer
	fmt.Fprintf(&b, "T1700000000 0 1700000000 0\n")
	fmt.Fprintf(&b, "C0755 %d %s\n", len(content), name)
	b.Write(content)
	b.WriteByte(0)
	return &b
}

func TestSCPOfTheModule(t *testing.T) {
	module := []byte("#!/usr/bin/python\n# the module\n")
	for _, cmd := range []string{`scp -t -d ""`, "scp -t -d .", "scp -p -t .", "scp -t cloudstack.py", "scp -t -d /opt/cloudstack/bin"} {
		var out, errb bytes.Buffer
		if rc := Run(cmd, cfg(t, false, 8899), scpClient("cloudstack.py", module), &out, &errb); rc != 0 {
			t.Errorf("%s: status %d: %s", cmd, rc, errb.String())
		}
		// one \0 at the start, one for the times, two for the file
		if out.String() != "\x00\x00\x00\x00" {
			t.Errorf("%s: the sink answered %q", cmd, out.String())
		}
	}
}

func TestSCPRefusals(t *testing.T) {
	c := cfg(t, false, 8899)
	for _, tc := range []struct {
		cmd  string
		in   io.Reader
		want string
	}{
		{"scp -f /etc/shadow", strings.NewReader(""), "only a copy to this host"},
		{"scp -t /root/.ssh", strings.NewReader(""), "only cloudstack.py"},
		{"scp -r -t .", strings.NewReader(""), "scp -r"},
		{"scp -t .", scpClient("authorized_keys", []byte("key")), "only cloudstack.py and storagehealth.py are taken"},
		{"scp -t .", scpClient("../cloudstack.py", []byte("x")), "only cloudstack.py and storagehealth.py are taken"},
		{"scp -t .", strings.NewReader("C0755 99999999 cloudstack.py\n"), "more than"},
		{"scp -t .", strings.NewReader("D0755 0 dir\n"), "folders"},
		{"scp -t .", strings.NewReader("C0755 100 cloudstack.py\nshort"), "cut short"},
		{"scp -t .", strings.NewReader(""), "no file came"},
		{"scp -t .", strings.NewReader(strings.Repeat("C", 100000)), "longer than 512"},
		{"scp -t .", strings.NewReader("C0755 3 " + strings.Repeat("x", 600) + "\n"), "longer than 512"},
		{"scp -t -d /opt/cloudstack", strings.NewReader(""), "only cloudstack.py and storagehealth.py"},
	} {
		var out, errb bytes.Buffer
		if rc := Run(tc.cmd, c, tc.in, &out, &errb); rc != 1 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%s: status %d, %q; want 1 and %q", tc.cmd, rc, errb.String(), tc.want)
		}
	}
}

func TestModuleRun(t *testing.T) {
	for _, tc := range []struct {
		cmd      string
		ssl      bool
		port     int
		rc       int
		inStderr string
	}{
		{"./cloudstack.py --ssl=false --port=8899", false, 8899, 0, ""},
		{"./cloudstack.py --ssl=true --port=8899", true, 8899, 0, ""},
		{"python ./cloudstack.py --ssl=false --port=0", false, 8899, 0, ""},
		{"/opt/cloudstack/bin/cloudstack.py --ssl=true --port=8899", true, 8899, 0, ""},
		{"/opt/cloudstack/bin/cloudstack.py --ssl= --port=8899", true, 8899, 0, ""},
		{"mkdir -p /opt/cloudstack/bin", false, 8899, 0, ""},
		{"./cloudstack.py --ssl=true --port=8899", false, 8899, 1, "[server] ssl = yes (it is no)"},
		{"./cloudstack.py --ssl=false --port=9000", false, 8899, 1, "[server] port = 9000 (it is 8899)"},
		{"./cloudstack.py --exec=ovs_mkdirs --opts=/", false, 8899, 1, "only --ssl= and --port="},
		{"./cloudstack.py --port=x", false, 8899, 1, "not a port"},
	} {
		var out, errb bytes.Buffer
		rc := Run(tc.cmd, cfg(t, tc.ssl, tc.port), strings.NewReader(""), &out, &errb)
		if rc != tc.rc || !strings.Contains(errb.String(), tc.inStderr) {
			t.Errorf("%s (ssl %v port %d): status %d, %q", tc.cmd, tc.ssl, tc.port, rc, errb.String())
		}
		if rc == 1 && strings.Contains(tc.inStderr, "[server]") && !strings.Contains(errb.String(), "/etc/ovs-agent/agent.ini") {
			t.Errorf("%s: the message does not name agent.ini: %q", tc.cmd, errb.String())
		}
	}
}

func TestOtherCommandsRefused(t *testing.T) {
	for _, cmd := range []string{"", "bash", "sh -c id", "mkdir -p /root/.ssh", "/opt/cloudstack/bin/storagehealth.py -g x", "./cloudstack.py; id", "scp -t . && id", "cat /etc/shadow", "./cloudstack.py --port=$(id)", `./cloudstack.py "--port=8899`} {
		var out, errb bytes.Buffer
		if rc := Run(cmd, cfg(t, false, 8899), strings.NewReader(""), &out, &errb); rc != 1 || errb.Len() == 0 || out.Len() != 0 {
			t.Errorf("%q: status %d, out %q, err %q", cmd, rc, out.String(), errb.String())
		}
	}
}

func TestSplit(t *testing.T) {
	got, err := split(`scp -t -d ""  'a b' c`)
	if err != nil || strings.Join(got, "|") != "scp|-t|-d||a b|c" {
		t.Fatalf("split: %q %v", got, err)
	}
	if _, err := split(strings.Repeat("a", maxCommand+1)); err == nil {
		t.Fatal("a long command was taken")
	}
}

func FuzzRun(f *testing.F) {
	f.Add("scp -t .", "C0755 3 cloudstack.py\nabc\x00")
	f.Add("./cloudstack.py --ssl=true --port=8899", "")
	c, err := config.Parse("/etc/ovs-agent/agent.ini", []byte("[server]\nssl = no\nport = 8899\n"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cmd, in string) {
		var out, errb bytes.Buffer
		rc := Run(cmd, c, strings.NewReader(in), &out, &errb)
		if rc != 0 && rc != 1 {
			t.Fatalf("status %d", rc)
		}
		if rc == 1 && errb.Len() == 0 {
			t.Fatal("a refusal without a message")
		}
	})
}

func TestSCPOfBothScripts(t *testing.T) {
	var in bytes.Buffer
	for _, f := range []struct{ name, content string }{{"storagehealth.py", "#!/usr/bin/python\n# health\n"}, {"cloudstack.py", "#!/usr/bin/python\n"}} {
		fmt.Fprintf(&in, "C0755 %d %s\n%s\x00", len(f.content), f.name, f.content)
	}
	var out, errb bytes.Buffer
	if rc := Run("scp -t -d /opt/cloudstack/bin", cfg(t, false, 8899), &in, &out, &errb); rc != 0 || out.String() != "\x00\x00\x00\x00\x00" {
		t.Fatalf("status %d, answered %q, %s", rc, out.String(), errb.String())
	}
}
