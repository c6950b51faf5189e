package agent

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
	"github.com/ovs-agent/ovs-agent/agent/ovm3"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// ovm3APIVersion is the agent 3 API version get_api_version answers.
const ovm3APIVersion = 3

// ovm3APILevel is the Oracle VM release whose agent API this agent
// serves; discover_server's OVM_Version starts with it (CloudStack's
// plugin accepts a host only when OVM_Version starts with "3.2.").
const ovm3APILevel = "3.2.1"

// ovm3MaxSleep bounds the sleep call.
const ovm3MaxSleep = 300

// ovm3Methods are the Oracle VM Agent 3 names (agent/ovm3/PROTOCOL.md),
// the API Apache CloudStack's OVM3 plugin speaks, served beside the
// agent's own namespaces on the same listeners, paths and credentials.
// They are mapped onto the agent's own operations; what cannot be mapped
// is not declared (an unknown-method fault) or is refused with a fault
// that says why.
func (a *Agent) ovm3Methods() []xmlrpc.Def {
	str := func(n string) xmlrpc.Param { return xmlrpc.Req(n, xmlrpc.String) }
	defs := []xmlrpc.Def{
		// Common.
		{Name: "echo", Result: xmlrpc.String, Params: []xmlrpc.Param{str("msg")},
			Help: "Oracle VM Agent 3: answers its message unchanged.",
			Run:  func(_ context.Context, args xmlrpc.Args) (any, error) { return args.String(0), nil }},
		{Name: "get_api_version", Result: xmlrpc.Array,
			Help: "Oracle VM Agent 3: the agent 3 API version this agent serves, as an array whose first element is the int 3.",
			Run:  func(context.Context, xmlrpc.Args) (any, error) { return []any{ovm3APIVersion}, nil }},
		{Name: "sleep", Result: xmlrpc.Nil, Params: []xmlrpc.Param{xmlrpc.Req("secs", xmlrpc.Int)}, Run: ovm3Sleep,
			Help: "Oracle VM Agent 3: wait secs seconds (0 to 300) and answer nil; ends early, with a fault, when the caller goes away (or its connection is closed when the agent stops)."},
		// Host (Linux).
		{Name: "discover_server", Result: xmlrpc.String, Run: a.ovm3DiscoverServer,
			Help: "Oracle VM Agent 3: this host as an XML document in a string (Discover_Server_Result/Server: Unique_Id, Boot_Time, Agent_Version, OS_*, Host_Kernel_*, Hypervisor_*, VMM/Version, Hostname, Registered_IP, Membership_State, Capabilities, ...)."},
		{Name: "discover_hardware", Result: xmlrpc.String, Run: a.ovm3DiscoverHardware,
			Help: "Oracle VM Agent 3: this host's hardware as an XML document in a string (Discover_Hardware_Result/NodeInformation: VMM/PhysicalInfo with the CPU topology, CPUKHz, TotalPages and FreePages in 4 KiB pages; CPUInfo; DMTF/System)."},
		{Name: "get_last_boot_time", Result: xmlrpc.Struct, Run: ovm3LastBootTime,
			Help: "Oracle VM Agent 3: {last_boot_time, local_time}, seconds since the epoch, both <i8>."},
		{Name: "get_timezone", Result: xmlrpc.Array, Run: ovm3Timezone,
			Help: "Oracle VM Agent 3: [time zone name, whether the hardware clock keeps UTC]."},
		{Name: "discover_mounted_file_systems", Result: xmlrpc.String, Params: []xmlrpc.Param{xmlrpc.Opt("fstype", xmlrpc.String)}, Run: a.ovm3Mounts,
			Help: "Oracle VM Agent 3: the mounted file systems of one type (nfs, ext4, ...; all when empty) as an XML document in a string (Discover_Mounted_File_Systems_Result/Filesystem[@Type]/Mount[@Dir] with Device and Mount_Options). A repository's mount is named /OVS/Repositories/<id>, as agent 3 names it (see Managing hosts with Apache CloudStack in README.md)."},
	}
	defs = append(defs, a.ovm3HostMethods()...)
	defs = append(defs, a.ovm3StatsMethods()...)
	defs = append(defs, a.ovm3PasswordMethods()...)
	defs = append(defs, a.ovm3NTPMethods()...)
	defs = append(defs, a.ovm3MigrateMethods()...)
	defs = append(defs, a.ovm3SaveMethods()...)
	defs = append(defs, a.ovm3RepoMethods()...)
	defs = append(defs, a.ovm3RepoChangeMethods()...)
	defs = append(defs, a.ovm3CreateRepoMethods()...)
	defs = append(defs, a.ovm3StorageFSMethods()...)
	defs = append(defs, a.ovm3NetMethods()...)
	defs = append(defs, a.ovm3PoolMethods()...)
	defs = append(defs, a.ovm3PoolFSMethods()...)
	defs = append(defs, a.ovm3OwnerMethods()...)
	defs = append(defs, a.ovm3CSMethods()...)
	defs = append(defs, a.ovm3DomrMethods()...)
	defs = append(defs, a.ovm3StorageHBMethods()...)
	defs = append(defs, a.ovm3CSFileMethods()...)
	defs = append(defs, a.ovm3StorageMethods()...)
	defs = append(defs, a.ovm3ImportMethods()...)
	defs = append(defs, a.ovm3VMMethods()...)
	names := map[string]bool{}
	for _, d := range defs {
		names[d.Name] = true
	}
	return append(defs, a.ovm3DispatchMethods(names)...)
}

