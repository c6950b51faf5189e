package tap

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inNetns runs f on an OS thread in a network namespace of its own, made
// for this call. The thread is never handed back to the scheduler: it
// ends with f, and the namespace with every bridge and tap device in it
// goes with it, so nothing is left on the host even if a check fails
// halfway. Programs f starts (ip, qemu) run in the namespace too. f must
// report with t.Error, not t.Fatal (it is not the test's goroutine).
func inNetns(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN) for a network namespace")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread and its namespace end here
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare a network namespace: %v", err)
			return
		}
		f()
	}()
	<-done
}

// uniqueName is a short interface name with a random part.
func uniqueName(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// ip runs iproute2's ip in the calling thread's namespace.
func ip(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	return string(out), err
}

// makeBridge makes a bridge with iproute2 (not with this package, so that
// the checks do not trust the code under test).
func makeBridge(t *testing.T, name string) bool {
	if out, err := ip("link", "add", "name", name, "type", "bridge"); err != nil {
		t.Errorf("ip link add %s type bridge: %v\n%s", name, err, out)
		return false
	}
	return true
}

func TestCreateOnBridge(t *testing.T) {
	inNetns(t, func() {
		br := uniqueName("brt")
		if !makeBridge(t, br) {
			return
		}
		name, err := Name("c6a2b5e0-37b1-4d0a-8b2e-4f5e6a7b8c9d", 0)
		if err != nil {
			t.Error(err)
			return
		}
		f, err := Create(name, br)
		if err != nil {
			t.Errorf("Create(%s, %s): %v", name, br, err)
			return
		}
		out, err := ip("-o", "link", "show", "dev", name)
		if err != nil {
			t.Errorf("ip link show %s after Create: %v\n%s", name, err, out)
		}
		if !strings.Contains(out, " master "+br+" ") {
			t.Errorf("tap %s is not on bridge %s:\n%s", name, br, out)
		}
		if !regexp.MustCompile(`<[^>]*\bUP\b[^>]*>`).MatchString(out) {
			t.Errorf("tap %s is not up:\n%s", name, out)
		}
		// The descriptor is a tap with the virtio-net header, as QEMU
		// probes it (TUNGETIFF).
		ifr, _ := unix.NewIfreq("")
		if err := unix.IoctlIfreq(int(f.Fd()), unix.TUNGETIFF, ifr); err != nil {
			t.Errorf("TUNGETIFF: %v", err)
		} else if fl := ifr.Uint16(); fl&unix.IFF_TAP == 0 || fl&unix.IFF_NO_PI == 0 || fl&unix.IFF_VNET_HDR == 0 || ifr.Name() != name {
			t.Errorf("TUNGETIFF: name %q flags %#x", ifr.Name(), fl)
		}
		// The same name again is in use.
		if f2, err := Create(name, br); err == nil {
			f2.Close()
			t.Error("a second Create of the same name succeeded")
		} else if !strings.Contains(err.Error(), "in use by another running process") {
			t.Errorf("second Create: %v", err)
		}
		f.Close()
		if out, err := ip("link", "show", "dev", name); err == nil {
			t.Errorf("tap %s is still there after its descriptor closed:\n%s", name, out)
		}
	})
}

func TestCreateErrors(t *testing.T) {
	inNetns(t, func() {
		_, err := Create("vifok.0", "xenbr9")
		want := "create tap device vifok.0: bridge xenbr9 does not exist on this host: create it or change the vif's bridge="
		if err == nil || err.Error() != want {
			t.Errorf("missing bridge:\n got: %v\nwant: %s", err, want)
		}
		if out, err := ip("link", "show", "dev", "vifok.0"); err == nil {
			t.Errorf("a failed Create left the tap:\n%s", out)
		}
		_, err = Create("vif0123456789abc", "xenbr0")
		want = `create tap device: interface name "vif0123456789abc" is 16 bytes long; Linux allows at most 15`
		if err == nil || err.Error() != want {
			t.Errorf("long name:\n got: %v\nwant: %s", err, want)
		}
		_, err = Create("vif/0", "xenbr0")
		if err == nil || !strings.Contains(err.Error(), "only letters, digits") {
			t.Errorf("name with a slash: %v", err)
		}
		// lo exists but is not a bridge; nor is another tap.
		err = BridgeExists("lo")
		if want := "lo on this host is a device, not a bridge: change the vif's bridge= to a bridge"; err == nil || err.Error() != want {
			t.Errorf("lo:\n got: %v\nwant: %s", err, want)
		}
		other := uniqueName("tpo")
		f, err := openTap(other, unix.IFF_TAP|unix.IFF_NO_PI)
		if err != nil {
			t.Errorf("open a tap: %v", err)
			return
		}
		defer f.Close()
		if _, err := Create("vifnb.0", other); err == nil || !strings.Contains(err.Error(), "is a tun, not a bridge") {
			t.Errorf("a tap as the bridge: %v", err)
		}
	})
}

// Remove deletes a persistent tap left behind, and refuses one a process
// holds and anything that is not a tap.
func TestRemove(t *testing.T) {
	inNetns(t, func() {
		name := uniqueName("tpr")
		if out, err := ip("tuntap", "add", "dev", name, "mode", "tap", "vnet_hdr"); err != nil {
			t.Errorf("ip tuntap add: %v\n%s", err, out)
			return
		}
		if err := Remove(name); err != nil {
			t.Errorf("Remove(%s): %v", name, err)
		}
		if out, err := ip("link", "show", "dev", name); err == nil {
			t.Errorf("Remove left %s:\n%s", name, out)
		}
		if err := Remove(name); err != nil {
			t.Errorf("Remove of a name that does not exist: %v", err)
		}
		br := uniqueName("brr")
		if !makeBridge(t, br) {
			return
		}
		f, err := Create(name, br)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		if err := Remove(name); err == nil || !strings.Contains(err.Error(), "in use") {
			t.Errorf("Remove of a tap a process holds: %v", err)
		}
		if err := Remove(br); err == nil || !strings.Contains(err.Error(), "not a tap device") {
			t.Errorf("Remove of a bridge: %v", err)
		}
		if _, err := ip("link", "show", "dev", br); err != nil {
			t.Errorf("Remove deleted the bridge %s", br)
		}
	})
}

// QEMU takes the descriptor as the backend of a virtio-net card.
func TestQEMUTakesDescriptor(t *testing.T) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatalf("qemu-system-x86_64 is not installed (Debian's qemu-system-x86): %v", err)
	}
	inNetns(t, func() {
		br := uniqueName("brq")
		if !makeBridge(t, br) {
			return
		}
		name := uniqueName("tpq")
		f, err := Create(name, br)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		cmd := exec.Command(qemu, "-machine", "pc", "-accel", "tcg", "-nodefaults", "-display", "none", "-S",
			"-netdev", "tap,id=n0,fd=3", "-device", "virtio-net-pci,netdev=n0,mac="+MAC(t.Name(), 0), "-monitor", "stdio")
		cmd.ExtraFiles = []*os.File{f}
		cmd.Stdin = strings.NewReader("info network\nquit\n")
		cmd.WaitDelay = time.Minute
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("qemu with the tap descriptor: %v\n%s", err, out)
			return
		}
		if !regexp.MustCompile(`n0: index=\d+,type=tap,fd=3`).Match(out) {
			t.Errorf("qemu's network does not show the tap backend:\n%s", out)
		}
	})
}

