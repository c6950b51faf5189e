package hostnet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/internal/atomicfile"
	"github.com/ovs-agent/ovs-agent/internal/testnet"
)

// These tests make real devices in the host's network namespace, named
// with the test's prefix (hn<pid>), and remove them by name.

func prefix() string { return fmt.Sprintf("hn%04d", os.Getpid()%10000) }

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// devices makes a veth pair per name (name and name+"p") and removes
// every device with the prefix when the test ends.
func devices(t *testing.T, names ...string) {
	t.Helper()
	t.Cleanup(func() {
		ents, _ := os.ReadDir("/sys/class/net")
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix()) {
				exec.Command("ip", "link", "del", e.Name()).Run()
			}
		}
	})
	for _, n := range names {
		ipCmd(t, "link", "add", n, "type", "veth", "peer", "name", n+"p")
	}
}

func newManager(t *testing.T) (*Manager, []string) {
	t.Helper()
	return New(Config{RecordFile: filepath.Join(t.TempDir(), "network.json")}), []string{prefix() + "*"}
}

func exists(name string) bool { _, err := os.Lstat("/sys/class/net/" + name); return err == nil }

func master(name string) string {
	l, _ := os.Readlink("/sys/class/net/" + name + "/master")
	if l == "" {
		return ""
	}
	return filepath.Base(l)
}

func record(t *testing.T, m *Manager) []Change {
	t.Helper()
	cs, err := m.Record()
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestLocalBridge(t *testing.T) {
	devices(t)
	m, pats := newManager(t)
	ctx := context.Background()
	br := prefix() + "c0"
	if err := m.StartBridge(ctx, pats, br, ""); err != nil {
		t.Fatal(err)
	}
	if !m.isBridge(br) {
		t.Fatalf("%s is not a bridge", br)
	}
	if up, _ := os.ReadFile("/sys/class/net/" + br + "/flags"); len(up) == 0 {
		t.Fatalf("no flags for %s", br)
	}
	if err := m.StartBridge(ctx, pats, br, ""); err != nil {
		t.Fatalf("a second start: %v", err)
	}
	if cs := record(t, m); !slices.Equal(cs, []Change{{Kind: KindBridge, Name: br}}) {
		t.Fatalf("record %+v", cs)
	}
	if err := m.StopBridge(ctx, pats, br, ""); err != nil {
		t.Fatal(err)
	}
	if exists(br) || len(record(t, m)) != 0 {
		t.Fatalf("after stop: exists %v, record %+v", exists(br), record(t, m))
	}
	// a repeated stop (a reply the manager lost) is no error and no change
	if err := m.StopBridge(ctx, pats, br, ""); err != nil || len(record(t, m)) != 0 {
		t.Fatalf("stop of a bridge that is not there: %v", err)
	}
}

func TestBridgeWithPort(t *testing.T) {
	a, x := prefix()+"a", prefix()+"x"
	devices(t, a, x)
	m, pats := newManager(t)
	ctx := context.Background()
	br := prefix() + "br"
	if err := m.StartBridge(ctx, pats, br, a); err != nil {
		t.Fatal(err)
	}
	if master(a) != br {
		t.Fatalf("%s is in %q, want %s", a, master(a), br)
	}
	if err := m.StartBridge(ctx, pats, br, a); err != nil {
		t.Fatalf("a second start: %v", err)
	}
	// a port the agent did not add (a domain's vif) keeps the bridge
	ipCmd(t, "link", "set", x, "master", br)
	if err := m.StopBridge(ctx, pats, br, a); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), x) {
		t.Fatalf("stop with a foreign port: %v", err)
	}
	if !exists(br) || master(a) != br {
		t.Fatalf("a refused stop changed the bridge")
	}
	// and a stop naming that port is refused: the host put it there
	if err := m.StopBridge(ctx, pats, br, x); !errors.Is(err, ErrNotMade) {
		t.Fatalf("stop naming the host's port: %v", err)
	}
	ipCmd(t, "link", "set", x, "nomaster")
	if err := m.StopBridge(ctx, pats, br, a); err != nil {
		t.Fatal(err)
	}
	if exists(br) || !exists(a) || master(a) != "" || len(record(t, m)) != 0 {
		t.Fatalf("after stop: bridge %v, port %v in %q, record %+v", exists(br), exists(a), master(a), record(t, m))
	}
}