func ovm3Sleep(ctx context.Context, args xmlrpc.Args) (any, error) {
	secs := args.Int(0)
	if secs < 0 || secs > ovm3MaxSleep {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "sleep %d: give 0 to %d seconds", secs, ovm3MaxSleep)
	}
	t := time.NewTimer(time.Duration(secs) * time.Second)
	defer t.Stop()
	select {
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, xmlrpc.Faultf(xmlrpc.Cancelled, "sleep ended early: %v", ctx.Err())
	}
}

func ovm3LastBootTime(context.Context, xmlrpc.Args) (any, error) {
	info, err := hostinfo.Read(hostinfo.DefaultPaths)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "read the boot time: %v", err)
	}
	return map[string]any{"last_boot_time": xmlrpc.I8(info.BootTime.Unix()), "local_time": xmlrpc.I8(time.Now().Unix())}, nil
}

// hostTimezone is the name of the host's time zone: TZ, /etc/timezone,
// or the zoneinfo file /etc/localtime links to; UTC when none says.
func hostTimezone() string {
	if tz := strings.TrimPrefix(os.Getenv("TZ"), ":"); tz != "" && !strings.HasPrefix(tz, "/") {
		return tz
	}
	if b, err := os.ReadFile("/etc/timezone"); err == nil && len(b) < 256 {
		if tz := strings.TrimSpace(string(b)); tz != "" {
			return tz
		}
	}
	if l, err := os.Readlink("/etc/localtime"); err == nil {
		if _, zone, ok := strings.Cut(l, "zoneinfo/"); ok && zone != "" {
			return zone
		}
	}
	return "UTC"
}

// hardwareClockUTC reads /etc/adjtime's third line (UTC or LOCAL); with
// no file the clock is taken as UTC, as systemd and util-linux do.
func hardwareClockUTC() bool {
	b, err := os.ReadFile("/etc/adjtime")
	if err != nil || len(b) > 4096 {
		return true
	}
	lines := strings.Split(string(b), "\n")
	return len(lines) < 3 || strings.TrimSpace(lines[2]) != "LOCAL"
}

func ovm3Timezone(context.Context, xmlrpc.Args) (any, error) {
	return []any{hostTimezone(), hardwareClockUTC()}, nil
}

// hostUniqueID is the host's id as agent 3 writes it, 16 colon-separated
// hex bytes: the firmware's system UUID, or the machine id.
func hostUniqueID() string {
	for _, p := range []string{"/sys/class/dmi/id/product_uuid", "/etc/machine-id"} {
		b, err := os.ReadFile(p)
		if err != nil || len(b) > 128 {
			continue
		}
		h := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(string(b)), "-", ""))
		if len(h) != 32 || strings.Trim(h, "0123456789abcdef") != "" {
			continue
		}
		parts := make([]string, 16)
		for i := range parts {
			parts[i] = h[2*i : 2*i+2]
		}
		return strings.Join(parts, ":")
	}
	return ""
}

// osRelease is the host's distribution: its name and major and minor
// version, from /etc/os-release.
func osRelease() (name, major, minor string) {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil || len(b) > 64<<10 {
		return runtime.GOOS, "", ""
	}
	kv := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = strings.Trim(v, `"'`)
		}
	}
	major, minor, _ = strings.Cut(kv["VERSION_ID"], ".")
	if minor == "" {
		minor = "0"
	}
	return kv["NAME"], major, minor
}

// localIP is the address of this host the caller's connection reached.
func localIP(ctx context.Context) string {
	if c, ok := ctx.Value(connKey{}).(net.Conn); ok {
		if ta, ok := c.LocalAddr().(*net.TCPAddr); ok {
			return ta.IP.String()
		}
	}
	return ""
}

