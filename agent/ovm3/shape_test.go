package ovm3

import (
	"bytes"
	"encoding/xml"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
)

// The answers below have the shapes of agent 3.2's answers as the OVM3
// plugin's tests record them (the values are ours, and shortened). Each
// test builds this package's answer and checks that every path of the
// recorded shape is there with the same XML-RPC type, and, for the XML
// documents in strings, every element path and attribute.

// skeleton maps each path of an XML-RPC value to its type: "" for the
// value itself, ".name" for a struct member, "[]" for array items (all
// items merged).
func skeleton(t *testing.T, doc string) map[string]string {
	t.Helper()
	var n node
	if err := xml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	out := map[string]string{}
	var walk func(v node, path string)
	walk = func(v node, path string) {
		if len(v.Children) == 0 {
			out[path] = "string"
			return
		}
		typed := v.Children[0]
		out[path] = typed.XMLName.Local
		switch typed.XMLName.Local {
		case "struct":
			for _, m := range typed.Children {
				var name string
				var val node
				for _, c := range m.Children {
					switch c.XMLName.Local {
					case "name":
						name = c.Text
					case "value":
						val = c
					}
				}
				walk(val, path+"."+name)
			}
		case "array":
			for _, d := range typed.Children {
				for _, it := range d.Children {
					walk(it, path+"[]")
				}
			}
		}
	}
	for _, p := range n.Children { // params
		for _, q := range p.Children { // param
			for _, v := range q.Children { // value
				walk(v, "")
			}
		}
	}
	return out
}

// docPaths lists the element paths (and @attributes) of an XML document.
func docPaths(t *testing.T, doc string) map[string]bool {
	t.Helper()
	var n node
	if err := xml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	out := map[string]bool{}
	var walk func(n node, path string)
	walk = func(n node, path string) {
		path += "/" + n.XMLName.Local
		out[path] = true
		for _, a := range n.Attrs {
			out[path+"/@"+a.Name.Local] = true
		}
		for _, c := range n.Children {
			walk(c, path)
		}
	}
	walk(n, "")
	return out
}

func response(s string) string {
	return `<?xml version='1.0'?><methodResponse><params><param><value>` + s + `</value></param></params></methodResponse>`
}

