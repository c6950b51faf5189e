package test

import (
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The shapes of Oracle VM Agent 3.2's answers as the canned replies in
// the unit tests of Apache CloudStack's OVM3 plugin record them
// (plugins/hypervisors/ovm3/src/test/java/com/cloud/hypervisor/ovm3/objects/:
// LinuxTest, XenTest, NtpTest, RepositoryTest, StoragePluginTest). The
// values are not copied; only each reply's paths and the XML-RPC type at
// each (for the XML documents in strings, the element paths and
// attributes), written out here. The e2e tests replay the same calls
// against a real agent and check its answers with o3Shape: every
// recorded path must be there with the recorded type, unless it is
// listed as not sent (with the reason) or as optional.
//
// Value paths: "" is the answer, ".name" a struct member, "[]" every item
// of an array, "[N]" its Nth item (for the arrays agent 3 uses as
// tuples). Document paths: "/A/B" elements, "/A/B/@c" attributes.

// o3Recorded is one call's recorded shape.
type o3Recorded struct {
	paths map[string]string // path -> XML-RPC type ("" for document paths)
	// notSent: recorded paths this agent does not send, each with why.
	// The test fails if one of them appears (then it belongs in paths).
	notSent map[string]string
	// optional: recorded paths whose presence depends on the data (a
	// vm.cfg key), checked for their type when present.
	optional map[string]bool
}

// shapeSpec parses "path type" lines (type omitted for document paths).
func shapeSpec(lines string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(lines, "\n") {
		f := strings.Fields(l)
		switch len(f) {
		case 0:
		case 1:
			if strings.HasPrefix(f[0], "/") {
				out[f[0]] = ""
			} else {
				out[""] = f[0] // the answer itself
			}
		default:
			out[f[0]] = f[1]
		}
	}
	return out
}

// prefixLines writes each blank-separated name with prefix, a line each.
func prefixLines(prefix, names string) string {
	var b strings.Builder
	for _, n := range strings.Fields(names) {
		b.WriteString(prefix + n + "\n")
	}
	return b.String()
}

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// xendDomain is a running domain as XenTest's list_vm and list_vms
// replies record it (an xend domain struct).
const xendDomain = `struct
.on_xend_stop string
.on_xend_start string
.console_mfn string
.store_mfn string
.features string
.image struct
.image.tsc_mode string
.image.kernel string
.image.superpages string
.image.nomigrate string
.image.expose_host_uuid string
.cpus array
.cpus[] array
.uuid string
.on_reboot string
.on_poweroff string
.on_crash string
.state string
.cpu_weight string
.cpu_cap string
.online_vcpus string
.memory string
.maxmem string
.shadow_memory string
.status string
.pool_name string
.description string
.start_time string
.cpu_time string
.name string
.builder string
.bootloader string
.bootloader_args string
.domid string
.vcpus string
.device struct
.device.vif array
.device.vif[] struct
.device.vif[].bridge string
.device.vif[].mac string
.device.vif[].script string
.device.vif[].uuid string
.device.vif[].backend string
.device.vkbd array
.device.vkbd[] struct
.device.vkbd[].backend string
.device.console array
.device.console[] struct
.device.console[].protocol string
.device.console[].location string
.device.console[].uuid string
.device.vfb array
.device.vfb[] struct
.device.vfb[].vncunused string
.device.vfb[].vnc string
.device.vfb[].xauthority string
.device.vfb[].vnclisten string
.device.vfb[].vncpasswd string
.device.vfb[].keymap string
.device.vfb[].location string
.device.vfb[].uuid string
.device.vbd array
.device.vbd[] struct
.device.vbd[].protocol string
.device.vbd[].uuid string
.device.vbd[].bootable string
.device.vbd[].dev string
.device.vbd[].uname string
.device.vbd[].mode string
.device.vbd[].VDI string
.device.vbd[].backend string`

// xendNotSent: xend's internals, which no VMM of this agent has; the
// plugin's client reads none of them.
var xendNotSent = map[string]string{
	".on_xend_stop": "xend's own start and stop policy", ".on_xend_start": "xend's own start and stop policy",
	".console_mfn": "Xen machine frame", ".store_mfn": "Xen machine frame", ".features": "Xen guest features",
	".image": "the Xen kernel image", ".image.tsc_mode": "", ".image.kernel": "", ".image.superpages": "", ".image.nomigrate": "", ".image.expose_host_uuid": "",
	".cpus": "Xen vCPU pinning", ".cpus[]": "", ".shadow_memory": "Xen shadow page tables", ".status": "xend's internal status",
	".device.vif[].backend": "Xen back-end domain", ".device.vkbd[].backend": "", ".device.vbd[].backend": "",
	".device.vbd[].VDI": "Xen API VDI", ".device.vbd[].protocol": "Xen ring protocol", ".device.vbd[].bootable": "",
	".device.vfb[].vncunused": "", ".device.vfb[].vnc": "", ".device.vfb[].xauthority": "", ".device.vfb[].vncpasswd": "the VNC password is never answered",
	".device.vfb[].keymap": "not kept for a running domain",
	".device.vif[].uuid":   "this agent's devices have no UUIDs", ".device.vbd[].uuid": "", ".device.vfb[].uuid": "", ".device.console[].uuid": "",
	".device.vif[].script": "no hotplug scripts: the VMM attaches the tap to the bridge",
	".cpu_weight":          "not applied by this agent (Xen's credit scheduler; see vmcfg's not-applied keys)", ".cpu_cap": "not applied by this agent",
	".device.vkbd[]": "no paravirtual keyboard (the VNC display has its own)",
}

func prefixed(p string, m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[p+k] = v
	}
	return out
}