func TestBridgeRefusals(t *testing.T) {
	a, b := prefix()+"a", prefix()+"b"
	devices(t, a, b)
	m, pats := newManager(t)
	ctx := context.Background()
	br := prefix() + "br"

	if err := m.StartBridge(ctx, nil, br, ""); !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), "network_devices is empty") {
		t.Errorf("no patterns: %v", err)
	}
	if err := m.StartBridge(ctx, []string{"xenbr*"}, br, ""); !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), "xenbr*") {
		t.Errorf("not among the patterns: %v", err)
	}
	if err := m.StartBridge(ctx, []string{br}, br, a); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("port not among the patterns: %v", err)
	}
	if err := m.StartBridge(ctx, pats, "../x", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}
	if err := m.StartBridge(ctx, pats, prefix()+"0123456789", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("name too long: %v", err)
	}
	if err := m.StartBridge(ctx, pats, a, ""); !errors.Is(err, ErrExists) {
		t.Errorf("a veth's name as a bridge: %v", err)
	}
	if err := m.StartBridge(ctx, pats, br, prefix()+"nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing port: %v", err)
	}
	if exists(br) {
		t.Errorf("a refused start left bridge %s", br)
	}

	// a port with an IPv4 address: refused, the new bridge removed again
	a9 := testnet.Addr(testnet.Free(t), 9)
	ipCmd(t, "addr", "add", a9.String(), "dev", a)
	if err := m.StartBridge(ctx, pats, br, a); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), a9.String()) {
		t.Errorf("port with an address: %v", err)
	}
	if exists(br) || master(a) != "" {
		t.Errorf("a refused start left bridge %v, port in %q", exists(br), master(a))
	}

	// a port of the host's bridge
	hostBr := prefix() + "hb"
	ipCmd(t, "link", "add", hostBr, "type", "bridge")
	ipCmd(t, "link", "set", b, "master", hostBr)
	if err := m.StartBridge(ctx, pats, br, b); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), hostBr) {
		t.Errorf("port of another bridge: %v", err)
	}
	if master(b) != hostBr || exists(br) {
		t.Errorf("a refused start moved %s to %q", b, master(b))
	}
	// the host's bridge: started is no change, a stop is refused
	if err := m.StartBridge(ctx, pats, hostBr, ""); err != nil {
		t.Errorf("start of the host's bridge: %v", err)
	}
	if err := m.StopBridge(ctx, pats, hostBr, ""); !errors.Is(err, ErrNotMade) {
		t.Errorf("stop of the host's bridge: %v", err)
	}
	if !exists(hostBr) || master(b) != hostBr || len(record(t, m)) != 0 {
		t.Errorf("the host's bridge changed: exists %v, record %+v", exists(hostBr), record(t, m))
	}
}

func TestVLAN(t *testing.T) {
	a := prefix() + "a"
	devices(t, a)
	m, pats := newManager(t)
	ctx := context.Background()
	name, err := m.AddVLAN(ctx, pats, a, 160)
	vlan := a + ".160"
	if errors.Is(err, ErrUnsupported) {
		// this kernel has no 8021q (the PVM hosts): the refusal says so and leaves nothing
		t.Logf("kernel without 802.1Q: %v", err)
		if !strings.Contains(err.Error(), "8021q") || exists(vlan) || len(record(t, m)) != 0 {
			t.Fatalf("refused VLAN: %v, exists %v, record %+v", err, exists(vlan), record(t, m))
		}
		br := prefix() + "v160"
		if _, err := m.StartVLANBridge(ctx, pats, br, a, 160); !errors.Is(err, ErrUnsupported) || exists(br) || len(record(t, m)) != 0 {
			t.Fatalf("VLAN bridge without 802.1Q: %v; bridge left %v", err, exists(br))
		}
		return
	}
	if err != nil || name != vlan || !exists(vlan) {
		t.Fatalf("AddVLAN: %q %v", name, err)
	}
	if _, err := m.AddVLAN(ctx, pats, a, 160); err != nil {
		t.Fatalf("a second add: %v", err)
	}
	if err := m.RemoveVLAN(ctx, pats, a, 160); err != nil || exists(vlan) {
		t.Fatalf("RemoveVLAN: %v", err)
	}
	br := prefix() + "v160"
	if _, err := m.StartVLANBridge(ctx, pats, br, a, 160); err != nil || master(vlan) != br {
		t.Fatalf("StartVLANBridge: %v, %s in %q", err, vlan, master(vlan))
	}
	if err := m.RemoveVLAN(ctx, pats, a, 160); !errors.Is(err, ErrBusy) {
		t.Fatalf("remove of a bridge's port: %v", err)
	}
	if err := m.StopVLANBridge(ctx, pats, br, a, 160); err != nil || exists(br) || exists(vlan) || len(record(t, m)) != 0 {
		t.Fatalf("StopVLANBridge: %v", err)
	}
}