func encoded(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	if err := xmlrpc.EncodeResponse(&b, v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func sameShape(t *testing.T, what string, recorded, ours map[string]string) {
	t.Helper()
	var paths []string
	for p := range recorded {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if got, ok := ours[p]; !ok {
			t.Errorf("%s: no %q (recorded as %s)", what, p, recorded[p])
		} else if got != recorded[p] {
			t.Errorf("%s: %q is %s, recorded as %s", what, p, got, recorded[p])
		}
	}
}

func TestShapeListVMs(t *testing.T) {
	recorded := skeleton(t, response(`<array><data><value><struct>
<member><name>name</name><value><string>i-1-2-VM</string></value></member>
<member><name>uuid</name><value><string>u</string></value></member>
<member><name>state</name><value><string>-b----</string></value></member>
<member><name>memory</name><value><string>512</string></value></member>
<member><name>maxmem</name><value><string>512</string></value></member>
<member><name>vcpus</name><value><string>1</string></value></member>
<member><name>domid</name><value><string>3</string></value></member>
<member><name>cpu_time</name><value><string>1.5</string></value></member>
<member><name>start_time</name><value><string>1408105444.17</string></value></member>
<member><name>on_reboot</name><value><string>restart</string></value></member>
<member><name>builder</name><value><string>linux</string></value></member>
<member><name>device</name><value><struct>
 <member><name>vbd</name><value><array><data><value><struct>
  <member><name>uname</name><value><string>file:/OVS/Repositories/r/VirtualDisks/d.raw</string></value></member>
  <member><name>dev</name><value><string>xvda:disk</string></value></member>
 </struct></value></data></array></value></member>
 <member><name>vif</name><value><array><data><value><struct>
  <member><name>mac</name><value><string>02:00:00:00:00:01</string></value></member>
  <member><name>bridge</name><value><string>xenbr0</string></value></member>
 </struct></value></data></array></value></member>
 <member><name>vfb</name><value><array><data><value><struct>
  <member><name>location</name><value><string>0.0.0.0:5900</string></value></member>
 </struct></value></data></array></value></member>
</struct></value></member>
</struct></value></data></array>`))
	d := XendStruct(Domain{Name: "i-1-2-VM", UUID: "u", State: "running", MemoryMiB: 512, MaxMemMiB: 512, VCPUs: 1, DomID: 3,
		Started: time.Unix(1408105444, 0), OnReboot: "restart", Disks: []DomainDisk{{UName: "file:/OVS/Repositories/r/VirtualDisks/d.raw", Dev: "xvda", Mode: "w"}},
		VIFs: []DomainVIF{{MAC: "02:00:00:00:00:01", Bridge: "xenbr0"}}, VNC: "0.0.0.0:5900"})
	sameShape(t, "list_vms", recorded, skeleton(t, encoded(t, []any{d})))
}

func TestShapeGetVMConfig(t *testing.T) {
	recorded := skeleton(t, response(`<struct>
<member><name>vif</name><value><array><data><value><string>mac=02:00:00:00:00:01,bridge=xenbr0</string></value></data></array></value></member>
<member><name>disk</name><value><array><data><value><string>file:/OVS/Repositories/r/VirtualDisks/d.raw,xvda,w</string></value></data></array></value></member>
<member><name>vfb</name><value><array><data><value><string>type=vnc,vnclisten=0.0.0.0</string></value></data></array></value></member>
<member><name>name</name><value><string>i-1-2-VM</string></value></member>
<member><name>uuid</name><value><string>868a6627-c3b0-3d9b-aea4-f279cbaa253b</string></value></member>
<member><name>memory</name><value><int>512</int></value></member>
<member><name>vcpus</name><value><int>1</int></value></member>
<member><name>maxvcpus</name><value><int>1</int></value></member>
<member><name>cpu_weight</name><value><int>27500</int></value></member>
<member><name>OVM_high_availability</name><value><boolean>0</boolean></value></member>
<member><name>OVM_simple_name</name><value><string>i-1-2-VM</string></value></member>
<member><name>OVM_domain_type</name><value><string>xen_pvm</string></value></member>
<member><name>on_reboot</name><value><string>restart</string></value></member>
<member><name>bootloader</name><value><string>/usr/bin/pygrub</string></value></member>
</struct>`))
	text := "name = 'i-1-2-VM'\nuuid = '868a6627-c3b0-3d9b-aea4-f279cbaa253b'\nmemory = 512\nvcpus = 1\nmaxvcpus = 1\ncpu_weight = 27500\n" +
		"OVM_high_availability = False\nOVM_simple_name = 'i-1-2-VM'\nOVM_domain_type = 'xen_pvm'\non_reboot = 'restart'\nbootloader = '/usr/bin/pygrub'\n" +
		"vif = ['mac=02:00:00:00:00:01,bridge=xenbr0']\ndisk = ['file:/tmp/d.raw,xvda,w']\nvfb = ['type=vnc,vnclisten=0.0.0.0']\n"
	cfg, err := vmcfg.Parse("vm.cfg", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	sameShape(t, "get_vm_config", recorded, skeleton(t, encoded(t, ConfigStruct(cfg))))
}

// docShape checks that every element path and attribute of the recorded
// document is in ours.
func docShape(t *testing.T, what, recorded, ours string) {
	t.Helper()
	got := docPaths(t, ours)
	want := docPaths(t, recorded)
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if !got[p] {
			t.Errorf("%s: no %s", what, p)
		}
	}
}

func TestShapeDocuments(t *testing.T) {
	srv, _ := DiscoverServer(Server{Capabilities: []Leaf{{"NFS", "True"}, {"HIGH_AVAILABILITY", "False"}}})
	docShape(t, "discover_server", `<Discover_Server_Result><Server>
<Unique_Id/><Boot_Time/><Date_Time><Time_Zone/><UTC/></Date_Time><NTP><Local_Time_Source/><Is_NTP_Running/></NTP>
<Agent_Version/><RPM_Version/><OVM_Version/><CPU_Type/><OS_Type/><OS_Name/><OS_Major_Version/><OS_Minor_Version/>
<Hypervisor_Type/><Hypervisor_Name/><Host_Kernel_Release/><Host_Kernel_Version/>
<VMM><Version><Major/><Minor/><Extra/></Version><Capabilities/></VMM>
<Pool_Unique_Id/><Manager_Unique_Id/><Hostname/><Registered_IP/><Server_Roles/><Is_Current_Master/>
<Manager_Core_API_Version/><Membership_State/><Cluster_State/><Statistic><Interval/></Statistic><Exports/>
<Capabilities><NFS/><HIGH_AVAILABILITY/></Capabilities></Server></Discover_Server_Result>`, srv)

	hw, _ := DiscoverHardware(Hardware{CPUs: []CPU{{ID: 0}}})
	docShape(t, "discover_hardware", `<Discover_Hardware_Result><NodeInformation>
<VMM><PhysicalInfo><ThreadsPerCore/><CoresPerSocket/><SocketsPerNode/><Nodes/><CPUKHz/><TotalPages/><FreePages/></PhysicalInfo></VMM>
<CPUInfo><Proc_Info><CPU ID="0"><vendor_id/><cpu_family/><model/><model_name/><stepping/><cache_size/><flags/></CPU></Proc_Info></CPUInfo>
<DMTF><System><UUID/><Manufacturer/><ProductName/></System></DMTF></NodeInformation></Discover_Hardware_Result>`, hw)

	fs, _ := DiscoverMounts([]Mount{{Type: "nfs", Dir: "/OVS/Repositories/r", Device: "h:/e", Options: "rw"}}, "nfs")
	docShape(t, "discover_mounted_file_systems", `<Discover_Mounted_File_Systems_Result><Filesystem Type="nfs">
<Mount Dir="/OVS/Repositories/r"><Device/><Mount_Options/></Mount></Filesystem></Discover_Mounted_File_Systems_Result>`, fs)

	repos, _ := DiscoverRepositories([]Repo{{ID: "r", Templates: []RepoFile{{"t", "t.raw"}}, VMs: []RepoFile{{"v", "vm.cfg"}}, Disks: []string{"d.raw"}, ISOs: []string{"i.iso"}}})
	docShape(t, "discover_repositories", `<Discover_Repositories_Result><RepositoryList><Repository Name="r">
<Version/><Manager_UUID/><Repository_UUID/><Repository_Alias/><Assemblies/>
<Templates><Template Name="t"><File/></Template></Templates>
<VirtualMachines><VirtualMachine Name="v"><File/></VirtualMachine></VirtualMachines>
<VirtualDisks><Disk/></VirtualDisks><ISOs><ISO/></ISOs></Repository></RepositoryList></Discover_Repositories_Result>`, repos)

	db, _ := DiscoverRepositoryDB([]RepoDB{{ID: "r"}})
	docShape(t, "discover_repository_db", `<Discover_Repository_Db_Result><RepositoryDbList><Repository Uuid="r">
<Fs_location/><Mount_point/><Filesystem_type/><Version/><Alias/><Manager_uuid/><Status/></Repository></RepositoryDbList></Discover_Repository_Db_Result>`, db)

	nw, _ := DiscoverNetwork([]NetDevice{{Name: "eth0"}}, []NetDevice{{Name: "xenbr0", Physical: "eth0"}})
	docShape(t, "discover_network", `<Discover_Network_Result><Network><Active>
<Network><Device Name="eth0"><MAC/><Basename/></Device></Network>
<Bridges><Device Name="xenbr0"><Family Type="AF_INET"><Address/><Netmask/><Broadcast/><MAC/></Family><Interfaces><PhyInterface/></Interfaces></Device></Bridges>
</Active></Network></Discover_Network_Result>`, nw)

	pool, _ := DiscoverServerPool(&ServerPool{ID: "p", MemberIPs: []string{"127.0.0.2"}})
	docShape(t, "discover_server_pool", `<Discover_Server_Pool_Result><Server_Pool><Unique_Id/><Pool_Alias/><Primary_Virtual_Ip/>
<Member_List><Member><Registered_IP/></Member></Member_List></Server_Pool></Discover_Server_Pool_Result>`, pool)
	if !strings.Contains(pool, "Master_Virtual_Ip") {
		t.Error("discover_server_pool: no Master_Virtual_Ip (3.2's name)")
	}
}