var o3Shapes = map[string]o3Recorded{
	// CommonTest.
	"get_api_version": {paths: shapeSpec("array\n[0] int")},
	// CloudStackPluginTest (CloudStack's own agent module).
	"ovs_dom0_stats":                  {paths: shapeSpec("struct\n.cpu string\n.total string\n.free string\n.rx string\n.tx string")},
	"ovs_domU_stats":                  {paths: shapeSpec("struct\n.cputime string\n.uptime string\n.vcpus string\n.rd_bytes string\n.wr_bytes string\n.rd_ops string\n.wr_ops string\n.rx_bytes string\n.tx_bytes string")},
	"exec_domr":                       {paths: shapeSpec("struct\n.out string\n.err string\n.rc i8")},
	"check_dom0_storage_health_check": {paths: shapeSpec("array\n[0] boolean\n[1] boolean")},
	// PoolOCFS2Test.
	"discover_pool_filesystem": {paths: shapeSpec(`/Discover_Pool_Filesystem_Result
/Discover_Pool_Filesystem_Result/Pool_Filesystem
/Discover_Pool_Filesystem_Result/Pool_Filesystem/Pool_Filesystem_Type
/Discover_Pool_Filesystem_Result/Pool_Filesystem/Pool_Filesystem_Target
/Discover_Pool_Filesystem_Result/Pool_Filesystem/Pool_Filesystem_Uuid
/Discover_Pool_Filesystem_Result/Pool_Filesystem/Pool_Filesystem_Nfsbase_Uuid
/Discover_Pool_Filesystem_Result/Pool_Filesystem/Pool_Filesystem_Manager_Uuid
/Discover_Pool_Filesystem_Result/Pool_Filesystem/Pool_Filesystem_Version
/Discover_Pool_Filesystem_Result/Pool_Filesystem/Pool_Filesystem_Pool_Uuid`)},
	// LinuxTest.
	"get_last_boot_time": {paths: shapeSpec("struct\n.last_boot_time i8\n.local_time i8")},
	"get_timezone":       {paths: shapeSpec("array\n[0] string\n[1] boolean")},
	"discover_server": {paths: shapeSpec(`/Discover_Server_Result
/Discover_Server_Result/Server
/Discover_Server_Result/Server/Unique_Id
/Discover_Server_Result/Server/Boot_Time
/Discover_Server_Result/Server/Date_Time
/Discover_Server_Result/Server/Date_Time/Time_Zone
/Discover_Server_Result/Server/Date_Time/UTC
/Discover_Server_Result/Server/NTP
/Discover_Server_Result/Server/NTP/Local_Time_Source
/Discover_Server_Result/Server/NTP/Is_NTP_Running
/Discover_Server_Result/Server/Agent_Version
/Discover_Server_Result/Server/RPM_Version
/Discover_Server_Result/Server/OVM_Version
/Discover_Server_Result/Server/CPU_Type
/Discover_Server_Result/Server/OS_Type
/Discover_Server_Result/Server/OS_Name
/Discover_Server_Result/Server/OS_Major_Version
/Discover_Server_Result/Server/OS_Minor_Version
/Discover_Server_Result/Server/Hypervisor_Type
/Discover_Server_Result/Server/Hypervisor_Name
/Discover_Server_Result/Server/Host_Kernel_Release
/Discover_Server_Result/Server/Host_Kernel_Version
/Discover_Server_Result/Server/VMM
/Discover_Server_Result/Server/VMM/Version
/Discover_Server_Result/Server/VMM/Version/Major
/Discover_Server_Result/Server/VMM/Version/Minor
/Discover_Server_Result/Server/VMM/Version/Extra
/Discover_Server_Result/Server/VMM/Compile_Information
/Discover_Server_Result/Server/VMM/Compile_Information/Compiler
/Discover_Server_Result/Server/VMM/Compile_Information/By
/Discover_Server_Result/Server/VMM/Compile_Information/Domain
/Discover_Server_Result/Server/VMM/Compile_Information/Date
/Discover_Server_Result/Server/VMM/Capabilities
/Discover_Server_Result/Server/Pool_Unique_Id
/Discover_Server_Result/Server/Manager_Unique_Id
/Discover_Server_Result/Server/Hostname
/Discover_Server_Result/Server/Registered_IP
/Discover_Server_Result/Server/Node_Number
/Discover_Server_Result/Server/Server_Roles
/Discover_Server_Result/Server/Is_Current_Master
/Discover_Server_Result/Server/Master_Virtual_Ip
/Discover_Server_Result/Server/Manager_Core_API_Version
/Discover_Server_Result/Server/Membership_State
/Discover_Server_Result/Server/Cluster_State
/Discover_Server_Result/Server/Statistic
/Discover_Server_Result/Server/Statistic/Interval
/Discover_Server_Result/Server/Exports
/Discover_Server_Result/Server/Capabilities
/Discover_Server_Result/Server/Capabilities/ISCSI
/Discover_Server_Result/Server/Capabilities/FIBRE_CHANNEL
/Discover_Server_Result/Server/Capabilities/LOCAL_STORAGE_ELEMENT
/Discover_Server_Result/Server/Capabilities/NFS
/Discover_Server_Result/Server/Capabilities/CLUSTERS
/Discover_Server_Result/Server/Capabilities/HIGH_AVAILABILITY
/Discover_Server_Result/Server/Capabilities/VM_SUSPEND
/Discover_Server_Result/Server/Capabilities/VM_SERIAL_CONSOLE
/Discover_Server_Result/Server/Capabilities/VM_VNC_CONSOLE
/Discover_Server_Result/Server/Capabilities/VM_MEMORY_ALIGNMENT
/Discover_Server_Result/Server/Capabilities/MIGRATION_SETUP
/Discover_Server_Result/Server/Capabilities/MAX_CONCURRENT_MIGRATION_IN
/Discover_Server_Result/Server/Capabilities/MAX_CONCURRENT_MIGRATION_OUT
/Discover_Server_Result/Server/Capabilities/CONCURRENT_MIGRATION
/Discover_Server_Result/Server/Capabilities/ALL_VM_CPU_OVERSUBSCRIBE
/Discover_Server_Result/Server/Capabilities/PER_VM_CPU_OVERSUBSCRIBE
/Discover_Server_Result/Server/Capabilities/HVM_MAX_VNICS
/Discover_Server_Result/Server/Capabilities/MTU_CONFIGURATION
/Discover_Server_Result/Server/Capabilities/POWER_ON_WOL
/Discover_Server_Result/Server/Capabilities/BOND_MODE_LINK_AGGREGATION
/Discover_Server_Result/Server/Capabilities/BOND_MODE_ACTIVE_BACKUP
/Discover_Server_Result/Server/Capabilities/BOND_MODE_ADAPTIVE_LOAD_BALANCING
/Discover_Server_Result/Server/Capabilities/YUM_PACKAGE_MANAGEMENT`),
		notSent: map[string]string{
			"/Discover_Server_Result/Server/Node_Number":             "an OCFS2 cluster node number; this agent joins no OCFS2 cluster",
			"/Discover_Server_Result/Server/Master_Virtual_Ip":       "a pool's virtual IP; a [pool] has none (its master is elected in etcd)",
			"/Discover_Server_Result/Server/VMM/Compile_Information": "Xen's build information", "/Discover_Server_Result/Server/VMM/Compile_Information/Compiler": "",
			"/Discover_Server_Result/Server/VMM/Compile_Information/By": "", "/Discover_Server_Result/Server/VMM/Compile_Information/Domain": "", "/Discover_Server_Result/Server/VMM/Compile_Information/Date": "",
			// Capabilities this agent does not claim: a missing one reads as
			// not there, never as True.
			"/Discover_Server_Result/Server/Capabilities/MAX_CONCURRENT_MIGRATION_IN":       "no migration concurrency is promised",
			"/Discover_Server_Result/Server/Capabilities/MAX_CONCURRENT_MIGRATION_OUT":      "no migration concurrency is promised",
			"/Discover_Server_Result/Server/Capabilities/CONCURRENT_MIGRATION":              "no migration concurrency is promised",
			"/Discover_Server_Result/Server/Capabilities/ALL_VM_CPU_OVERSUBSCRIBE":          "",
			"/Discover_Server_Result/Server/Capabilities/PER_VM_CPU_OVERSUBSCRIBE":          "",
			"/Discover_Server_Result/Server/Capabilities/HVM_MAX_VNICS":                     "",
			"/Discover_Server_Result/Server/Capabilities/MTU_CONFIGURATION":                 "the network is the host's configuration",
			"/Discover_Server_Result/Server/Capabilities/POWER_ON_WOL":                      "",
			"/Discover_Server_Result/Server/Capabilities/BOND_MODE_LINK_AGGREGATION":        "the network is the host's configuration",
			"/Discover_Server_Result/Server/Capabilities/BOND_MODE_ACTIVE_BACKUP":           "the network is the host's configuration",
			"/Discover_Server_Result/Server/Capabilities/BOND_MODE_ADAPTIVE_LOAD_BALANCING": "the network is the host's configuration",
			"/Discover_Server_Result/Server/Capabilities/YUM_PACKAGE_MANAGEMENT":            "",
		}},
	"discover_hardware": {paths: shapeSpec(`/Discover_Hardware_Result
/Discover_Hardware_Result/NodeInformation
/Discover_Hardware_Result/NodeInformation/VMM
/Discover_Hardware_Result/NodeInformation/VMM/PhysicalInfo
/Discover_Hardware_Result/NodeInformation/VMM/PhysicalInfo/ThreadsPerCore
/Discover_Hardware_Result/NodeInformation/VMM/PhysicalInfo/CoresPerSocket
/Discover_Hardware_Result/NodeInformation/VMM/PhysicalInfo/SocketsPerNode
/Discover_Hardware_Result/NodeInformation/VMM/PhysicalInfo/Nodes
/Discover_Hardware_Result/NodeInformation/VMM/PhysicalInfo/CPUKHz
/Discover_Hardware_Result/NodeInformation/VMM/PhysicalInfo/TotalPages
/Discover_Hardware_Result/NodeInformation/VMM/PhysicalInfo/FreePages
/Discover_Hardware_Result/NodeInformation/VMM/PhysicalInfo/HW_Caps
/Discover_Hardware_Result/NodeInformation/VMM/PhysicalInfo/HW_Caps/Item_0
/Discover_Hardware_Result/NodeInformation/CPUInfo
/Discover_Hardware_Result/NodeInformation/CPUInfo/Proc_Info
/Discover_Hardware_Result/NodeInformation/CPUInfo/Proc_Info/CPU
/Discover_Hardware_Result/NodeInformation/CPUInfo/Proc_Info/CPU/@ID
/Discover_Hardware_Result/NodeInformation/CPUInfo/Proc_Info/CPU/vendor_id
/Discover_Hardware_Result/NodeInformation/CPUInfo/Proc_Info/CPU/cpu_family
/Discover_Hardware_Result/NodeInformation/CPUInfo/Proc_Info/CPU/model
/Discover_Hardware_Result/NodeInformation/CPUInfo/Proc_Info/CPU/model_name
/Discover_Hardware_Result/NodeInformation/CPUInfo/Proc_Info/CPU/stepping
/Discover_Hardware_Result/NodeInformation/CPUInfo/Proc_Info/CPU/cache_size
/Discover_Hardware_Result/NodeInformation/CPUInfo/Proc_Info/CPU/flags
/Discover_Hardware_Result/NodeInformation/IO
/Discover_Hardware_Result/NodeInformation/IO/SCSI
/Discover_Hardware_Result/NodeInformation/DMTF
/Discover_Hardware_Result/NodeInformation/DMTF/BIOS
/Discover_Hardware_Result/NodeInformation/DMTF/System
/Discover_Hardware_Result/NodeInformation/DMTF/System/UUID
/Discover_Hardware_Result/NodeInformation/DMTF/System/Manufacturer
/Discover_Hardware_Result/NodeInformation/DMTF/System/ProductName
/Discover_Hardware_Result/NodeInformation/DMTF/Chassis`),
		notSent: map[string]string{
			"/Discover_Hardware_Result/NodeInformation/VMM/PhysicalInfo/HW_Caps":        "Xen's hardware capability words",
			"/Discover_Hardware_Result/NodeInformation/VMM/PhysicalInfo/HW_Caps/Item_0": "",
			"/Discover_Hardware_Result/NodeInformation/IO":                              "the host's I/O devices (the plugin's client does not read IO)",
			"/Discover_Hardware_Result/NodeInformation/IO/SCSI":                         "",
			"/Discover_Hardware_Result/NodeInformation/DMTF/BIOS":                       "the SMBIOS tables beyond System",
			"/Discover_Hardware_Result/NodeInformation/DMTF/Chassis":                    "the SMBIOS tables beyond System",
		}},
	"discover_mounted_file_systems": {paths: shapeSpec(`/Discover_Mounted_File_Systems_Result
/Discover_Mounted_File_Systems_Result/Filesystem
/Discover_Mounted_File_Systems_Result/Filesystem/@Type
/Discover_Mounted_File_Systems_Result/Filesystem/Mount
/Discover_Mounted_File_Systems_Result/Filesystem/Mount/@Dir
/Discover_Mounted_File_Systems_Result/Filesystem/Mount/Device
/Discover_Mounted_File_Systems_Result/Filesystem/Mount/Mount_Options`)},
	// NtpTest.
	"get_ntp": {paths: shapeSpec("array\n[0] array\n[0][] string\n[1] boolean\n[2] boolean")},
	// XenTest.
	"list_vm":  {paths: shapeSpec(xendDomain), notSent: xendNotSent},
	"list_vms": {paths: prefixed("[]", shapeSpec(xendDomain)), notSent: prefixed("[]", xendNotSent)},
	"get_vm_config": {paths: shapeSpec(`struct
.vif array
.vif[] string
.disk array
.disk[] string
.vfb array
.vfb[] string
.extra string
.bootargs string
.bootloader string
.name string
.uuid string
.OVM_simple_name string
.OVM_description string
.OVM_high_availability boolean
.OVM_cpu_compat_group string
.OVM_domain_type string
.guest_os_type string
.on_reboot string
.on_poweroff string
.on_crash string
.cpu_weight int
.cpu_cap int
.memory int
.maxvcpus int
.vcpus int`),
		// vm.cfg keys: there when the vm.cfg has them.
		optional: set(".extra", ".bootargs", ".bootloader", ".OVM_cpu_compat_group", ".maxvcpus")},
	// RepositoryTest.
	"discover_repositories": {paths: shapeSpec(`/Discover_Repositories_Result
/Discover_Repositories_Result/RepositoryList
/Discover_Repositories_Result/RepositoryList/Repository
/Discover_Repositories_Result/RepositoryList/Repository/@Name
/Discover_Repositories_Result/RepositoryList/Repository/Version
/Discover_Repositories_Result/RepositoryList/Repository/Manager_UUID
/Discover_Repositories_Result/RepositoryList/Repository/Repository_UUID
/Discover_Repositories_Result/RepositoryList/Repository/Repository_Alias
/Discover_Repositories_Result/RepositoryList/Repository/Assemblies
/Discover_Repositories_Result/RepositoryList/Repository/Templates
/Discover_Repositories_Result/RepositoryList/Repository/Templates/Template
/Discover_Repositories_Result/RepositoryList/Repository/Templates/Template/@Name
/Discover_Repositories_Result/RepositoryList/Repository/Templates/Template/File
/Discover_Repositories_Result/RepositoryList/Repository/VirtualMachines
/Discover_Repositories_Result/RepositoryList/Repository/VirtualMachines/VirtualMachine
/Discover_Repositories_Result/RepositoryList/Repository/VirtualMachines/VirtualMachine/@Name
/Discover_Repositories_Result/RepositoryList/Repository/VirtualMachines/VirtualMachine/File
/Discover_Repositories_Result/RepositoryList/Repository/VirtualDisks
/Discover_Repositories_Result/RepositoryList/Repository/VirtualDisks/Disk
/Discover_Repositories_Result/RepositoryList/Repository/ISOs
/Discover_Repositories_Result/RepositoryList/Repository/ISOs/ISO`)},
	"discover_repository_db": {paths: shapeSpec(`/Discover_Repository_Db_Result
/Discover_Repository_Db_Result/RepositoryDbList
/Discover_Repository_Db_Result/RepositoryDbList/Repository
/Discover_Repository_Db_Result/RepositoryDbList/Repository/@Uuid
/Discover_Repository_Db_Result/RepositoryDbList/Repository/Fs_location
/Discover_Repository_Db_Result/RepositoryDbList/Repository/Mount_point
/Discover_Repository_Db_Result/RepositoryDbList/Repository/Filesystem_type
/Discover_Repository_Db_Result/RepositoryDbList/Repository/Version
/Discover_Repository_Db_Result/RepositoryDbList/Repository/Alias
/Discover_Repository_Db_Result/RepositoryDbList/Repository/Manager_uuid
/Discover_Repository_Db_Result/RepositoryDbList/Repository/Status`)},
	// StoragePluginTest.
	"discover_storage_plugins": {paths: shapeSpec(`/Discover_Storage_Plugins_Result
/Discover_Storage_Plugins_Result/storage_plugin_info_list
/Discover_Storage_Plugins_Result/storage_plugin_info_list/storage_plugin_info
/Discover_Storage_Plugins_Result/storage_plugin_info_list/storage_plugin_info/@plugin_impl_name
` + prefixLines("/Discover_Storage_Plugins_Result/storage_plugin_info_list/storage_plugin_info/",
		"plugin_name plugin_desc plugin_version vendor_name plugin_type filesys_type filesys_name generic_plugin cluster_required "+
			"fs_api_version extended_api_version required_api_vers fs_extra_info_help file_extra_info_help ss_extra_info_help abilities "+
			"abilities/resize abilities/resize_is_sync abilities/clone abilities/clone_is_sync abilities/custom_clone_name "+
			"abilities/snapshot abilities/snap_is_sync abilities/custom_snap_name abilities/snapclone abilities/snapclone_is_sync "+
			"abilities/splitclone abilities/splitclone_is_sync abilities/splitclone_while_open abilities/access_control "+
			"abilities/require_storage_name abilities/backing_device_type")),
		notSent: prefixed("/Discover_Storage_Plugins_Result/storage_plugin_info_list/storage_plugin_info/", map[string]string{
			"fs_api_version":       "Oracle Storage Connect API versions: the calls here are this agent's, not a Storage Connect plugin's",
			"extended_api_version": "", "required_api_vers": "",
			"fs_extra_info_help": "no extra information is taken", "file_extra_info_help": "", "ss_extra_info_help": "",
		})},
	// StoragePluginTest: the mount reply, also recorded as
	// getFileSystemInfo's and listFileSystems'; the file create reply, also
	// getFileInfo's.
	"storage_plugin_mount":             {paths: shapeSpec(storageDetails)},
	"storage_plugin_getFileSystemInfo": {paths: shapeSpec(storageDetails)},
	"storage_plugin_listFileSystems":   {paths: shapeSpec(storageDetails)},
	"storage_plugin_create":            {paths: shapeSpec(fileProperties)},
	"storage_plugin_getFileInfo":       {paths: shapeSpec(fileProperties)},
}

