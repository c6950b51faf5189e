package ovm3

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
)

// node is a generic parsed element, for reading documents back the way
// the agent 3 client does: by path, taking the text of leaf children.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []node     `xml:",any"`
}

func parse(t *testing.T, doc string) node {
	t.Helper()
	if !strings.HasPrefix(doc, "<?xml ") {
		t.Errorf("no XML declaration: %.60s", doc)
	}
	var n node
	if err := xml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatalf("not well-formed: %v\n%s", err, doc)
	}
	return n
}

func (n node) at(t *testing.T, path string) node {
	t.Helper()
	cur := n
	for _, name := range strings.Split(path, "/") {
		found := false
		for _, c := range cur.Children {
			if c.XMLName.Local == name {
				cur, found = c, true
				break
			}
		}
		if !found {
			t.Fatalf("no %s under %s", name, path)
		}
	}
	return cur
}

func (n node) leaves() map[string]string {
	out := map[string]string{}
	for _, c := range n.Children {
		if len(c.Children) == 0 {
			out[c.XMLName.Local] = c.Text
		}
	}
	return out
}

func (n node) attr(k string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == k {
			return a.Value
		}
	}
	return ""
}

const hostile = `a<b>&"c'd]]>`

func TestDiscoverServer(t *testing.T) {
	doc, err := DiscoverServer(Server{
		UniqueID: "1d:d5", BootTime: 1413834408, TimeZone: "Europe/Amsterdam", UTC: true,
		AgentVersion: "1.2.3", OVMVersion: "1.2.3", CPUType: "x86_64", OSName: hostile, OSMajor: "12", OSMinor: "0",
		KernelRelease: "6.1.0", KernelVersion: "#1 SMP " + hostile, HypervisorType: "ovs-vmm", HypervisorName: "ovs-vmm",
		VMMMajor: "1", VMMMinor: "2", VMMExtra: ".3", Hostname: "ovm-1", RegisteredIP: "127.0.0.1",
		ServerRoles: "xen,utility", MembershipState: "Unowned", ClusterState: "Offline", StatsInterval: 0,
		Capabilities: []Leaf{{"NFS", "True"}, {"VM_MEMORY_ALIGNMENT", "1048576"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	root := parse(t, doc)
	if root.XMLName.Local != "Discover_Server_Result" {
		t.Fatalf("root %s", root.XMLName.Local)
	}
	srv := root.at(t, "Server").leaves()
	for k, want := range map[string]string{
		"Unique_Id": "1d:d5", "Boot_Time": "1413834408", "OS_Name": hostile, "Host_Kernel_Version": "#1 SMP " + hostile,
		"Hostname": "ovm-1", "Is_Current_Master": "false", "Membership_State": "Unowned",
		"Pool_Unique_Id": "none", "Manager_Unique_Id": "none", "OS_Major_Version": "12", "Registered_IP": "127.0.0.1",
	} {
		if srv[k] != want {
			t.Errorf("Server/%s = %q, want %q", k, srv[k], want)
		}
	}
	if v := root.at(t, "Server/VMM/Version").leaves(); v["Major"] != "1" || v["Minor"] != "2" || v["Extra"] != ".3" {
		t.Errorf("VMM/Version %v", v)
	}
	if c := root.at(t, "Server/Capabilities").leaves(); c["NFS"] != "True" || c["VM_MEMORY_ALIGNMENT"] != "1048576" {
		t.Errorf("Capabilities %v", c)
	}
	if d := root.at(t, "Server/Date_Time").leaves(); d["Time_Zone"] != "Europe/Amsterdam" || d["UTC"] != "True" {
		t.Errorf("Date_Time %v", d)
	}
	if n := root.at(t, "Server/NTP").leaves(); n["Is_NTP_Running"] != "False" {
		t.Errorf("NTP %v", n)
	}
}

func TestDiscoverHardware(t *testing.T) {
	doc, err := DiscoverHardware(Hardware{
		ThreadsPerCore: 2, CoresPerSocket: 2, SocketsPerNode: 1, Nodes: 1, CPUKHz: 3392400,
		TotalPages: 1048476, FreePages: 863459,
		CPUs:       []CPU{{ID: 0, Vendor: "GenuineIntel", ModelName: hostile}, {ID: 1}, {ID: 2}, {ID: 3}},
		SystemUUID: "1d:d5", Manufacturer: "QEMU", ProductName: hostile,
	})
	if err != nil {
		t.Fatal(err)
	}
	root := parse(t, doc)
	p := root.at(t, "NodeInformation/VMM/PhysicalInfo").leaves()
	if p["ThreadsPerCore"] != "2" || p["CoresPerSocket"] != "2" || p["SocketsPerNode"] != "1" || p["TotalPages"] != "1048476" || p["FreePages"] != "863459" || p["CPUKHz"] != "3392400" {
		t.Errorf("PhysicalInfo %v", p)
	}
	procs := root.at(t, "NodeInformation/CPUInfo/Proc_Info")
	if len(procs.Children) != 4 || procs.Children[3].attr("ID") != "3" || procs.Children[0].leaves()["model_name"] != hostile {
		t.Errorf("Proc_Info %+v", procs)
	}
	if s := root.at(t, "NodeInformation/DMTF/System").leaves(); s["UUID"] != "1d:d5" || s["ProductName"] != hostile {
		t.Errorf("DMTF/System %v", s)
	}
}

func TestMounts(t *testing.T) {
	mounts := ParseMounts([]byte("server:/export /OVS/abc nfs rw,vers=3 0 0\n/dev/sda1 /mnt/my\\040disk ext4 rw,relatime 0 0\nshort line\n"))
	if len(mounts) != 2 || mounts[1].Dir != "/mnt/my disk" || mounts[0].Device != "server:/export" {
		t.Fatalf("ParseMounts: %+v", mounts)
	}
	mounts = append(mounts, Mount{Device: hostile, Dir: "/x/" + hostile, Type: "nfs", Options: "ro"})
	doc, err := DiscoverMounts(mounts, "nfs")
	if err != nil {
		t.Fatal(err)
	}
	root := parse(t, doc)
	if root.XMLName.Local != "Discover_Mounted_File_Systems_Result" || len(root.Children) != 1 {
		t.Fatalf("%s", doc)
	}
	fs := root.Children[0]
	if fs.XMLName.Local != "Filesystem" || fs.attr("Type") != "nfs" || len(fs.Children) != 2 {
		t.Fatalf("Filesystem %+v", fs)
	}
	if m := fs.Children[1]; m.attr("Dir") != "/x/"+hostile || m.leaves()["Device"] != hostile || m.leaves()["Mount_Options"] != "ro" {
		t.Errorf("Mount %+v", m)
	}
	all, _ := DiscoverMounts(mounts, "")
	if r := parse(t, all); len(r.Children) != 2 {
		t.Errorf("every type: %s", all)
	}
}

func TestParseCPUInfo(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 8; i++ {
		b.WriteString("processor\t: " + string(rune('0'+i)) + "\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\ncpu MHz\t\t: 2400.000\n")
		b.WriteString("physical id\t: " + string(rune('0'+i/4)) + "\nsiblings\t: 4\ncpu cores\t: 2\nflags\t\t: fpu vmx\n\n")
	}
	top := ParseCPUInfo([]byte(b.String()))
	if top.Sockets != 2 || top.CoresPerSocket != 2 || top.ThreadsPerCore != 2 || len(top.CPUs) != 8 || top.MHz != 2400 || top.CPUs[7].Flags != "fpu vmx" {
		t.Errorf("2 sockets of 2 cores of 2 threads: %+v", top)
	}
	// No topology fields (a VM): one socket of single-thread cores.
	top = ParseCPUInfo([]byte("processor : 0\nmodel name : x\n\nprocessor : 1\nmodel name : x\n"))
	if top.Sockets != 1 || top.CoresPerSocket != 2 || top.ThreadsPerCore != 1 {
		t.Errorf("no topology: %+v", top)
	}
	// Fields that do not multiply to the CPUs listed (some offline).
	top = ParseCPUInfo([]byte("processor : 0\nphysical id : 0\nsiblings : 8\ncpu cores : 4\n"))
	if top.Sockets*top.CoresPerSocket*top.ThreadsPerCore != 1 {
		t.Errorf("one CPU online: %+v", top)
	}
}

func TestIDs(t *testing.T) {
	for in, want := range map[string]string{
		"f12842eb-f5ed-3fe7-8da1-eb0e17f5ede8": "f12842ebf5ed3fe78da1eb0e17f5ede8",
		"F12842EBF5ED3FE78DA1EB0E17F5EDE8":     "f12842ebf5ed3fe78da1eb0e17f5ede8",
	} {
		if got, err := RepoID(in); err != nil || got != want {
			t.Errorf("RepoID(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "../../etc", "f12842ebf5ed3fe78da1eb0e17f5ede", "g12842ebf5ed3fe78da1eb0e17f5ede8", "/OVS/x"} {
		if _, err := RepoID(bad); err == nil {
			t.Errorf("RepoID(%q) accepted", bad)
		}
	}
	for _, ok := range []string{"868a6627-c3b0-3d9b-aea4-f279cbaa253b", "i-2-3-VM", "vm_1.a"} {
		if err := VMID(ok); err != nil {
			t.Errorf("VMID(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", ".hidden", "a b", "a\x00", strings.Repeat("a", 129), "é"} {
		if err := VMID(bad); err == nil {
			t.Errorf("VMID(%q) accepted", bad)
		}
	}
	if !SameUUID("868a6627-c3b0-3d9b-aea4-f279cbaa253b", "868A6627C3B03D9BAEA4F279CBAA253B") || SameUUID("", "") || SameUUID("a", "b") {
		t.Error("SameUUID")
	}
}

// TestConfigText: a create_vm struct becomes a vm.cfg that vmcfg parses
// back to the same values; a string cannot break out of its literal.
func TestConfigText(t *testing.T) {
	text, err := ConfigText(map[string]any{
		"name": "i-2-3-VM", "uuid": "868a6627-c3b0-3d9b-aea4-f279cbaa253b", "memory": int64(512), "vcpus": int64(1),
		"vif":                   []any{"mac=02:00:50:9a:00:01,bridge=xenbr0"},
		"disk":                  []any{"file:/r/VirtualDisks/a.raw,xvda,w"},
		"OVM_description":       "x'\nmemory = 99999\n#",
		"OVM_high_availability": false, "cpu_weight": int64(27500), "unset": nil, "ratio": 1.5,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := vmcfg.Parse("vm.cfg", text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if cfg.Name != "i-2-3-VM" || cfg.Memory != 512 || len(cfg.VIFs) != 1 || cfg.VIFs[0].Bridge != "xenbr0" || len(cfg.Disks) != 1 {
		t.Errorf("parsed: %+v", cfg)
	}
	if v := cfg.Others["OVM_description"].Value; v.Str != "x'\nmemory = 99999\n#" {
		t.Errorf("OVM_description came back as %v", v)
	}
	if _, ok := cfg.Others["unset"]; ok {
		t.Error("a nil member was written")
	}
	m := ConfigStruct(cfg)
	if m["memory"] != 512 || m["OVM_high_availability"] != false || m["cpu_weight"] != int64(27500) || m["ratio"] != 1.5 || m["maxvcpus"] != 1 {
		t.Errorf("ConfigStruct: %v", m)
	}
	for _, k := range []string{"vif", "disk", "vfb"} {
		if _, ok := m[k].([]string); !ok {
			t.Errorf("ConfigStruct: %s is %T", k, m[k])
		}
	}
	var b bytes.Buffer
	if err := xmlrpc.EncodeResponse(&b, m); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<name>memory</name><value><int>512</int>", "<name>vfb</name><value><array><data></data></array>", "<name>OVM_high_availability</name><value><boolean>0</boolean>"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("get_vm_config encoding lacks %s:\n%s", want, b.String())
		}
	}

	for what, p := range map[string]map[string]any{
		"nested struct": {"name": "x", "device": map[string]any{"a": "b"}},
		"bad key":       {"name": "x", "a b": "c"},
		"key injection": {"name = 'y'\nx": "c"},
		"list in list":  {"name": "x", "l": []any{[]any{"a"}}},
		"base64":        {"name": "x", "b": []byte("a")},
	} {
		if _, err := ConfigText(p); err == nil {
			t.Errorf("%s accepted", what)
		}
	}
}

func TestXendStruct(t *testing.T) {
	m := XendStruct(Domain{
		Name: "i-2-3-VM", UUID: "u", DomID: 7, State: "paused", MemoryMiB: 512, MaxMemMiB: 512, VCPUs: 1, CPUSeconds: 5.5,
		Started: time.Unix(1408105444, 170e6), Disks: []DomainDisk{{UName: "file:/OVS/Repositories/r/VirtualDisks/a.raw", Dev: "xvda", Mode: "w"}},
		VIFs: []DomainVIF{{MAC: "02:00:50:9a:00:01", Bridge: "xenbr0"}}, VNC: "0.0.0.0:5900",
	})
	if m["state"] != "--p---" || m["memory"] != "512" || m["domid"] != "7" || m["start_time"] != "1408105444.17" || m["builder"] != "linux" {
		t.Errorf("%v", m)
	}
	dev := m["device"].(map[string]any)
	vbd := dev["vbd"].([]any)[0].(map[string]any)
	// The client takes the repository from the 4th '/' field of the uname.
	if f := strings.Split(vbd["uname"].(string), "/"); len(f) < 4 || f[3] != "r" || vbd["dev"] != "xvda:disk" {
		t.Errorf("vbd %v", vbd)
	}
	if vfb := dev["vfb"].([]any)[0].(map[string]any); vfb["location"] != "0.0.0.0:5900" || vfb["vnclisten"] != "0.0.0.0" {
		t.Errorf("vfb %v", vfb)
	}
	for state, want := range map[string]string{"running": "r-----", "paused": "--p---", "stopping": "---s--", "starting": "-b----", "migrating": "-b----"} {
		if got := XMState(state); got != want {
			t.Errorf("XMState(%s) = %s, want %s", state, got, want)
		}
	}
	var b bytes.Buffer
	if err := xmlrpc.EncodeResponse(&b, m); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<int>") || !strings.Contains(b.String(), "<name>memory</name><value><string>512</string>") {
		t.Errorf("list_vms values must all be strings:\n%s", b.String())
	}
}

func TestRepositoryDocuments(t *testing.T) {
	doc, err := DiscoverRepositories([]Repo{{ID: "f12842ebf5ed3fe78da1eb0e17f5ede8", Version: "1", Alias: hostile,
		Templates: []RepoFile{{Name: "t1", File: "t1.raw"}}, VMs: []RepoFile{{Name: "vm1", File: "vm.cfg"}},
		Disks: []string{"a.raw", "b.raw"}, ISOs: []string{hostile + ".iso"}}})
	if err != nil {
		t.Fatal(err)
	}
	root := parse(t, doc)
	r := root.at(t, "RepositoryList/Repository")
	if r.attr("Name") != "f12842ebf5ed3fe78da1eb0e17f5ede8" || r.leaves()["Repository_Alias"] != hostile || r.leaves()["Repository_UUID"] != "f12842ebf5ed3fe78da1eb0e17f5ede8" {
		t.Errorf("Repository %+v", r)
	}
	if tpl := r.at(t, "Templates/Template"); tpl.attr("Name") != "t1" || tpl.leaves()["File"] != "t1.raw" {
		t.Errorf("Template %+v", tpl)
	}
	if vm := r.at(t, "VirtualMachines/VirtualMachine"); vm.attr("Name") != "vm1" || vm.leaves()["File"] != "vm.cfg" {
		t.Errorf("VirtualMachine %+v", vm)
	}
	if d := r.at(t, "VirtualDisks").Children; len(d) != 2 || d[1].Text != "b.raw" {
		t.Errorf("VirtualDisks %+v", d)
	}
	if i := r.at(t, "ISOs/ISO"); i.Text != hostile+".iso" {
		t.Errorf("ISO %+v", i)
	}

	doc, err = DiscoverRepositoryDB([]RepoDB{{ID: "f12842ebf5ed3fe78da1eb0e17f5ede8", FsLocation: "cs-mgmt:/volumes/x", MountPoint: "/OVS/Repositories/f12842ebf5ed3fe78da1eb0e17f5ede8", FsType: "nfs", Version: "1", Alias: hostile, Status: "Mounted"}})
	if err != nil {
		t.Fatal(err)
	}
	db := parse(t, doc).at(t, "RepositoryDbList/Repository")
	if l := db.leaves(); db.attr("Uuid") != "f12842ebf5ed3fe78da1eb0e17f5ede8" || l["Fs_location"] != "cs-mgmt:/volumes/x" || l["Alias"] != hostile || l["Status"] != "Mounted" || l["Filesystem_type"] != "nfs" {
		t.Errorf("RepositoryDbList %+v", db)
	}
}

func TestDiscoverNetwork(t *testing.T) {
	doc, err := DiscoverNetwork([]NetDevice{{Name: "eth0", MAC: "52:54:00:12:34:56", MTU: 1500}},
		[]NetDevice{{Name: "xenbr0", MAC: "52:54:00:12:34:56", MTU: 1500, Address: "192.168.1.64", Netmask: "255.255.255.0", Broadcast: "192.168.1.255", Physical: "eth0", Ports: []string{"eth0", "vif1.0"}}})
	if err != nil {
		t.Fatal(err)
	}
	root := parse(t, doc)
	d := root.at(t, "Network/Active/Network/Device")
	if d.attr("Name") != "eth0" || d.leaves()["MAC"] != "52:54:00:12:34:56" || d.leaves()["Basename"] != "eth0" {
		t.Errorf("physical %+v", d)
	}
	b := root.at(t, "Network/Active/Bridges/Device")
	if f := b.at(t, "Family"); b.attr("Name") != "xenbr0" || f.attr("Type") != "AF_INET" || f.leaves()["Address"] != "192.168.1.64" || f.leaves()["Broadcast"] != "192.168.1.255" {
		t.Errorf("bridge %+v", b)
	}
	if i := b.at(t, "Interfaces"); i.leaves()["PhyInterface"] != "eth0" || len(i.Children) != 3 {
		t.Errorf("bridge interfaces %+v", i)
	}
}

func TestDiscoverServerPool(t *testing.T) {
	doc, err := DiscoverServerPool(nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := parse(t, doc); r.XMLName.Local != "Discover_Server_Pool_Result" || len(r.Children) != 0 {
		t.Errorf("no pool: %s", doc)
	}
	doc, err = DiscoverServerPool(&ServerPool{ID: "pool0", Alias: hostile, MemberIPs: []string{"127.0.0.2", "127.0.0.3"}})
	if err != nil {
		t.Fatal(err)
	}
	sp := parse(t, doc).at(t, "Server_Pool")
	if l := sp.leaves(); l["Unique_Id"] != "pool0" || l["Pool_Alias"] != hostile {
		t.Errorf("Server_Pool %v", l)
	}
	if m := sp.at(t, "Member_List"); len(m.Children) != 2 || m.Children[1].leaves()["Registered_IP"] != "127.0.0.3" {
		t.Errorf("Member_List %+v", m)
	}
}
