package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// Helpers of the qemu engine's end-to-end tests: the test guest (see
// testguest_test.go) as a domain of an agent, from the vm.cfg of the
// Oracle VM guide (kernel, ramdisk, extra, disk, vif), its console read
// through domain.console, its ext4 disk and a bridge of its own. Every
// wait is bounded and generous: TCG on two shared cores is slow.

// qemuBoot bounds a boot of the test guest to its READY line.
const qemuBoot = 3 * time.Minute

// guestVM is one test guest as a vm.cfg.
type guestVM struct {
	Name        string
	MemMiB      int // default 256
	VCPUs       int // default 1
	MemcheckMiB int // memcheck_mib; default 32, -1 for none
	Disk        string
	Bridge, MAC string
	IP, Ping    string   // testguest_ip= and testguest_ping= on the command line
	Cmdline     []string // more kernel arguments
	Lines       []string // more vm.cfg lines (on_poweroff = 'destroy', ...)
}

// cfg renders the vm.cfg: a direct boot of the test guest's kernel and
// initrd, as the guide's kernel/ramdisk/extra keys say.
func (v guestVM) cfg(t testing.TB) string {
	dir := testGuestDir(t)
	if v.MemMiB == 0 {
		v.MemMiB = 256
	}
	if v.VCPUs == 0 {
		v.VCPUs = 1
	}
	mc := v.MemcheckMiB
	switch mc {
	case 0:
		mc = 32
	case -1:
		mc = 0
	}
	args := append([]string{"console=ttyS0", "quiet", "no_timer_check", fmt.Sprintf("memcheck_mib=%d", mc)}, v.Cmdline...)
	if v.IP != "" {
		args = append(args, "testguest_ip="+v.IP)
	}
	if v.Ping != "" {
		args = append(args, "testguest_ping="+v.Ping)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# the test guest (test/guest/build.sh)\nname = '%s'\nmemory = %d\nvcpus = %d\n", v.Name, v.MemMiB, v.VCPUs)
	fmt.Fprintf(&b, "kernel = '%s'\nramdisk = '%s'\nextra = '%s'\n",
		filepath.Join(dir, "vmlinux"), filepath.Join(dir, "initrd"), strings.Join(args, " "))
	if v.Disk != "" {
		fmt.Fprintf(&b, "disk = ['file:%s,xvda,w']\n", v.Disk)
	}
	if v.Bridge != "" {
		mac := ""
		if v.MAC != "" {
			mac = ",mac=" + v.MAC
		}
		fmt.Fprintf(&b, "vif = ['bridge=%s%s']\n", v.Bridge, mac)
	}
	for _, l := range v.Lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// qemuAgent starts an agent for qemu domains on listen (127.0.0.x), with
// its relocation listener when reloc, the accelerator of the test guest,
// and the test guest's folder among the files domains may name. extra
// lines go to [qemu].
func qemuAgent(t testing.TB, listen string, reloc bool, extra ...string) *Agent {
	c := agentConf{Listen: listen, FileDirs: []string{filepath.Dir(t.TempDir()), testGuestDir(t)},
		Extra: map[string][]string{
			"agent": {"memory_reserve = 0"},
			"qemu":  append([]string{"accel = " + testGuestAccel(t)}, extra...),
		}}
	if reloc {
		c.RelocPort = freePort(t, listen)
	}
	return startAgent(t, c)
}

// qemuPair is a source agent on 127.0.0.2 and a target on 127.0.0.3.
func qemuPair(t testing.TB) (*Agent, *Agent) {
	return qemuAgent(t, "127.0.0.2", true), qemuAgent(t, "127.0.0.3", true)
}

// startGuest creates v on a, starts it and waits for its READY line and
// two OK lines of its memory checker (when it runs one).
func startGuest(t testing.TB, a *Agent, v guestVM) {
	t.Helper()
	a.call(t, "domain.create", nil, v.cfg(t))
	a.call(t, "domain.start", nil, v.Name)
	a.waitConsoleLines(t, v.Name, "TESTGUEST READY", qemuBoot, func(l []string) bool {
		return countFrom(l, "TESTGUEST READY", "") >= 0
	})
	if v.MemcheckMiB != -1 {
		a.waitMemcheck(t, v.Name, 2)
	}
}

// consoleLines reads the domain's console through domain.console (the
// newest MiB) as lines.
func (a *Agent) consoleLines(t testing.TB, name string) []string {
	t.Helper()
	var c struct {
		Data string `xmlrpc:"data"`
	}
	a.call(t, "domain.console", &c, name, -1, 1<<20)
	return strings.Split(strings.ReplaceAll(c.Data, "\r", ""), "\n")
}

// waitConsoleLines polls domain.console until done holds, failing on a
// CORRUPT or FAILED line of the guest or the timeout.
func (a *Agent) waitConsoleLines(t testing.TB, name, what string, timeout time.Duration, done func([]string) bool) []string {
	t.Helper()
	start := time.Now()
	for {
		lines := a.consoleLines(t, name)
		for _, l := range lines {
			if strings.Contains(l, "CORRUPT") || strings.Contains(l, "FAILED") {
				t.Fatalf("%s console: %s", name, l)
			}
		}
		if done(lines) {
			t.Logf("%s: %s after %v", name, what, time.Since(start).Round(time.Millisecond))
			return lines
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: no %s within %v; console:\n%s", name, what, timeout, strings.Join(lines, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitMemcheck waits for n more OK lines of the memory checker than the
// console shows now (no CORRUPT line meanwhile).
func (a *Agent) waitMemcheck(t testing.TB, name string, n int) {
	t.Helper()
	seen := countFrom(a.consoleLines(t, name), "", "OK memcheck")
	a.waitConsoleLines(t, name, fmt.Sprintf("%d more OK lines of the memory checker", n), 2*time.Minute, func(l []string) bool {
		return countFrom(l, "", "OK memcheck") >= seen+n
	})
}

// waitInfoWithin polls domain.info until ok says yes, at most timeout.
func (a *Agent) waitInfoWithin(t testing.TB, name, what string, timeout time.Duration, ok func(qemuInfo) bool) qemuInfo {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var in qemuInfo
	for {
		in = a.qinfo(t, name)
		if ok(in) {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("domain %s: %s never happened within %v; last info %+v", name, what, timeout, in)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// qemuInfo is domain.info with what a qemu domain adds.
type qemuInfo struct {
	domInfo
	Accel string `xmlrpc:"accel"`
	VNC   string `xmlrpc:"vnc"`
}

// qinfo is domain.info of a qemu domain (kolo/xmlrpc does not fill
// embedded structs: the two halves are read apart).
func (a *Agent) qinfo(t testing.TB, name string) qemuInfo {
	t.Helper()
	var in qemuInfo
	in.domInfo = a.info(t, name)
	var extra struct {
		Accel string `xmlrpc:"accel"`
		VNC   string `xmlrpc:"vnc"`
	}
	a.call(t, "domain.info", &extra, name)
	in.Accel, in.VNC = extra.Accel, extra.VNC
	return in
}

// known says whether a has a domain name.
func (a *Agent) known(t testing.TB, name string) bool {
	t.Helper()
	var in domInfo
	err := a.Unix().Call(context.Background(), "domain.info", &in, name)
	if f, ok := err.(*client.Fault); ok && f.Code == xmlrpc.NotFound {
		return false
	} else if err != nil {
		t.Fatalf("domain.info[%s]: %v", name, err)
	}
	return true
}

// ext4Disk makes a sparse ext4 image of sizeMiB holding files (name ->
// content), with mkfs.ext4 -d: nothing is mounted.
func ext4Disk(t testing.TB, sizeMiB int, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Truncate(int64(sizeMiB) << 20)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", root, img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 (apt-get install e2fsprogs): %v\n%s", err, out)
	}
	return img
}

// e2fsckClean checks the image with e2fsck -fn (nothing changed) and
// fails unless it is clean.
func e2fsckClean(t testing.TB, img string) {
	t.Helper()
	out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn %s: %v (the guest did not leave its disk clean)\n%s", img, err, out)
	}
}

// diskFile reads a file of the ext4 image with debugfs (nothing mounted).
func diskFile(t testing.TB, img, name string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "cat /"+name, img).Output()
	if err != nil {
		t.Fatalf("debugfs cat %s on %s: %v", name, img, err)
	}
	return string(out)
}

// randomHex is n random bytes in hex.
func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testMAC is a random address with the Xen prefix the guide uses.
func testMAC(t testing.TB) string {
	h := randomHex(t, 3)
	return "00:16:3e:" + h[0:2] + ":" + h[2:4] + ":" + h[4:6]
}

// testBridge makes a bridge on the host with a name of its own (no
// address, no uplink: only the test's guests are on it) and removes it
// at the end.
func testBridge(t testing.TB) string {
	t.Helper()
	name := "ovt" + randomHex(t, 4)
	if out, err := exec.Command("ip", "link", "add", "name", name, "type", "bridge").CombinedOutput(); err != nil {
		t.Fatalf("ip link add %s type bridge: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "link", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip link del %s: %v\n%s", name, err, out)
		}
	})
	if out, err := exec.Command("ip", "link", "set", name, "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s up: %v\n%s", name, err, out)
	}
	return name
}

// timed logs how long the test took, when it ends.
func timed(t testing.TB) {
	start := time.Now()
	t.Cleanup(func() { t.Logf("%s took %v", t.Name(), time.Since(start).Round(time.Millisecond)) })
}