func TestVLANRefusals(t *testing.T) {
	a := prefix() + "a"
	devices(t, a)
	m, pats := newManager(t)
	ctx := context.Background()
	for _, id := range []int{0, 4095, -1} {
		if _, err := m.AddVLAN(ctx, pats, a, id); !errors.Is(err, ErrInvalid) {
			t.Errorf("VLAN %d: %v", id, err)
		}
	}
	if _, err := m.AddVLAN(ctx, []string{a}, a, 5); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("VLAN name not allowed: %v", err)
	}
	if _, err := m.AddVLAN(ctx, pats, prefix()+"none", 5); !errors.Is(err, ErrNotFound) {
		t.Errorf("VLAN on a missing device: %v", err)
	}
	if _, err := m.AddVLAN(ctx, pats, prefix()+"abcdefgh", 4000); !errors.Is(err, ErrInvalid) {
		t.Errorf("VLAN name too long: %v", err)
	}
	if err := m.RemoveVLAN(ctx, pats, a, 5); err != nil {
		t.Errorf("remove of a VLAN that is not there (a repeated remove): %v", err)
	}
}

func addrs(t *testing.T, dev string) []netip.Prefix {
	t.Helper()
	ps, err := ipv4(dev)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestSetIPv4AndRestore(t *testing.T) {
	a := prefix() + "a"
	devices(t, a)
	m, pats := newManager(t)
	ctx := context.Background()
	br := prefix() + "c0"
	if err := m.StartBridge(ctx, pats, br, a); err != nil {
		t.Fatal(err)
	}
	tn := testnet.Free(t)
	p1, _ := ParseIPv4(testnet.Addr(tn, 1).Addr().String(), "255.255.255.0")
	p2, _ := ParseIPv4(testnet.Addr(tn, 2).Addr().String(), "24")
	if err := m.SetIPv4(ctx, pats, br, p1); err != nil {
		t.Fatal(err)
	}
	if got := addrs(t, br); !slices.Equal(got, []netip.Prefix{p1}) {
		t.Fatalf("addresses %v", got)
	}
	if err := m.SetIPv4(ctx, pats, br, p2); err != nil {
		t.Fatal(err)
	}
	if got := addrs(t, br); !slices.Equal(got, []netip.Prefix{p2}) {
		t.Fatalf("addresses after a second set %v, want only %v", got, p2)
	}
	if err := m.SetIPv4(ctx, []string{a}, br, p1); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("set on a device not allowed: %v", err)
	}

	// a reboot takes the bridge; Restore makes it again with port and address
	ipCmd(t, "link", "del", br)
	restored, problems := m.Restore(ctx, pats)
	if len(problems) != 0 || len(restored) != 3 {
		t.Fatalf("restore: %+v, problems %v", restored, problems)
	}
	if !m.isBridge(br) || master(a) != br || !slices.Equal(addrs(t, br), []netip.Prefix{p2}) {
		t.Fatalf("after restore: bridge %v, %s in %q, addresses %v", m.isBridge(br), a, master(a), addrs(t, br))
	}
	if restored, problems := m.Restore(ctx, pats); len(restored) != 0 || len(problems) != 0 {
		t.Fatalf("a second restore: %+v %v", restored, problems)
	}
	// patterns that no longer allow them: reported, not made
	ipCmd(t, "link", "del", br)
	if restored, problems := m.Restore(ctx, []string{"xenbr*"}); len(restored) != 0 || len(problems) != 3 || exists(br) {
		t.Fatalf("restore not allowed: %+v %v", restored, problems)
	}
	if len(record(t, m)) != 3 {
		t.Fatalf("the record lost what was not made again: %+v", record(t, m))
	}
	// a stop of the recorded bridge that is gone forgets it
	if err := m.StopBridge(ctx, pats, br, a); err != nil || len(record(t, m)) != 0 {
		t.Fatalf("stop of a gone bridge: %v, record %+v", err, record(t, m))
	}
}

func TestRecordRefusesGarbage(t *testing.T) {
	m, pats := newManager(t)
	os.WriteFile(m.cfg.RecordFile, []byte(`{"changes":[{"kind":"bridge","name":"../etc"}]}`), 0o600)
	if err := m.StartBridge(context.Background(), pats, prefix()+"c0", ""); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("a bad record: %v", err)
	}
	if exists(prefix() + "c0") {
		t.Fatal("a bad record did not stop the change")
	}
}

