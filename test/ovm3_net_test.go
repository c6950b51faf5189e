package test

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/internal/sshtest"
	"github.com/ovs-agent/ovs-agent/internal/testnet"
)

// TestOVM3Network drives the agent 3 network calls CloudStack's OVM3
// plugin makes when it adds a host and a guest network (the local
// control0 bridge with its address, a bridge on a device, a VLAN bridge)
// against a real agent, on veth devices named with the test's prefix; a
// restart after the devices went (a reboot) makes them again, and the
// stops remove only what the calls made.
func TestOVM3Network(t *testing.T) {
	pfx := "ov" + randomHex(t, 2)
	t.Cleanup(func() {
		ents, _ := os.ReadDir("/sys/class/net")
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), pfx) {
				exec.Command("ip", "link", "del", e.Name()).Run()
			}
		}
	})
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	dev, vif := pfx+"eth1", pfx+"vif1"
	ip("link", "add", dev, "type", "veth", "peer", "name", dev+"p")
	ip("link", "add", vif, "type", "veth", "peer", "name", vif+"p")
	exists := func(n string) bool { _, err := os.Lstat("/sys/class/net/" + n); return err == nil }
	master := func(n string) string {
		l, _ := os.Readlink("/sys/class/net/" + n + "/master")
		if l == "" {
			return ""
		}
		return filepath.Base(l)
	}
	hasAddr := func(n, want string) bool {
		ifi, err := net.InterfaceByName(n)
		if err != nil {
			return false
		}
		as, _ := ifi.Addrs()
		for _, a := range as {
			if a.String() == want {
				return true
			}
		}
		return false
	}
	bridgeIn := func(c o3Client, name string) (found bool, phys string, addr string) {
		nw := parseDoc(t, "discover_network", c.ok(t, "discover_network").Text)
		active, _ := nw.path("Network/Active")
		bridges, _ := active.child("Bridges")
		for _, d := range bridges.Children {
			if d.attr("Name") == name {
				fam, _ := d.child("Family")
				ifs, _ := d.child("Interfaces")
				return true, ifs.leaves()["PhyInterface"], fam.leaves()["Address"]
			}
		}
		return false, "", ""
	}

	a := startAgent(t, agentConf{Extra: map[string][]string{
		"auth":  {"failed_login_delay = 0s"},
		"agent": {"network_devices = " + pfx + "*"},
	}})
	c := o3Client{url: "http://" + a.Addr + "/", user: "admin", pass: testPassword}
	ctl, br, vbr := pfx+"c0", pfx+"br1", pfx+"br1.160"
	tn := testnet.Free(t)
	ctlIP, ctlCIDR := testnet.Addr(tn, 1).Addr().String(), testnet.Addr(tn, 1).String()

	// control0: a local bridge, then its address (CloudStack's
	// configureNetworking; an address of a test network no route of the
	// host overlaps here, not 169.254/16, which the host may use).
	if v := c.ok(t, "ovs_local_config", "start", ctl); v.Type != "string" || !strings.HasPrefix(v.Text, "start") {
		t.Fatalf("ovs_local_config start: %s", v)
	}
	if found, phys, _ := bridgeIn(c, ctl); !found || phys != "" {
		t.Fatalf("discover_network after ovs_local_config: found %v, PhyInterface %q (want a local bridge)", found, phys)
	}
	c.ok(t, "ovs_local_config", "start", ctl) // again: no change
	c.done(t, "ovs_ip_config", ctl, "static", ctlIP, "255.255.255.0")
	if found, _, addr := bridgeIn(c, ctl); !found || addr != ctlIP {
		t.Fatalf("discover_network after ovs_ip_config: address %q", addr)
	}
	// cloudstack.py's ovs_control_interface: the control network's route
	// onto control0 (here the upper half of the test network, which the
	// address's own route does not cover exactly)
	half := netip.PrefixFrom(testnet.Addr(tn, 128).Addr(), 25)
	if v := c.ok(t, "ovs_control_interface", ctl, testnet.Addr(tn, 129).Addr().String()+"/25"); v.Type != "boolean" || v.Text != "1" {
		t.Fatalf("ovs_control_interface: %s", v)
	}
	routedOnto := func(p netip.Prefix, dev string) bool {
		out, _ := exec.Command("ip", "-4", "route", "show", "exact", p.String()).Output()
		return strings.Contains(string(out), "dev "+dev+" ")
	}
	if !routedOnto(half, ctl) {
		t.Fatalf("no route to %s onto %s", half, ctl)
	}
	// The system VMs on the control network (a stand-in sshd on the
	// control address, port 3922): CloudStack's key, a command, a file.
	key, keyPEM := sshtest.ClientKey(t)
	sshtest.Serve(t, net.JoinHostPort(ctlIP, "3922"), key.PublicKey())
	c.refused(t, 1003, "exec_domr", ctlIP, "true") // no key yet
	c.refused(t, -32602, "ovs_upload_ssh_key", "id_rsa.cloud", "not a key")
	c.refused(t, -32602, "ovs_upload_ssh_key", "../id_rsa", string(keyPEM))
	if v := c.ok(t, "ovs_upload_ssh_key", "id_rsa.cloud", string(keyPEM)); v.Type != "boolean" || v.Text != "1" {
		t.Fatalf("ovs_upload_ssh_key: %s", v)
	}
	res := c.ok(t, "exec_domr", ctlIP, "echo $((6*7)) the-secret-pw; echo warn >&2; exit 4")
	o3Shape(t, "exec_domr", res)
	if res.Members["rc"].Type != "i8" || res.Members["rc"].Text != "4" || res.Members["out"].Text != "42 the-secret-pw\n" || res.Members["err"].Text != "warn\n" {
		t.Fatalf("exec_domr: %s", res)
	}
	if v := c.ok(t, "check_domr_ssh", ctlIP); v.Text != "1" {
		t.Errorf("check_domr_ssh: %s", v)
	}
	if v := c.ok(t, "check_domr_port", ctlIP, 3922); v.Text != "1" {
		t.Errorf("check_domr_port: %s", v)
	}
	if v := c.ok(t, "check_dom0_port", "127.0.0.1", freePort(t, "127.0.0.1"), 1); v.Text != "0" {
		t.Errorf("check_dom0_port of a closed port: %s", v)
	}
	vmData := t.TempDir()
	c.ok(t, "ovs_domr_upload_file", ctlIP, vmData+"/", "vm_data.json", `{"router": "config"}`) // CloudStack's folders end in /
	if b, err := os.ReadFile(filepath.Join(vmData, "vm_data.json")); err != nil || string(b) != `{"router": "config"}` {
		t.Errorf("ovs_domr_upload_file wrote %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(vmData, "vm_data.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ovs_domr_upload_file's file: %v %v, want mode 0600", fi.Mode(), err)
	}
	keyFile := filepath.Join(a.Dir, "state", "cloudstack-keys", "id_rsa.cloud")
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the kept key %s: %v %v, want mode 0600", keyFile, fi, err)
	}
	if v := c.ok(t, "ping", "127.0.0.1"); v.Text != "1" {
		t.Errorf("ping 127.0.0.1: %s", v)
	}
	if v := c.ok(t, "ping", testnet.Addr(tn, 77).Addr().String(), 1); v.Text != "0" { // nobody on control0 has it
		t.Errorf("ping of an address nobody has: %s", v)
	}
	c.refused(t, -32602, "ping", "example.com")
	c.refused(t, 1001, "exec_domr", "127.0.0.1", "true") // not on the control network
	c.refused(t, -32602, "ovs_domr_upload_file", ctlIP, "tmp", "x", "y")
	if strings.Contains(a.Log(), "the-secret-pw") {
		t.Error("the agent's log holds a system VM command")
	}
	c.refused(t, -32602, "ovs_control_interface", ctl, "169.254.0.1")
	c.refused(t, 1007, "ovs_control_interface", "lo", half.String())

	// a bridge on a device
	if v := c.ok(t, "ovs_br_config", "start", br, dev); !strings.HasPrefix(v.Text, "start") || !strings.Contains(v.Text, "netdev="+dev) {
		t.Fatalf("ovs_br_config start: %s", v)
	}
	if master(dev) != br {
		t.Fatalf("%s is in %q, want %s", dev, master(dev), br)
	}

	// a VLAN bridge on it: made where the kernel has 802.1Q, refused
	// cleanly where it has not (this machine's kernel has no 8021q)
	vlanDev := dev + ".160"
	if v, f := c.call(t, "ovs_vlan_bridge", "start", vbr, dev, 160); f != nil {
		if f.Code != 1007 || !strings.Contains(f.Message, "8021q") {
			t.Fatalf("ovs_vlan_bridge start: %v", f)
		}
		t.Logf("no 802.1Q in this kernel: %s", f.Message)
		if exists(vbr) || exists(vlanDev) {
			t.Fatalf("a refused ovs_vlan_bridge left %s %v, %s %v", vbr, exists(vbr), vlanDev, exists(vlanDev))
		}
		c.refused(t, 1007, "ovs_vlan_config", "add", dev, 160)
	} else {
		if !strings.HasPrefix(v.Text, "start") || master(vlanDev) != vbr {
			t.Fatalf("ovs_vlan_bridge start: %s; %s in %q", v, vlanDev, master(vlanDev))
		}
		if v := c.ok(t, "ovs_vlan_bridge", "stop", vbr, dev, 160); !strings.HasPrefix(v.Text, "stop") || exists(vbr) || exists(vlanDev) {
			t.Fatalf("ovs_vlan_bridge stop: %s", v)
		}
		c.done(t, "ovs_vlan_config", "add", dev, 160)
		c.done(t, "ovs_vlan_config", "remove", dev, 160)
		if exists(vlanDev) {
			t.Fatalf("ovs_vlan_config remove left %s", vlanDev)
		}
	}

	// Refused, each changing nothing.
	if msg := c.refused(t, 1007, "ovs_local_config", "start", "xenbr9"); !strings.Contains(msg, "network_devices") {
		t.Errorf("a bridge not allowed: %q", msg)
	}
	c.refused(t, 1007, "ovs_br_config", "start", br, "lo")
	c.refused(t, -32602, "ovs_br_config", "restart", br, dev)
	c.refused(t, -32602, "ovs_local_config", "start", "../../x")
	c.refused(t, -32602, "ovs_vlan_config", "add", dev, 4095)
	c.refused(t, 1007, "ovs_ip_config", ctl, "dhcp", "", "")
	c.refused(t, -32602, "ovs_ip_config", ctl, "static", ctlIP, "255.0.255.0")
	c.refused(t, 1002, "ovs_br_config", "start", pfx+"br2", pfx+"none")
	c.refused(t, 1006, "ovs_br_config", "start", pfx+"br2", dev) // a port of br already
	ip("addr", "add", testnet.Addr(tn, 20).String(), "dev", vif)
	if msg := c.refused(t, 1006, "ovs_br_config", "start", pfx+"br2", vif); !strings.Contains(msg, testnet.Addr(tn, 20).String()) {
		t.Errorf("a port with an address: %q", msg)
	}
	ip("addr", "flush", "dev", vif)
	c.refused(t, 1007, "configure_virtual_ip", testnet.Addr(tn, 10).Addr().String(), ctlIP)
	if exists(pfx+"br2") || exists("xenbr9") || master(dev) != br || !hasAddr(ctl, ctlCIDR) {
		t.Fatalf("a refused call changed the network")
	}
	hostBr := pfx + "hb"
	ip("link", "add", hostBr, "type", "bridge")
	if msg := c.refused(t, 1003, "ovs_local_config", "stop", hostBr); !strings.Contains(msg, "host's own") || !exists(hostBr) {
		t.Errorf("stop of the host's bridge: %q", msg)
	}

	// A reboot takes the devices; the agent started again makes them again.
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	ip("link", "del", ctl)
	ip("link", "del", br)
	a.start()
	a.waitReady()
	if !exists(ctl) || !exists(br) || master(dev) != br || !hasAddr(ctl, ctlCIDR) || !routedOnto(half, ctl) {
		t.Fatalf("after a restart: %s %v, %s %v, %s in %q, address %v\n%s", ctl, exists(ctl), br, exists(br), dev, master(dev), hasAddr(ctl, ctlCIDR), a.Log())
	}
	if n := len(logLines(a.Log(), "network device made again")); n != 5 {
		t.Errorf("%d \"network device made again\" lines, want 5 (two bridges, a port, an address, a route)", n)
	}

	// A domain's interface in control0 keeps it; out again, the stops
	// remove what the calls made and leave the device.
	ip("link", "set", vif, "master", ctl)
	if msg := c.refused(t, 1006, "ovs_local_config", "stop", ctl); !strings.Contains(msg, vif) {
		t.Errorf("stop of a bridge with a domain's interface: %q", msg)
	}
	ip("link", "set", vif, "nomaster")
	if v := c.ok(t, "ovs_local_config", "stop", ctl); !strings.HasPrefix(v.Text, "stop") || exists(ctl) {
		t.Fatalf("ovs_local_config stop: %s, %s exists %v", v, ctl, exists(ctl))
	}
	c.ok(t, "ovs_local_config", "stop", ctl) // repeated (a lost reply): no error
	if v := c.ok(t, "ovs_br_config", "stop", br, dev); !strings.HasPrefix(v.Text, "stop") || exists(br) || !exists(dev) || master(dev) != "" {
		t.Fatalf("ovs_br_config stop: %s; bridge %v, %s in %q", v, exists(br), dev, master(dev))
	}
	if b, err := os.ReadFile(filepath.Join(a.Dir, "state", "network.json")); err != nil || strings.Contains(string(b), pfx) {
		t.Fatalf("the record after the stops: %s %v", b, err)
	}
}
