package ovm3

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
)

// Folders of an agent 3 repository.
const (
	VirtualMachines = "VirtualMachines"
	VirtualDisks    = "VirtualDisks"
	ISOs            = "ISOs"
)

// RepoID is the agent 3 form of a repository UUID: 32 lower-case hex
// digits, no dashes. It accepts the dashed form too.
func RepoID(s string) (string, error) {
	id := strings.ToLower(strings.ReplaceAll(s, "-", ""))
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return "", fmt.Errorf("repository id %q: want 32 hexadecimal digits (a repository UUID, dashes optional)", clip(s))
	}
	return id, nil
}

// VMID checks a VM id as a single folder name under VirtualMachines:
// letters, digits, '-', '_' and '.', not starting with '.', at most 128
// characters. CloudStack sends the VM's UUID.
func VMID(s string) error {
	if s == "" || len(s) > 128 || s[0] == '.' {
		return fmt.Errorf("vm id %q: want 1 to 128 letters, digits, '-', '_' or '.', not starting with '.'", clip(s))
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("vm id %q: %q is not allowed (letters, digits, '-', '_' and '.' only)", clip(s), c)
		}
	}
	return nil
}

// SameUUID reports whether two UUIDs are equal, dashes and case aside.
func SameUUID(a, b string) bool {
	n := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "-", "")) }
	return a != "" && n(a) == n(b)
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// ConfigText writes the vm.cfg of a create_vm or configure_vm params
// struct: each member a `key = value` line, in key order. Strings, ints,
// booleans, doubles and arrays of those are accepted; a nested struct, a
// key that is not an identifier or a value vm.cfg cannot hold is an error
// naming it. The text is then parsed (and refused) by vmcfg like any
// vm.cfg.
func ConfigText(params map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by ovs-agent from an Oracle VM Agent 3 call.\n")
	for _, k := range keys {
		if !isIdent(k) {
			return nil, fmt.Errorf("vm.cfg key %q is not a name (letters, digits and '_', not starting with a digit)", clip(k))
		}
		v, err := toValue(params[k], 0)
		if err != nil {
			return nil, fmt.Errorf("vm.cfg key %s: %w", k, err)
		}
		if v.Kind == vmcfg.KindNone {
			continue // xend leaves an unset key out
		}
		b.WriteString(k + " = " + v.String() + "\n")
	}
	return []byte(b.String()), nil
}