func (a *Agent) ovm3DiscoverServer(ctx context.Context, _ xmlrpc.Args) (any, error) {
	info, err := hostinfo.Read(hostinfo.DefaultPaths)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "read host information: %v", err)
	}
	osName, osMajor, osMinor := osRelease()
	major, minor, extra := splitVersion(a.opts.Version)
	s := ovm3.Server{
		UniqueID: hostUniqueID(), BootTime: info.BootTime.Unix(),
		TimeZone: hostTimezone(), UTC: hardwareClockUTC(),
		AgentVersion: a.opts.Version, OVMVersion: ovm3APILevel + "-ovs-agent-" + a.opts.Version, CPUType: info.Machine,
		OSName: osName, OSMajor: osMajor, OSMinor: osMinor,
		KernelRelease: info.Kernel, KernelVersion: info.KernelVersion,
		StatsInterval:  int(a.sampler.Period() / time.Second),
		HypervisorType: "ovs-vmm", HypervisorName: "ovs-vmm",
		VMMMajor: major, VMMMinor: minor, VMMExtra: extra,
		Hostname: info.Hostname, RegisteredIP: localIP(ctx),
		ServerRoles: ovm3Roles, MembershipState: "Unowned", ClusterState: "Offline",
		Capabilities: []ovm3.Leaf{
			{Name: "NFS", Text: "True"}, {Name: "LOCAL_STORAGE_ELEMENT", Text: "True"},
			{Name: "ISCSI", Text: "False"}, {Name: "FIBRE_CHANNEL", Text: "False"},
			{Name: "VM_SUSPEND", Text: "True"}, {Name: "VM_SERIAL_CONSOLE", Text: "True"},
			{Name: "VM_VNC_CONSOLE", Text: "True"}, {Name: "VM_MEMORY_ALIGNMENT", Text: "1048576"},
			{Name: "HIGH_AVAILABILITY", Text: pyBoolStr(a.pool != nil)},
			{Name: "CLUSTERS", Text: "False"}, {Name: "MIGRATION_SETUP", Text: "False"},
		},
	}
	if st := a.state.Load(); st != nil && st.cfg != nil {
		// The engines domains run on here, as xen's capabilities list
		// what its guests may be.
		s.VMMCapabilities = strings.Join(a.engines(st.cfg.Agent.Hypervisor), " ")
	}
	// Agent 3's states: Unowned; Owned by a manager (take_ownership);
	// Pooled, owned and joined to an agent 3 server pool.
	owner, err := a.ovm3CurrentOwner()
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "discover_server: %v", err)
	}
	if owner != nil {
		s.ManagerID, s.MembershipState = owner.ManagerUUID, "Owned"
	}
	if a.pool != nil {
		pi := a.pool.view(ctx)
		s.IsMaster = pi.Master != "" && pi.Master == pi.Member
		if pi.State == "member" {
			s.ClusterState = "Online"
		}
		if id := a.ovm3ServerPoolView(ctx); id != "" {
			s.PoolID = id
			if owner != nil {
				s.MembershipState = "Pooled"
			}
		}
	}
	doc, err := ovm3.DiscoverServer(s)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "%v", err)
	}
	return doc, nil
}

func pyBoolStr(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// splitVersion is the agent's version as agent 3's VMM Major, Minor and
// Extra (the rest, with its leading dot).
func splitVersion(v string) (major, minor, extra string) {
	v = strings.TrimPrefix(v, "v")
	major, rest, _ := strings.Cut(v, ".")
	minor, extra, found := strings.Cut(rest, ".")
	if found {
		extra = "." + extra
	}
	if minor == "" {
		minor = "0"
	}
	return major, minor, extra
}

func (a *Agent) ovm3DiscoverHardware(context.Context, xmlrpc.Args) (any, error) {
	info, err := hostinfo.Read(hostinfo.DefaultPaths)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "read host information: %v", err)
	}
	cpuinfo, err := os.ReadFile(hostinfo.DefaultPaths.CPUInfo)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "read CPU information: %v", err)
	}
	top := ovm3.ParseCPUInfo(cpuinfo)
	uuid := hostUniqueID()
	manufacturer, _ := readSmall("/sys/class/dmi/id/sys_vendor")
	product, _ := readSmall("/sys/class/dmi/id/product_name")
	doc, err := ovm3.DiscoverHardware(ovm3.Hardware{
		ThreadsPerCore: top.ThreadsPerCore, CoresPerSocket: top.CoresPerSocket, SocketsPerNode: top.Sockets, Nodes: 1,
		CPUKHz: int64(info.CPUMHz * 1000), TotalPages: info.MemoryTotal / 4096, FreePages: info.MemoryAvail / 4096,
		CPUs: top.CPUs, SystemUUID: uuid, Manufacturer: manufacturer, ProductName: product,
	})
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "%v", err)
	}
	return doc, nil
}

func readSmall(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if len(b) > 4096 {
		b = b[:4096]
	}
	return strings.TrimSpace(string(b)), nil
}

func (a *Agent) ovm3Mounts(_ context.Context, args xmlrpc.Args) (any, error) {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "read the mount table: %v", err)
	}
	mounts := ovm3.ParseMounts(data)
	pm := a.ovm3Paths()
	for i := range mounts {
		mounts[i].Dir = pm.external(filepath.Clean(mounts[i].Dir))
	}
	doc, err := ovm3.DiscoverMounts(mounts, args.StringOr(0, ""))
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "%v", err)
	}
	return doc, nil
}