func TestName(t *testing.T) {
	seen := map[string]string{}
	for _, id := range []string{"c6a2b5e0-37b1-4d0a-8b2e-4f5e6a7b8c9d", "c6a2b5e0-37b1-4d0a-8b2e-4f5e6a7b8c9e", "c6a2b5e0-37b1-4d0a-8b2e-4f5e6a7b8c9d incoming"} {
		for _, index := range []int{0, 1, 99, MaxIndex} {
			n, err := Name(id, index)
			if err != nil {
				t.Fatalf("Name(%q, %d): %v", id, index, err)
			}
			if err := CheckName(n); err != nil {
				t.Errorf("Name(%q, %d) = %q: %v", id, index, n, err)
			}
			if !regexp.MustCompile(`^vif[0-9a-f]{8}\.[0-9]{1,3}$`).MatchString(n) || !strings.HasSuffix(n, fmt.Sprintf(".%d", index)) {
				t.Errorf("Name(%q, %d) = %q", id, index, n)
			}
			key := fmt.Sprintf("%s/%d", id, index)
			if o, dup := seen[n]; dup {
				t.Errorf("Name gives %q for %s and %s", n, o, key)
			}
			seen[n] = key
			if again, _ := Name(id, index); again != n {
				t.Errorf("Name(%q, %d) is not stable: %q then %q", id, index, n, again)
			}
		}
	}
	for _, index := range []int{-1, MaxIndex + 1} {
		if _, err := Name("x", index); err == nil {
			t.Errorf("Name(x, %d) succeeded", index)
		}
	}
	if _, err := Name("", 0); err == nil {
		t.Error("Name with an empty id succeeded")
	}
}

func TestMAC(t *testing.T) {
	re := regexp.MustCompile(`^00:16:3e:[0-7][0-9a-f]:[0-9a-f]{2}:[0-9a-f]{2}$`)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		m := MAC(fmt.Sprintf("uuid-%d", i/4), i%4)
		if !re.MatchString(m) {
			t.Fatalf("MAC() = %q", m)
		}
		seen[m] = true
	}
	// 1000 addresses out of 2^23: a handful of repeats at most, unless the
	// lower bits do not follow the domain and the index.
	if len(seen) < 990 {
		t.Errorf("%d distinct addresses in 1000", len(seen))
	}
	if MAC("u-1", 0) != MAC("u-1", 0) || MAC("u-1", 0) == MAC("u-1", 1) {
		t.Errorf("MAC is not a function of the domain and the index")
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"vif1.0", "xenbr0", "a", "vif_ab-cd.999", "123456789012345"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "1234567890123456", "a b", "a/b", "a:b", "é"} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) accepted it", bad)
		}
	}
}

func TestParseLinkReplyMalformed(t *testing.T) {
	for _, b := range [][]byte{nil, {1, 2, 3}, make([]byte, 16), {0xff, 0xff, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := parseLinkReply(b); err == nil {
			t.Errorf("parseLinkReply(%x) accepted it", b)
		}
	}
}