func TestParseIPv4(t *testing.T) {
	for _, c := range []struct{ ip, mask, want string }{
		{"169.254.0.1", "255.255.0.0", "169.254.0.1/16"},
		{"10.1.2.3", "24", "10.1.2.3/24"},
		{"10.1.2.3", "/8", "10.1.2.3/8"},
		{"10.1.2.3", "255.255.255.255", "10.1.2.3/32"},
		{"10.1.2.3", "255.0.255.0", ""},
		{"10.1.2.3", "0.0.0.0", ""},
		{"10.1.2.3", "33", ""},
		{"::1", "64", ""},
		{"0.0.0.0", "8", ""},
		{"224.0.0.1", "8", ""},
		{"255.255.255.255", "8", ""},
		{"10.1.2", "8", ""},
	} {
		p, err := ParseIPv4(c.ip, c.mask)
		if c.want == "" {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s %s: %v, want refused", c.ip, c.mask, p)
			}
			continue
		}
		if err != nil || p.String() != c.want {
			t.Errorf("%s %s: %v %v, want %s", c.ip, c.mask, p, err, c.want)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, n := range []string{"eth0", "xenbr0.160", "control0", "bond0", "a_b-c", "123456789012345"} {
		if err := CheckName(n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	for _, n := range []string{"", ".", "..", "-x", ".x", "a/b", "a b", "a:b", "1234567890123456", "eth0\n"} {
		if err := CheckName(n); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q accepted", n)
		}
	}
}

func routeDevs(t *testing.T, m *Manager, p netip.Prefix) []string {
	t.Helper()
	rs, err := m.routesTo(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	var ds []string
	for _, r := range rs {
		ds = append(ds, r.Dev)
	}
	return ds
}

func TestSetRoute(t *testing.T) {
	x := prefix() + "x"
	devices(t, x)
	m, pats := newManager(t)
	ctx := context.Background()
	ctl := prefix() + "c0"
	if err := m.StartBridge(ctx, pats, ctl, ""); err != nil {
		t.Fatal(err)
	}
	tn := testnet.Free(t)
	half, err := ParseNetwork(testnet.Addr(tn, 129).Addr().String() + "/25") // an address inside: the network it names
	if err != nil || half.Bits() != 25 || half.Addr() != testnet.Addr(tn, 128).Addr() {
		t.Fatalf("ParseNetwork: %v %v", half, err)
	}
	// the host's route to it through a device not allowed: refused, kept
	ipCmd(t, "link", "set", x, "up")
	ipCmd(t, "route", "add", half.String(), "dev", x)
	if err := m.SetRoute(ctx, []string{ctl}, ctl, half); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), x) {
		t.Fatalf("a route through a device not allowed: %v", err)
	}
	if got := routeDevs(t, m, half); !slices.Equal(got, []string{x}) {
		t.Fatalf("a refused SetRoute changed the routes: %v", got)
	}
	// allowed: moved onto the bridge
	if err := m.SetRoute(ctx, pats, ctl, half); err != nil {
		t.Fatal(err)
	}
	if got := routeDevs(t, m, half); !slices.Equal(got, []string{ctl}) {
		t.Fatalf("routes to %s: %v, want only %s", half, got, ctl)
	}
	if err := m.SetRoute(ctx, pats, ctl, half); err != nil {
		t.Fatalf("again: %v", err)
	}
	if err := m.SetRoute(ctx, pats, prefix()+"none", half); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a missing device: %v", err)
	}
	for _, bad := range []string{"169.254.0.1", "::/64", "x/16", "10.0.0.0/0"} {
		if _, err := ParseNetwork(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseNetwork(%q) accepted", bad)
		}
	}
	// a reboot: the bridge and its route come back
	ipCmd(t, "link", "del", ctl)
	if restored, problems := m.Restore(ctx, pats); len(problems) != 0 || len(restored) != 2 {
		t.Fatalf("restore: %+v %v", restored, problems)
	}
	if got := routeDevs(t, m, half); !slices.Equal(got, []string{ctl}) {
		t.Fatalf("after restore, routes to %s: %v", half, got)
	}
	if err := m.StopBridge(ctx, pats, ctl, ""); err != nil || len(record(t, m)) != 0 {
		t.Fatalf("stop: %v, record %+v", err, record(t, m))
	}
}

