package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCloudStackSSH: what CloudStack's plugin runs over ssh when it adds
// the host, through the command sshd would run, on an agent.ini file.
func TestCloudStackSSH(t *testing.T) {
	ini := filepath.Join(t.TempDir(), "agent.ini")
	if err := os.WriteFile(ini, []byte("[server]\nssl = no\nport = 8899\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sshRun := func(command, stdin string) (int, string, string) {
		t.Setenv("SSH_ORIGINAL_COMMAND", command)
		var out, errb bytes.Buffer
		code := run([]string{"cloudstack-ssh", "--config", ini}, strings.NewReader(stdin), &out, &errb)
		return code, out.String(), errb.String()
	}
	module := "#!/usr/bin/python\n"
	copy := fmt.Sprintf("C0755 %d cloudstack.py\n%s\x00", len(module), module)
	if code, out, errb := sshRun(`scp -t -d ""`, copy); code != 0 || out != "\x00\x00\x00" {
		t.Fatalf("scp: exit %d, %q, %s", code, out, errb)
	}
	if code, out, errb := sshRun("./cloudstack.py --ssl=false --port=8899", ""); code != 0 || !strings.Contains(out, "serves the module's calls") {
		t.Fatalf("./cloudstack.py: exit %d, %q, %s", code, out, errb)
	}
	if code, _, errb := sshRun("./cloudstack.py --ssl=true --port=8899", ""); code != 1 || !strings.Contains(errb, "[server] ssl = yes") || !strings.Contains(errb, ini) {
		t.Fatalf("./cloudstack.py with another ssl: exit %d, %s", code, errb)
	}
	// a newer plugin's dialogue
	if code, _, errb := sshRun("mkdir -p /opt/cloudstack/bin", ""); code != 0 {
		t.Fatalf("mkdir: exit %d, %s", code, errb)
	}
	if code, out, errb := sshRun("scp -t -d /opt/cloudstack/bin", copy); code != 0 || out != "\x00\x00\x00" {
		t.Fatalf("scp into /opt/cloudstack/bin: exit %d, %q, %s", code, out, errb)
	}
	if code, _, errb := sshRun("/opt/cloudstack/bin/cloudstack.py --ssl=false --port=8899", ""); code != 0 {
		t.Fatalf("/opt/cloudstack/bin/cloudstack.py: exit %d, %s", code, errb)
	}
	if _, err := os.Stat("/opt/cloudstack"); err == nil {
		t.Log("/opt/cloudstack exists on this host (not made by this test)")
	}
	// a configuration that does not parse: its text is not echoed to the client
	os.WriteFile(ini, []byte("root:$6$secrethash:19000:0:99999:7:::\n"), 0o600)
	if code, _, errb := sshRun("./cloudstack.py --ssl=false --port=8899", ""); code != 1 || strings.Contains(errb, "secrethash") || !strings.Contains(errb, "check-config") {
		t.Fatalf("a bad configuration: exit %d, %s", code, errb)
	}
	os.WriteFile(ini, []byte("[server]\nssl = no\nport = 8899\n"), 0o600)
	if code, out, errb := sshRun("", ""); code != 1 || out != "" || !strings.Contains(errb, "host setup only") {
		t.Fatalf("a shell: exit %d, %q, %s", code, out, errb)
	}
	if code, _, errb := sshRun("id", ""); code != 1 || !strings.Contains(errb, "refused") {
		t.Fatalf("another command: exit %d, %s", code, errb)
	}
}