const storageDetails = `struct
.status string
.uuid string
.ss_uuid string
.size string
.free_sz string
.state string
.mount_options array
.access_grp_names array
.access_path string
.name string`

const fileProperties = `struct
.fr_type string
.ondisk_sz string
.fs_uuid string
.file_path string
.file_sz string`

// valueShape lists the paths of an answer with their types; an empty
// array's item paths are marked "(empty)" (what its items would be
// cannot be seen).
func valueShape(v o3Value) map[string]string {
	out := map[string]string{}
	var walk func(v o3Value, p string)
	walk = func(v o3Value, p string) {
		if v.Type != "array" || out[p] == "" || out[p] == "(empty)" {
			out[p] = v.Type
		}
		switch v.Type {
		case "struct":
			for k, m := range v.Members {
				walk(m, p+"."+k)
			}
		case "array":
			if _, seen := out[p+"[]"]; len(v.Items) == 0 && !seen {
				out[p+"[]"] = "(empty)" // another item of a merged array may have some
			}
			for i, it := range v.Items {
				walk(it, p+"["+strconv.Itoa(i)+"]")
				walk(it, p+"[]")
			}
		}
	}
	walk(v, "")
	return out
}

// docShape lists the element paths and attributes of a document; an
// element without child elements marks its descendants "(empty)".
func docShape(n o3Node) map[string]string {
	out := map[string]string{}
	var walk func(n o3Node, p string)
	walk = func(n o3Node, p string) {
		p += "/" + n.XMLName.Local
		out[p] = ""
		for _, a := range n.Attrs {
			out[p+"/@"+a.Name.Local] = ""
		}
		if len(n.Children) == 0 {
			out[p+"/"] = "(empty)"
		}
		for _, c := range n.Children {
			walk(c, p)
		}
	}
	walk(n, "")
	return out
}