// A record that cannot be written: a start is undone, a stop stands and
// says to repeat it; neither panics.
func TestRecordWriteFails(t *testing.T) {
	devices(t)
	m, pats := newManager(t)
	ctx := context.Background()
	br := prefix() + "c0"
	if err := m.StartBridge(ctx, pats, br, ""); err != nil {
		t.Fatal(err)
	}
	m.writeFile = func(string, []byte, fs.FileMode) error { return errors.New("disk full") }
	br2 := prefix() + "c1"
	if err := m.StartBridge(ctx, pats, br2, ""); !errors.Is(err, ErrRecord) || !strings.Contains(err.Error(), "undone") || exists(br2) {
		t.Fatalf("a start whose record cannot be written: %v; %s left %v", err, br2, exists(br2))
	}
	err := m.StopBridge(ctx, pats, br, "")
	if !errors.Is(err, ErrRecord) || !strings.Contains(err.Error(), "repeat the call") || exists(br) {
		t.Fatalf("a stop whose record cannot be written: %v; %s exists %v", err, br, exists(br))
	}
	// written again, the repeated stop forgets it
	m.writeFile = atomicfile.WriteFile
	if err := m.StopBridge(ctx, pats, br, ""); err != nil || len(record(t, m)) != 0 {
		t.Fatalf("the repeated stop: %v, record %+v", err, record(t, m))
	}
}

// Names that iproute2 would read as an abbreviated keyword (br:
// broadcast) are device names all the same.
func TestKeywordNames(t *testing.T) {
	m, _ := newManager(t)
	ctx := context.Background()
	for _, br := range []string{"br", "mtu"} {
		if exists(br) {
			t.Logf("%s exists on this host: not tried", br)
			continue
		}
		t.Cleanup(func() { exec.Command("ip", "link", "del", "dev", br).Run() })
		if err := m.StartBridge(ctx, []string{br}, br, ""); err != nil || !m.isBridge(br) {
			t.Fatalf("start %s: %v", br, err)
		}
		if err := m.StopBridge(ctx, []string{br}, br, ""); err != nil || exists(br) {
			t.Fatalf("stop %s: %v", br, err)
		}
	}
}

// Restore does not put a device that has an address now into its bridge,
// and a stop on the host's bridge leaves a port the host has moved.
func TestRestoreAndStopRespectTheHost(t *testing.T) {
	a, b := prefix()+"a", prefix()+"b"
	devices(t, a, b)
	m, pats := newManager(t)
	ctx := context.Background()
	br := prefix() + "br"
	if err := m.StartBridge(ctx, pats, br, a); err != nil {
		t.Fatal(err)
	}
	ipCmd(t, "link", "del", "dev", br)
	a9 := testnet.Addr(testnet.Free(t), 9)
	ipCmd(t, "addr", "add", a9.String(), "dev", a)
	restored, problems := m.Restore(ctx, pats)
	if len(restored) != 1 || len(problems) != 1 || !errors.Is(problems[0], ErrBusy) || master(a) != "" {
		t.Fatalf("restore with an address on the port: %+v %v; %s in %q", restored, problems, a, master(a))
	}
	ipCmd(t, "addr", "flush", "dev", a)
	if err := m.StopBridge(ctx, pats, br, ""); err != nil {
		t.Fatal(err)
	}

	// the host's bridge, a port this agent added, then moved by the host
	hb, hb2 := prefix()+"hb", prefix()+"hc"
	ipCmd(t, "link", "add", hb, "type", "bridge")
	ipCmd(t, "link", "add", hb2, "type", "bridge")
	if err := m.StartBridge(ctx, pats, hb, b); err != nil {
		t.Fatal(err)
	}
	ipCmd(t, "link", "set", "dev", b, "master", hb2)
	if err := m.StopBridge(ctx, pats, hb, b); err != nil || master(b) != hb2 || len(record(t, m)) != 0 {
		t.Fatalf("stop after the host moved the port: %v; %s in %q, record %+v", err, b, master(b), record(t, m))
	}
	// a port carrying a global IPv6 address is refused as an IPv4 one is
	ipCmd(t, "link", "set", "dev", b, "nomaster")
	ipCmd(t, "-6", "addr", "add", "2001:db8::9/64", "dev", b, "nodad")
	if err := m.StartBridge(ctx, pats, hb, b); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "2001:db8::9") {
		t.Fatalf("a port with a global IPv6 address: %v", err)
	}
}
