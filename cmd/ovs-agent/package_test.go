package main

import (
	"os"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/config"
)

// The Debian package's maintainer scripts and contents name the paths the
// agent uses by default: the state directory its postinst makes and its
// postrm purges, the configuration file it installs, the log directory.
func TestPackageAgreesWithDefaults(t *testing.T) {
	def := config.Default()
	read := func(p string) string {
		b, err := os.ReadFile("../../packaging/" + p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, script := range []string{"debian/postinst", "debian/postrm"} {
		if s := read(script); !strings.Contains(s, "\nstate_dir="+def.Agent.StateDir+"\n") {
			t.Errorf("%s does not set state_dir=%s ([agent] state_dir's default)", script, def.Agent.StateDir)
		}
	}
	if s := read("debian/postinst"); !strings.Contains(s, "\nconfig="+DefaultConfig+"\n") {
		t.Errorf("debian/postinst does not check %s for a password", DefaultConfig)
	}
	if s := read("nfpm.yaml"); !strings.Contains(s, "  - src: config/agent.ini.example\n    dst: "+DefaultConfig+"\n    type: config\n") {
		t.Errorf("nfpm.yaml does not install the example as the conffile %s", DefaultConfig)
	}
}