// underEmpty says whether p lies under a container that is empty in ours.
func underEmpty(ours map[string]string, p string) bool {
	for i := len(p) - 1; i > 0; i-- {
		switch {
		case strings.HasSuffix(p[:i+1], "[]") && ours[p[:i+1]] == "(empty)":
			return true
		case p[i] == '/' && ours[p[:i+1]] == "(empty)":
			return true
		}
	}
	return false
}

// o3Shape checks an answer of method (a value, or the document in its
// string for the documents) against the recorded shape.
func o3Shape(t *testing.T, method string, v o3Value) {
	t.Helper()
	rec, ok := o3Shapes[method]
	if !ok {
		t.Fatalf("no recorded shape for %s", method)
	}
	var ours map[string]string
	if _, doc := rec.paths["/"+firstElement(rec.paths)]; doc {
		if v.Type != "string" {
			t.Errorf("%s: %s, want an XML document in a string", method, v)
			return
		}
		ours = docShape(parseDoc(t, method, v.Text))
	} else {
		ours = valueShape(v)
	}
	paths := make([]string, 0, len(rec.paths))
	for p := range rec.paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		want := rec.paths[p]
		got, have := ours[p]
		have = have && got != "(empty)"
		_, skip := rec.notSent[p]
		switch {
		case have && skip:
			t.Errorf("%s: %q is sent (as %s) but listed as not sent", method, p, got)
		case have && got != want:
			t.Errorf("%s: %q is %s, recorded as %s", method, p, got, want)
		case !have && !skip && !rec.optional[p] && !underEmpty(ours, p):
			t.Errorf("%s: no %q (recorded as %q)", method, p, want)
		}
	}
	for p := range rec.notSent {
		if _, ok := rec.paths[p]; !ok {
			t.Errorf("%s: not-sent path %q is not a recorded one", method, p)
		}
	}
}

// firstElement is the root element name of a document shape, "" for a
// value shape.
func firstElement(paths map[string]string) string {
	for p := range paths {
		if strings.HasPrefix(p, "/") {
			return strings.SplitN(p[1:], "/", 2)[0]
		}
	}
	return ""
}
