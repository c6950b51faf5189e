package ovm3

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Leaf is one element with text, written in order.
type Leaf struct {
	Name, Text string
}

// element is the generic tree the documents are written from: encoding/xml
// escapes the text and attributes, so any host name, kernel string or
// mount option stays well-formed.
type element struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",attr"`
	Text     string     `xml:",chardata"`
	Children []element
}

func (e element) MarshalXML(enc *xml.Encoder, start xml.StartElement) error {
	start.Name = e.XMLName
	start.Attr = e.Attrs
	if err := enc.EncodeToken(start); err != nil {
		return err
	}
	if e.Text != "" {
		if err := enc.EncodeToken(xml.CharData(e.Text)); err != nil {
			return err
		}
	}
	for _, c := range e.Children {
		if err := enc.Encode(c); err != nil {
			return err
		}
	}
	return enc.EncodeToken(start.End())
}

func el(name string, children ...element) element {
	return element{XMLName: xml.Name{Local: name}, Children: children}
}

func text(name, s string) element {
	return element{XMLName: xml.Name{Local: name}, Text: s}
}

func leaves(ls []Leaf) []element {
	out := make([]element, 0, len(ls))
	for _, l := range ls {
		out = append(out, text(l.Name, l.Text))
	}
	return out
}

// render writes a document with an XML declaration, as agent 3 does.
func render(root element) (string, error) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	enc := xml.NewEncoder(&b)
	if err := enc.Encode(root); err != nil {
		return "", fmt.Errorf("write %s document: %w", root.XMLName.Local, err)
	}
	if err := enc.Close(); err != nil {
		return "", fmt.Errorf("write %s document: %w", root.XMLName.Local, err)
	}
	return b.String(), nil
}

// Server is what discover_server says of this host.
type Server struct {
	UniqueID        string // the host's id, 16 colon-separated hex bytes
	BootTime        int64  // seconds since the epoch
	TimeZone        string
	UTC             bool
	NTPRunning      bool
	AgentVersion    string
	OVMVersion      string
	CPUType         string // x86_64
	OSName          string
	OSMajor         string
	OSMinor         string
	KernelRelease   string
	KernelVersion   string
	HypervisorType  string
	HypervisorName  string
	VMMMajor        string
	VMMMinor        string
	VMMExtra        string // agent 3: ".3OVM"; the client drops the dots
	VMMCapabilities string // space-separated, as xen's capabilities
	PoolID          string // "" is written as agent 3's "none"
	ManagerID       string
	Hostname        string
	RegisteredIP    string
	ServerRoles     string // xen,utility
	IsMaster        bool
	MembershipState string // Unowned or Pooled
	ClusterState    string
	StatsInterval   int
	// Capabilities are the Capabilities leaves, in order.
	Capabilities []Leaf
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// DiscoverServer is the discover_server document.
func DiscoverServer(s Server) (string, error) {
	srv := el("Server",
		text("Unique_Id", s.UniqueID),
		text("Boot_Time", strconv.FormatInt(s.BootTime, 10)),
		el("Date_Time", text("Time_Zone", s.TimeZone), text("UTC", pyBool(s.UTC))),
		el("NTP", text("Local_Time_Source", pyBool(!s.NTPRunning)), text("Is_NTP_Running", pyBool(s.NTPRunning))),
		text("Agent_Version", s.AgentVersion),
		text("RPM_Version", s.AgentVersion),
		text("OVM_Version", s.OVMVersion),
		text("CPU_Type", s.CPUType),
		text("OS_Type", "Linux"),
		text("OS_Name", s.OSName),
		text("OS_Major_Version", s.OSMajor),
		text("OS_Minor_Version", s.OSMinor),
		text("Hypervisor_Type", s.HypervisorType),
		text("Hypervisor_Name", s.HypervisorName),
		text("Host_Kernel_Release", s.KernelRelease),
		text("Host_Kernel_Version", s.KernelVersion),
		el("VMM",
			el("Version", text("Major", s.VMMMajor), text("Minor", s.VMMMinor), text("Extra", s.VMMExtra)),
			text("Capabilities", s.VMMCapabilities)),
		text("Pool_Unique_Id", orNone(s.PoolID)),
		text("Manager_Unique_Id", orNone(s.ManagerID)),
		text("Hostname", s.Hostname),
		text("Registered_IP", s.RegisteredIP),
		text("Server_Roles", s.ServerRoles),
		text("Is_Current_Master", strconv.FormatBool(s.IsMaster)),
		text("Manager_Core_API_Version", strings.SplitN(s.OVMVersion, "-", 2)[0]),
		text("Membership_State", s.MembershipState),
		text("Cluster_State", s.ClusterState),
		el("Statistic", text("Interval", strconv.Itoa(s.StatsInterval))),
		el("Exports"),
		el("Capabilities", leaves(s.Capabilities)...),
	)
	return render(el("Discover_Server_Result", srv))
}

// CPU is one logical CPU of discover_hardware's CPUInfo.
type CPU struct {
	ID                                                       int
	Vendor, Family, Model, ModelName, Stepping, Cache, Flags string
}

// Hardware is what discover_hardware says of this host.
type Hardware struct {
	ThreadsPerCore, CoresPerSocket, SocketsPerNode, Nodes int
	CPUKHz                                                int64
	TotalPages, FreePages                                 int64 // 4 KiB pages
	CPUs                                                  []CPU
	SystemUUID, Manufacturer, ProductName                 string
}

// DiscoverHardware is the discover_hardware document.
func DiscoverHardware(h Hardware) (string, error) {
	cpus := make([]element, 0, len(h.CPUs))
	for _, c := range h.CPUs {
		e := el("CPU",
			text("vendor_id", c.Vendor), text("cpu_family", c.Family), text("model", c.Model),
			text("model_name", c.ModelName), text("stepping", c.Stepping), text("cache_size", c.Cache),
			text("flags", c.Flags))
		e.Attrs = []xml.Attr{{Name: xml.Name{Local: "ID"}, Value: strconv.Itoa(c.ID)}}
		cpus = append(cpus, e)
	}
	itoa := strconv.Itoa
	i64 := func(n int64) string { return strconv.FormatInt(n, 10) }
	node := el("NodeInformation",
		el("VMM", el("PhysicalInfo",
			text("ThreadsPerCore", itoa(h.ThreadsPerCore)),
			text("CoresPerSocket", itoa(h.CoresPerSocket)),
			text("SocketsPerNode", itoa(h.SocketsPerNode)),
			text("Nodes", itoa(h.Nodes)),
			text("CPUKHz", i64(h.CPUKHz)),
			text("TotalPages", i64(h.TotalPages)),
			text("FreePages", i64(h.FreePages)),
		)),
		el("CPUInfo", el("Proc_Info", cpus...)),
		el("DMTF", el("System",
			text("UUID", h.SystemUUID), text("Manufacturer", h.Manufacturer), text("ProductName", h.ProductName))),
	)
	return render(el("Discover_Hardware_Result", node))
}

// Mount is one mounted file system.
type Mount struct {
	Device, Dir, Type, Options string
}

// DiscoverMounts is the discover_mounted_file_systems document of the
// mounts of type fstype (every type when fstype is empty), grouped by
// type.
func DiscoverMounts(mounts []Mount, fstype string) (string, error) {
	var types []string
	by := map[string][]element{}
	for _, m := range mounts {
		if fstype != "" && m.Type != fstype {
			continue
		}
		if _, ok := by[m.Type]; !ok {
			types = append(types, m.Type)
		}
		e := el("Mount", text("Device", m.Device), text("Mount_Options", m.Options))
		e.Attrs = []xml.Attr{{Name: xml.Name{Local: "Dir"}, Value: m.Dir}}
		by[m.Type] = append(by[m.Type], e)
	}
	root := el("Discover_Mounted_File_Systems_Result")
	for _, t := range types {
		fs := el("Filesystem", by[t]...)
		fs.Attrs = []xml.Attr{{Name: xml.Name{Local: "Type"}, Value: t}}
		root.Children = append(root.Children, fs)
	}
	return render(root)
}

// ParseMounts reads /proc/self/mounts text: device, dir, type, options,
// with the kernel's octal escapes (\040 for a space) undone.
func ParseMounts(data []byte) []Mount {
	var out []Mount
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		out = append(out, Mount{Device: unescapeMount(f[0]), Dir: unescapeMount(f[1]), Type: f[2], Options: f[3]})
	}
	return out
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Topology is the CPU layout /proc/cpuinfo describes.
type Topology struct {
	Sockets, CoresPerSocket, ThreadsPerCore int
	CPUs                                    []CPU
	MHz                                     float64
}

// ParseCPUInfo reads /proc/cpuinfo: the logical CPUs, the number of
// distinct physical ids (sockets; 1 when the kernel shows none), cores per
// socket (cpu cores) and threads per core (siblings / cpu cores). Missing
// fields count as one socket of one-thread cores, so that the three
// multiply to the number of logical CPUs.
func ParseCPUInfo(data []byte) Topology {
	var t Topology
	sockets := map[string]bool{}
	cores, siblings := 0, 0
	var cur *CPU
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			id, _ := strconv.Atoi(v)
			t.CPUs = append(t.CPUs, CPU{ID: id})
			cur = &t.CPUs[len(t.CPUs)-1]
			continue
		case "physical id":
			sockets[v] = true
		case "cpu cores":
			cores, _ = strconv.Atoi(v)
		case "siblings":
			siblings, _ = strconv.Atoi(v)
		case "cpu MHz":
			if t.MHz == 0 {
				t.MHz, _ = strconv.ParseFloat(v, 64)
			}
		}
		if cur == nil {
			continue
		}
		switch k {
		case "vendor_id":
			cur.Vendor = v
		case "cpu family":
			cur.Family = v
		case "model":
			cur.Model = v
		case "model name":
			cur.ModelName = v
		case "stepping":
			cur.Stepping = v
		case "cache size":
			cur.Cache = v
		case "flags":
			cur.Flags = v
		}
	}
	n := max(len(t.CPUs), 1)
	t.Sockets = max(len(sockets), 1)
	t.CoresPerSocket, t.ThreadsPerCore = n/t.Sockets, 1
	if cores > 0 && siblings >= cores && siblings%cores == 0 {
		t.CoresPerSocket, t.ThreadsPerCore = cores, siblings/cores
	}
	if t.Sockets*t.CoresPerSocket*t.ThreadsPerCore != n {
		// Hidden or offline CPUs: say what is online, as one socket.
		t.Sockets, t.CoresPerSocket, t.ThreadsPerCore = 1, n, 1
	}
	slices.SortFunc(t.CPUs, func(a, b CPU) int { return a.ID - b.ID })
	return t
}

// RepoFile is a named entry of a repository folder and its file.
type RepoFile struct {
	Name, File string
}

// Repo is what discover_repositories says of one repository: its
// metadata and the agent 3 folders' contents (Templates/<name>/<file>,
// VirtualMachines/<vm>/vm.cfg, VirtualDisks/<file>, ISOs/<file>).
type Repo struct {
	ID, Version, ManagerID, Alias string
	Templates, VMs                []RepoFile
	Disks, ISOs                   []string
}

// DiscoverRepositories is the discover_repositories document.
func DiscoverRepositories(repos []Repo) (string, error) {
	list := el("RepositoryList")
	for _, r := range repos {
		e := el("Repository", text("Version", r.Version), text("Manager_UUID", r.ManagerID),
			text("Repository_UUID", r.ID), text("Repository_Alias", r.Alias), el("Assemblies"))
		e.Attrs = []xml.Attr{{Name: xml.Name{Local: "Name"}, Value: r.ID}}
		named := func(folder, item string, files []RepoFile) element {
			f := el(folder)
			for _, x := range files {
				it := el(item, text("File", x.File))
				it.Attrs = []xml.Attr{{Name: xml.Name{Local: "Name"}, Value: x.Name}}
				f.Children = append(f.Children, it)
			}
			return f
		}
		plain := func(folder, item string, names []string) element {
			f := el(folder)
			for _, n := range names {
				f.Children = append(f.Children, text(item, n))
			}
			return f
		}
		e.Children = append(e.Children, named("Templates", "Template", r.Templates), named("VirtualMachines", "VirtualMachine", r.VMs),
			plain("VirtualDisks", "Disk", r.Disks), plain("ISOs", "ISO", r.ISOs))
		list.Children = append(list.Children, e)
	}
	return render(el("Discover_Repositories_Result", list))
}

// RepoDB is what discover_repository_db says of one repository this
// host knows.
type RepoDB struct {
	ID, FsLocation, MountPoint, FsType, Version, Alias, ManagerID string
	Status                                                        string // Mounted or Unmounted
}

// DiscoverRepositoryDB is the discover_repository_db document.
func DiscoverRepositoryDB(repos []RepoDB) (string, error) {
	list := el("RepositoryDbList")
	for _, r := range repos {
		e := el("Repository", text("Fs_location", r.FsLocation), text("Mount_point", r.MountPoint),
			text("Filesystem_type", r.FsType), text("Version", r.Version), text("Alias", r.Alias),
			text("Manager_uuid", r.ManagerID), text("Status", r.Status))
		e.Attrs = []xml.Attr{{Name: xml.Name{Local: "Uuid"}, Value: r.ID}}
		list.Children = append(list.Children, e)
	}
	return render(el("Discover_Repository_Db_Result", list))
}

// NetDevice is one network device of discover_network.
type NetDevice struct {
	Name, MAC string
	MTU       int
	// Bridge devices: their IPv4 address, netmask and broadcast (empty
	// without one), and their ports; Physical is the first port that is
	// a physical device ("" for a bridge of virtual ports only).
	Address, Netmask, Broadcast string
	Physical                    string
	Ports                       []string
}

// DiscoverNetwork is the discover_network document:
// Discover_Network_Result/Network/Active with Network/Device[@Name] for
// the physical devices (MAC, Basename, MTU) and Bridges/Device[@Name] for
// the bridges (Family[@Type=AF_INET]: Address, Netmask, Broadcast, MAC;
// Interfaces: PhyInterface and each port as Interface).
func DiscoverNetwork(physical, bridges []NetDevice) (string, error) {
	nets := el("Network")
	for _, d := range physical {
		e := el("Device", text("MAC", d.MAC), text("Basename", d.Name), text("MTU", strconv.Itoa(d.MTU)))
		e.Attrs = []xml.Attr{{Name: xml.Name{Local: "Name"}, Value: d.Name}}
		nets.Children = append(nets.Children, e)
	}
	brs := el("Bridges")
	for _, b := range bridges {
		fam := el("Family", text("Address", b.Address), text("Netmask", b.Netmask), text("Broadcast", b.Broadcast), text("MAC", b.MAC))
		fam.Attrs = []xml.Attr{{Name: xml.Name{Local: "Type"}, Value: "AF_INET"}}
		ifs := el("Interfaces")
		if b.Physical != "" {
			ifs.Children = append(ifs.Children, text("PhyInterface", b.Physical))
		}
		for _, p := range b.Ports {
			ifs.Children = append(ifs.Children, text("Interface", p))
		}
		e := el("Device", fam, ifs, text("MTU", strconv.Itoa(b.MTU)))
		e.Attrs = []xml.Attr{{Name: xml.Name{Local: "Name"}, Value: b.Name}}
		brs.Children = append(brs.Children, e)
	}
	return render(el("Discover_Network_Result", el("Network", el("Active", nets, brs))))
}

// ServerPool is what discover_server_pool says of the pool this host is a
// member of.
type ServerPool struct {
	ID, Alias, VirtualIP string
	MemberIPs            []string
}

// DiscoverServerPool is the discover_server_pool document; nil is the
// empty document of a host in no pool.
func DiscoverServerPool(p *ServerPool) (string, error) {
	root := el("Discover_Server_Pool_Result")
	if p != nil {
		members := el("Member_List")
		for _, ip := range p.MemberIPs {
			members.Children = append(members.Children, el("Member", text("Registered_IP", ip)))
		}
		root.Children = append(root.Children, el("Server_Pool",
			text("Unique_Id", p.ID), text("Pool_Alias", p.Alias),
			text("Master_Virtual_Ip", p.VirtualIP), text("Primary_Virtual_Ip", p.VirtualIP), members))
	}
	return render(root)
}

// PoolFilesystem is a pool file system for discover_pool_filesystem.
type PoolFilesystem struct {
	Type, Target, UUID, NFSBaseUUID, ManagerUUID, Version, PoolUUID string
}

// DiscoverPoolFilesystem is the discover_pool_filesystem document
// (Discover_Pool_Filesystem_Result/Pool_Filesystem with its leaves); nil
// is the empty document of a host whose pool has none.
func DiscoverPoolFilesystem(fs *PoolFilesystem) (string, error) {
	root := el("Discover_Pool_Filesystem_Result")
	if fs != nil {
		root.Children = append(root.Children, el("Pool_Filesystem",
			text("Pool_Filesystem_Type", fs.Type), text("Pool_Filesystem_Target", fs.Target),
			text("Pool_Filesystem_Uuid", fs.UUID), text("Pool_Filesystem_Nfsbase_Uuid", fs.NFSBaseUUID),
			text("Pool_Filesystem_Manager_Uuid", fs.ManagerUUID), text("Pool_Filesystem_Version", fs.Version),
			text("Pool_Filesystem_Pool_Uuid", fs.PoolUUID)))
	}
	return render(root)
}

// StoragePlugin describes one storage plugin for discover_storage_plugins.
type StoragePlugin struct {
	ImplName, Name, Description, Version string
	FilesysType, FilesysName             string // NetworkFS or LocalFS; NFS, ext4, ...
	Generic, ClusterRequired             bool
	// Abilities are the plugin's abilities in agent 3's words (YES, NO,
	// ONLINE, UNSUPPORTED, DEVICE_SINGLE, ...), in order.
	Abilities []Leaf
}

// DiscoverStoragePlugins is discover_storage_plugins' document:
// Discover_Storage_Plugins_Result/storage_plugin_info_list/
// storage_plugin_info[@plugin_impl_name] with its properties and
// abilities.
func DiscoverStoragePlugins(ps []StoragePlugin) (string, error) {
	list := el("storage_plugin_info_list")
	for _, p := range ps {
		info := el("storage_plugin_info",
			text("plugin_name", p.Name), text("plugin_desc", p.Description), text("plugin_version", p.Version),
			text("vendor_name", "ovs-agent"), text("plugin_type", "ifs"),
			text("filesys_type", p.FilesysType), text("filesys_name", p.FilesysName),
			text("generic_plugin", pyBool(p.Generic)), text("cluster_required", pyBool(p.ClusterRequired)),
			el("abilities", leaves(p.Abilities)...))
		info.Attrs = []xml.Attr{{Name: xml.Name{Local: "plugin_impl_name"}, Value: p.ImplName}}
		list.Children = append(list.Children, info)
	}
	return render(el("Discover_Storage_Plugins_Result", list))
}