func isIdent(k string) bool {
	if k == "" || len(k) > 64 || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func toValue(v any, depth int) (vmcfg.Value, error) {
	switch x := v.(type) {
	case nil:
		return vmcfg.None(), nil
	case string:
		return vmcfg.String(x), nil
	case bool:
		return vmcfg.Bool(x), nil
	case int64:
		return vmcfg.Int(x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return vmcfg.Value{}, fmt.Errorf("%v is not a number vm.cfg can hold", x)
		}
		return vmcfg.Float(x), nil
	case []any:
		if depth > 0 {
			return vmcfg.Value{}, fmt.Errorf("a list inside a list is not a vm.cfg value")
		}
		items := make([]vmcfg.Value, 0, len(x))
		for i, it := range x {
			iv, err := toValue(it, depth+1)
			if err != nil {
				return vmcfg.Value{}, fmt.Errorf("item %d: %w", i+1, err)
			}
			items = append(items, iv)
		}
		return vmcfg.List(items...), nil
	}
	return vmcfg.Value{}, fmt.Errorf("a %s is not a vm.cfg value (strings, numbers, booleans and lists of those)", typeName(v))
}

func typeName(v any) string {
	switch v.(type) {
	case map[string]any:
		return "struct"
	case []byte:
		return "base64"
	case time.Time:
		return "dateTime"
	}
	return fmt.Sprintf("%T", v)
}

// ConfigStruct is get_vm_config's answer for a parsed vm.cfg: the typed
// options the agent knows, vif, disk and vfb always present as arrays of
// strings (the client reads all three), memory, vcpus and maxvcpus as
// ints, and every other option with its value (strings, numbers,
// booleans, lists).
func ConfigStruct(c *vmcfg.Config) map[string]any {
	m := map[string]any{
		"name": c.Name, "uuid": c.UUID, "memory": c.Memory, "maxmem": c.MaxMem, "vcpus": c.VCPUs,
		"on_poweroff": c.OnPoweroff, "on_reboot": c.OnReboot, "on_crash": c.OnCrash,
	}
	vifs := make([]string, 0, len(c.VIFs))
	for _, v := range c.VIFs {
		vifs = append(vifs, v.String())
	}
	disks := make([]string, 0, len(c.Disks))
	for _, d := range c.Disks {
		disks = append(disks, d.String())
	}
	vfbs := make([]string, 0, len(c.VFBs))
	for _, v := range c.VFBs {
		vfbs = append(vfbs, v.String())
	}
	m["vif"], m["disk"], m["vfb"] = vifs, disks, vfbs
	for k, v := range map[string]string{"bootloader": c.Bootloader, "bootloader_args": c.BootloaderArgs,
		"kernel": c.Kernel, "ramdisk": c.Ramdisk, "extra": c.Extra, "root": c.Root, "builder": c.Builder} {
		if v != "" {
			m[k] = v
		}
	}
	if c.Workload != "" {
		m["workload"] = c.Workload
	}
	for k, o := range c.Others {
		m[k] = fromValue(o.Value)
	}
	if _, ok := m["maxvcpus"]; !ok {
		m["maxvcpus"] = c.VCPUs
	}
	return m
}

func fromValue(v vmcfg.Value) any {
	switch v.Kind {
	case vmcfg.KindString:
		return v.Str
	case vmcfg.KindInt:
		return v.Int
	case vmcfg.KindFloat:
		return v.Float
	case vmcfg.KindBool:
		return v.Bool
	case vmcfg.KindList, vmcfg.KindTuple:
		out := make([]any, 0, len(v.Items))
		for _, it := range v.Items {
			out = append(out, fromValue(it))
		}
		return out
	case vmcfg.KindNone:
		return nil
	}
	return v.String() // a dict: its Python text
}

// Domain is what list_vms says of one domain.
type Domain struct {
	Name, UUID string
	DomID      int
	// State is the agent's state name (running, paused, ...).
	State                         string
	MemoryMiB, MaxMemMiB, VCPUs   int
	CPUSeconds                    float64
	Started                       time.Time
	OnPoweroff, OnReboot, OnCrash string
	Builder                       string // linux or hvm
	Bootloader, BootloaderArgs    string
	// Disks are the vbd unames (file:PATH, phy:DEV) and their devices.
	Disks []DomainDisk
	VIFs  []DomainVIF
	// VNC is host:port of the display, "" when it has none.
	VNC string
	// Console: it has a serial console (every guest of this agent has
	// one: domain.console, `ovm console`); it has no pty or port to name.
	Console bool
}

// DomainDisk is one vbd of a running domain.
type DomainDisk struct {
	UName, Dev, Mode string
}

// DomainVIF is one vif of a running domain.
type DomainVIF struct {
	MAC, Bridge string
}

// XMState is xm's six state flags for an agent state name: r running,
// b blocked, p paused, s shut down, c crashed, d dying.
func XMState(state string) string {
	switch state {
	case "running":
		return "r-----"
	case "paused":
		return "--p---"
	case "stopping":
		return "---s--"
	case "crashed":
		return "----c-"
	}
	return "-b----" // starting, migrating: there, not running guest code now
}

// XendStruct is list_vms' (and list_vm's) struct for d: xend's member
// names, string values, and the device struct the client reads disks,
// vifs and the VNC location from.
func XendStruct(d Domain) map[string]any {
	itoa := strconv.Itoa
	start := ""
	if !d.Started.IsZero() {
		start = strconv.FormatFloat(float64(d.Started.UnixMilli())/1000, 'f', 2, 64)
	}
	vbds := make([]any, 0, len(d.Disks))
	for _, k := range d.Disks {
		vbds = append(vbds, map[string]any{"uname": k.UName, "dev": k.Dev + ":disk", "mode": k.Mode})
	}
	vifs := make([]any, 0, len(d.VIFs))
	for _, v := range d.VIFs {
		vifs = append(vifs, map[string]any{"mac": v.MAC, "bridge": v.Bridge})
	}
	vfbs := []any{}
	if d.VNC != "" {
		host, _, _ := strings.Cut(d.VNC, ":")
		vfbs = append(vfbs, map[string]any{"type": "vnc", "vnclisten": host, "location": d.VNC})
	}
	consoles := []any{}
	if d.Console {
		consoles = append(consoles, map[string]any{"protocol": "vt100", "location": ""})
	}
	builder := d.Builder
	if builder == "" {
		builder = "linux"
	}
	return map[string]any{
		"name": d.Name, "uuid": d.UUID, "domid": itoa(d.DomID), "state": XMState(d.State),
		"memory": itoa(d.MemoryMiB), "maxmem": itoa(d.MaxMemMiB), "vcpus": itoa(d.VCPUs), "online_vcpus": itoa(d.VCPUs),
		"cpu_time": strconv.FormatFloat(d.CPUSeconds, 'f', 6, 64), "start_time": start,
		"on_poweroff": d.OnPoweroff, "on_reboot": d.OnReboot, "on_crash": d.OnCrash,
		"builder": builder, "bootloader": d.Bootloader, "bootloader_args": d.BootloaderArgs,
		"pool_name": "Pool-0", "description": "",
		"device": map[string]any{"vbd": vbds, "vif": vifs, "vfb": vfbs, "console": consoles, "vkbd": []any{}},
	}
}
