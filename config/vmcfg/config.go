package vmcfg

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
)

// Limits on what Parse and Validate accept.
const (
	MaxFileSize  = 1 << 20 // bytes in a vm.cfg file
	MaxDepth     = 32      // nesting of lists, tuples and dicts
	MaxErrors    = 50      // errors reported per file before giving up
	MaxNameLen   = 64
	MinMemoryMiB = 1
	MaxMemoryMiB = 16 << 20 // 16 TiB
	MaxVCPUs     = 256
)

// Defaults, as xm/xend.
const (
	DefaultMemoryMiB  = 128
	DefaultVCPUs      = 1
	DefaultOnPoweroff = ActionDestroy
	DefaultOnReboot   = ActionRestart
	DefaultOnCrash    = ActionRestart
)

// What to do when a domain powers off, reboots or crashes (xend's
// on_poweroff, on_reboot and on_crash values).
const (
	ActionDestroy         = "destroy"
	ActionRestart         = "restart"
	ActionPreserve        = "preserve"
	ActionRenameRestart   = "rename-restart"
	ActionCoredumpDestroy = "coredump-destroy"
	ActionCoredumpRestart = "coredump-restart"
)

var actions = []string{ActionDestroy, ActionRestart, ActionPreserve, ActionRenameRestart, ActionCoredumpDestroy, ActionCoredumpRestart}

// The keys Config has typed fields for.
const (
	KeyName       = "name"
	KeyUUID       = "uuid"
	KeyMemory     = "memory"
	KeyMaxMem     = "maxmem"
	KeyVCPUs      = "vcpus"
	KeyDisk       = "disk"
	KeyVIF        = "vif"
	KeyOnPoweroff = "on_poweroff"
	KeyOnReboot   = "on_reboot"
	KeyOnCrash    = "on_crash"
	KeyWorkload   = "workload"
	// KeyMemoryBacking is the guest memory's pages: auto, 4k, hugetlb or
	// thp ([agent] memory_backing of agent.ini when absent).
	KeyMemoryBacking = "memory_backing"
)

// MemoryBackings are the values of memory_backing: the best the host has
// (auto), 4 KiB pages, hugetlbfs 2 MiB pages from the host's reserved
// pool, transparent huge pages of shared memory.
var MemoryBackings = []string{"auto", "4k", "hugetlb", "thp"}

var typedKeys = map[string]bool{
	KeyName: true, KeyUUID: true, KeyMemory: true, KeyMaxMem: true, KeyVCPUs: true,
	KeyDisk: true, KeyVIF: true, KeyOnPoweroff: true, KeyOnReboot: true,
	KeyOnCrash: true, KeyWorkload: true, KeyMemoryBacking: true,
	KeyKernel: true, KeyRamdisk: true, KeyExtra: true, KeyRoot: true, KeyBootloader: true,
	KeyBootloaderArgs: true, KeyBootargs: true, KeyBuilder: true, KeyBoot: true, KeySerial: true,
	KeyVFB: true, KeyVNC: true, KeyVNCListen: true, KeyVNCUnused: true, KeyVNCDisplay: true,
	KeyVNCPasswd: true, KeyKeymap: true, KeySDL: true,
}

// Config is a domain's configuration as read from a vm.cfg file.
//
// The typed fields hold the options ovs-agent uses; every other option is
// kept in Others so that Marshal writes it back. A Config returned by Parse
// has its defaults filled in and has passed Validate.
type Config struct {
	Name       string
	UUID       string // canonical 8-4-4-4-12 lower-case hex, or "" if unset
	Memory     int    // MiB
	MaxMem     int    // MiB; defaults to Memory
	VCPUs      int
	Disks      []Disk
	VIFs       []VIF
	OnPoweroff string
	OnReboot   string
	OnCrash    string
	// Workload is the workload option as written ("" if absent);
	// WorkloadSpec is its parsed form, and what Marshal writes.
	Workload     string
	WorkloadSpec Workload
	// MemoryBacking is memory_backing as written, lower case ("" if
	// absent: the host's default).
	MemoryBacking string

	// An operating system's boot (see Guest). Paths are as written:
	// resolving them is the caller's business.
	Kernel  string // direct boot: the kernel image on the host
	Ramdisk string // the initrd of a direct boot
	Extra   string // the kernel command line after root= (see KernelCmdline)
	Root    string // the root device, without xend's "root=" prefix
	// Bootloader is "pygrub" or a path ending in /pygrub (see IsPygrub);
	// BootloaderArgs its arguments (bootloader_args, or xm's bootargs).
	Bootloader     string
	BootloaderArgs string
	Builder        string // BuilderLinux (the default; "" reads as it) or BuilderHVM
	Boot           string // HVM boot order (see BootOrder); "" is unset
	// VFBs are the frame buffers: the vfb list, or an HVM guest's vnc =
	// 1 and sdl = 1 with their top-level options.
	VFBs   []VFB
	Serial string // SerialPTY (the default; "" reads as it), or as written

	// Others holds every option without a typed field, by key.
	Others map[string]OtherValue
	// Warnings are the things Parse accepted but that the operator
	// should hear about (options nobody knows, keys assigned twice).
	Warnings []Warning
}

// OtherValue is an option without a typed field.
type OtherValue struct {
	Value Value
	Raw   string // the value's source text as written (may span lines)
	Line  int    // where the key is; 0 if not read from a file
}

// New returns a Config with the given name and memory and every other
// option at its default.
func New(name string, memoryMiB int) *Config {
	return &Config{
		Name:         name,
		Memory:       memoryMiB,
		MaxMem:       memoryMiB,
		VCPUs:        DefaultVCPUs,
		OnPoweroff:   DefaultOnPoweroff,
		OnReboot:     DefaultOnReboot,
		OnCrash:      DefaultOnCrash,
		WorkloadSpec: DefaultWorkload(),
		Builder:      BuilderLinux,
		Serial:       SerialPTY,
	}
}

// ParseFile reads and parses the vm.cfg file at path. Errors name path.
func ParseFile(path string) (*Config, error) {
	data, err := boundedfile.ReadFile(path, MaxFileSize, boundedfile.Follow)
	if errors.Is(err, boundedfile.ErrTooLarge) {
		return nil, tooLarge(newReporter(path))
	}
	if err != nil {
		return nil, fmt.Errorf("read vm.cfg: %w", err)
	}
	return Parse(path, data)
}

// tooLarge is the error of a file over MaxFileSize, reported by r.
func tooLarge(r *reporter) error {
	r.errorf(0, "", "file is larger than %d bytes", MaxFileSize)
	return r.result()
}

// Parse parses a vm.cfg file. name is the file name used in messages.
//
// On success the Config has its defaults filled in and is valid. On
// failure Parse returns a nil Config and an ErrorList with every error it
// found, each naming the file, line and key.
func Parse(name string, data []byte) (*Config, error) {
	r := newReporter(name)
	if len(data) > MaxFileSize {
		return nil, tooLarge(r)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if bytes.IndexByte(data, '\r') >= 0 {
		data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
		data = bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
	}
	stmts := parseStatements(string(data), r)

	// Last assignment wins, as when xm runs the file.
	last := map[string]int{}
	for i, a := range stmts {
		if j, ok := last[a.key]; ok {
			r.warnf(a.line, a.key, "assigned again; this value replaces the one on line %d", stmts[j].line)
		}
		last[a.key] = i
	}
	c := &Config{}
	src := &source{lines: map[string]int{}, display: map[string]assignment{}}
	for i, a := range stmts {
		if last[a.key] != i {
			continue
		}
		src.lines[a.key] = a.line
		c.decode(a, r, src)
	}
	c.finishOS(r, src)
	c.applyDefaults(src.lines)
	if _, given := src.lines[KeyMaxMem]; !given && r.failed[KeyMemory] {
		r.failed[KeyMaxMem] = true // its default came from the bad memory
	}
	if !r.overflow {
		c.validate(r, src)
		c.warnNotApplied(r, src)
	}
	c.Warnings = r.warnings()
	if err := r.result(); err != nil {
		return nil, err
	}
	return c, nil
}

// source records where things were in the file a Config was parsed from.
type source struct {
	lines     map[string]int // line of each key
	diskLines []int          // line of each entry of Config.Disks
	vifLines  []int          // line of each entry of Config.VIFs
	vfbLines  []int          // line of each entry of Config.VFBs
	// display holds the top-level display keys until every key is read.
	display map[string]assignment
}

// decode stores one assignment in c.
func (c *Config) decode(a assignment, r *reporter, src *source) {
	v := a.value
	switch a.key {
	case KeyName:
		c.Name, _ = str(a, r)
	case KeyUUID:
		if s, ok := str(a, r); ok {
			c.UUID = strings.ToLower(s)
		}
	case KeyMemory:
		c.Memory, _ = integer(a, r, "is not an integer number of MiB")
	case KeyMaxMem:
		c.MaxMem, _ = integer(a, r, "is not an integer number of MiB")
	case KeyVCPUs:
		c.VCPUs, _ = integer(a, r, "is not an integer number of virtual CPUs")
	case KeyOnPoweroff:
		c.OnPoweroff, _ = str(a, r)
	case KeyOnReboot:
		c.OnReboot, _ = str(a, r)
	case KeyOnCrash:
		c.OnCrash, _ = str(a, r)
	case KeyMemoryBacking:
		if s, ok := str(a, r); ok {
			c.MemoryBacking = strings.ToLower(strings.TrimSpace(s))
		}
	case KeyWorkload:
		if s, ok := str(a, r); ok {
			c.Workload = s
			w, err := ParseWorkload(s)
			if err != nil {
				r.errorf(a.line, a.key, "%v", err)
			}
			c.WorkloadSpec = w
		}
	case KeyDisk:
		items, ok := strList(a, r, "disk strings like 'phy:/dev/sdb1,xvda,w'")
		if !ok {
			return
		}
		var lines []int
		c.Disks, lines = parseItems(items, r, a.key, ParseDisk)
		src.diskLines = append(src.diskLines, lines...)
	case KeyVIF:
		items, ok := strList(a, r, "vif strings like 'mac=00:16:3e:01:02:03, bridge=xenbr0'")
		if !ok {
			return
		}
		var lines []int
		c.VIFs, lines = parseItems(items, r, a.key, ParseVIF)
		src.vifLines = append(src.vifLines, lines...)
	default:
		if c.decodeOS(a, r, src) {
			return
		}
		if c.Others == nil {
			c.Others = map[string]OtherValue{}
		}
		c.Others[a.key] = OtherValue{Value: v, Raw: a.raw, Line: a.line}
		if !xmKeys[a.key] && len(r.warns) < MaxErrors {
			msg := "not an option xm or ovs-agent knows; kept but not used"
			if s := suggest(a.key); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			r.warnf(a.line, a.key, "%s", msg)
		}
	}
}

func str(a assignment, r *reporter) (string, bool) {
	if a.value.Kind != KindString {
		r.errorf(a.line, a.key, "must be a string, not %s %s", a.value.Kind, a.value.describe())
		return "", false
	}
	return a.value.Str, true
}

// integer reads an int, or a string holding a decimal int (xm runs int()
// on these options, which accepts both).
func integer(a assignment, r *reporter, what string) (int, bool) {
	v := a.value
	switch v.Kind {
	case KindInt:
		if v.Int < -1<<31 || v.Int > 1<<31-1 {
			r.errorf(a.line, a.key, "%d is out of range", v.Int)
			return 0, false
		}
		return int(v.Int), true
	case KindString:
		s := strings.TrimSpace(v.Str)
		n, err := strconv.ParseInt(s, 10, 32)
		if err == nil && s != "" && s[0] != '+' {
			return int(n), true
		}
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			r.errorf(a.line, a.key, "%s is out of range", quote(v.Str))
			return 0, false
		}
		r.errorf(a.line, a.key, "%s %s", quote(v.Str), what)
	default:
		r.errorf(a.line, a.key, "%s %s", v.describe(), what)
	}
	return 0, false
}

// parseItems parses the string items of list option key with parse; an
// item that does not parse is reported and left out. It returns the
// parsed items (never nil) and their lines.
func parseItems[T any](items []Value, r *reporter, key string, parse func(string) (T, error)) ([]T, []int) {
	out := []T{}
	var lines []int
	for _, it := range items {
		x, err := parse(it.Str)
		if err != nil {
			r.errorf(it.Line, key, "%v", err)
			continue
		}
		out = append(out, x)
		lines = append(lines, it.Line)
	}
	return out, lines
}

// strList reads a list or tuple of strings.
func strList(a assignment, r *reporter, what string) ([]Value, bool) {
	v := a.value
	if v.Kind != KindList && v.Kind != KindTuple {
		r.errorf(a.line, a.key, "must be a list of %s, not %s %s", what, v.Kind, v.describe())
		return nil, false
	}
	ok := true
	for _, it := range v.Items {
		if it.Kind != KindString {
			r.errorf(it.Line, a.key, "list items must be %s, not %s %s", what, it.Kind, it.describe())
			ok = false
		}
	}
	return v.Items, ok
}

// applyDefaults fills in the options that were not given.
func (c *Config) applyDefaults(given map[string]int) {
	if _, ok := given[KeyMemory]; !ok {
		c.Memory = DefaultMemoryMiB
	}
	if _, ok := given[KeyMaxMem]; !ok {
		c.MaxMem = c.Memory
	}
	if _, ok := given[KeyVCPUs]; !ok {
		c.VCPUs = DefaultVCPUs
	}
	if _, ok := given[KeyOnPoweroff]; !ok {
		c.OnPoweroff = DefaultOnPoweroff
	}
	if _, ok := given[KeyOnReboot]; !ok {
		c.OnReboot = DefaultOnReboot
	}
	if _, ok := given[KeyOnCrash]; !ok {
		c.OnCrash = DefaultOnCrash
	}
	if _, ok := given[KeyWorkload]; !ok {
		c.WorkloadSpec = DefaultWorkload()
	}
	if _, ok := given[KeyBuilder]; !ok {
		c.Builder = BuilderLinux
	}
	if _, ok := given[KeySerial]; !ok {
		c.Serial = SerialPTY
	}
}

// Validate checks c against the limits Parse enforces, for a Config built
// or changed in code. Errors carry no file or line.
func (c *Config) Validate() error {
	r := newReporter("")
	c.validate(r, nil)
	return r.result()
}

// validate checks c. src is where c was parsed from, nil for a Config
// built in code; when it is set, each disk and vif entry was already
// checked as it was read, and keys that failed to decode are not checked
// again.
func (c *Config) validate(r *reporter, src *source) {
	v := &validation{c: c, r: r, src: src, parsed: src != nil}
	if src == nil {
		v.src = &source{}
	}
	v.scalars()
	v.disks()
	v.vifs()
	if v.ok(KeyWorkload) {
		v.workload()
	}
	v.guest()
	if !v.parsed {
		v.extra()
	}
}

// validation is one Config.validate.
type validation struct {
	c      *Config
	r      *reporter
	src    *source
	parsed bool // c was parsed from src, not built in code
}

func (v *validation) line(key string) int { return v.src.lines[key] }

// listItem names entry i of a list for a message, and gives its line.
func listItem(what string, i int, itemLines []int) (string, int) {
	if i < len(itemLines) {
		return fmt.Sprintf("the %s on line %d", what, itemLines[i]), itemLines[i]
	}
	return fmt.Sprintf("%s %d", what, i), 0
}

// ok says whether none of keys failed to decode.
func (v *validation) ok(keys ...string) bool {
	for _, k := range keys {
		if v.r.failed[k] {
			return false
		}
	}
	return true
}

// scalars checks the name, UUID, memory, vCPUs and the actions.
func (v *validation) scalars() {
	c, r, line := v.c, v.r, v.line
	if v.ok(KeyName) {
		if _, given := v.src.lines[KeyName]; !given && v.parsed {
			r.errorf(0, KeyName, "missing: every domain needs a name")
		} else if msg := checkName(c.Name); msg != "" {
			r.errorf(line(KeyName), KeyName, "%s %s", quote(c.Name), msg)
		}
	}
	if v.ok(KeyUUID) && c.UUID != "" {
		if msg := checkUUID(c.UUID); msg != "" {
			r.errorf(line(KeyUUID), KeyUUID, "%s %s", quote(c.UUID), msg)
		}
	}
	if v.ok(KeyMemory) && (c.Memory < MinMemoryMiB || c.Memory > MaxMemoryMiB) {
		r.errorf(line(KeyMemory), KeyMemory, "%d MiB is out of range (%d to %d MiB)", c.Memory, MinMemoryMiB, MaxMemoryMiB)
	}
	_, maxmemGiven := v.src.lines[KeyMaxMem]
	if v.ok(KeyMaxMem) && (maxmemGiven || !v.parsed) && (c.MaxMem < MinMemoryMiB || c.MaxMem > MaxMemoryMiB) {
		r.errorf(line(KeyMaxMem), KeyMaxMem, "%d MiB is out of range (%d to %d MiB)", c.MaxMem, MinMemoryMiB, MaxMemoryMiB)
	}
	if v.ok(KeyMemory, KeyMaxMem) && c.MaxMem < c.Memory {
		k := KeyMaxMem
		if v.parsed && !maxmemGiven {
			k = KeyMemory
		}
		r.errorf(line(k), k, "maxmem (%d MiB) is less than memory (%d MiB)", c.MaxMem, c.Memory)
	}
	if v.ok(KeyVCPUs) && (c.VCPUs < 1 || c.VCPUs > MaxVCPUs) {
		r.errorf(line(KeyVCPUs), KeyVCPUs, "%d is out of range (1 to %d)", c.VCPUs, MaxVCPUs)
	}
	for _, a := range []struct{ key, val string }{
		{KeyOnPoweroff, c.OnPoweroff}, {KeyOnReboot, c.OnReboot}, {KeyOnCrash, c.OnCrash},
	} {
		if v.ok(a.key) && !contains(actions, a.val) {
			r.errorf(line(a.key), a.key, "%s is not one of %s", quote(a.val), strings.Join(actions, ", "))
		}
	}
	if v.ok(KeyMemoryBacking) && c.MemoryBacking != "" && !contains(MemoryBackings, c.MemoryBacking) {
		r.errorf(line(KeyMemoryBacking), KeyMemoryBacking, "%s is not one of %s", quote(c.MemoryBacking), strings.Join(MemoryBackings, ", "))
	}
}

// disks checks every disk of a Config built in code, and that no two
// disks share a virtual device.
func (v *validation) disks() {
	devices := map[string]int{}
	for i, d := range v.c.Disks {
		if !v.parsed {
			if err := d.check(); err != nil {
				v.r.errorf(0, KeyDisk, "disk %d %s: %v", i, quote(d.String()), err)
				continue
			}
		}
		if j, dup := devices[d.Device]; dup {
			first, _ := listItem("disk", j, v.src.diskLines)
			this, l := listItem("disk", i, v.src.diskLines)
			v.r.errorf(l, KeyDisk, "virtual device %s is used by %s and %s", d.Device, first, this)
		}
		devices[d.Device] = i
	}
}

// vifs checks every vif of a Config built in code, and that no two vifs
// share a MAC address.
func (v *validation) vifs() {
	macs := map[string]int{}
	for i, vif := range v.c.VIFs {
		if !v.parsed {
			if err := vif.check(); err != nil {
				v.r.errorf(0, KeyVIF, "vif %d %s: %v", i, quote(vif.String()), err)
				continue
			}
		}
		if vif.MAC == "" {
			continue
		}
		m := strings.ToLower(vif.MAC)
		if j, dup := macs[m]; dup {
			first, _ := listItem("vif", j, v.src.vifLines)
			this, l := listItem("vif", i, v.src.vifLines)
			v.r.errorf(l, KeyVIF, "mac %s is used by %s and %s", vif.MAC, first, this)
		}
		macs[m] = i
	}
}

// workload checks the workload spec of a Config built in code, and that
// it fits the memory.
func (v *validation) workload() {
	w := v.c.WorkloadSpec
	if !v.parsed {
		if err := w.Validate(); err != nil {
			v.r.errorf(0, KeyWorkload, "%v", err)
		}
	}
	if v.ok(KeyMemory) {
		if err := w.checkMemory(v.c.Memory); err != nil {
			v.r.errorf(v.line(KeyWorkload), KeyWorkload, "%v", err)
		}
	}
}

// extra checks the Others options of a Config built in code.
func (v *validation) extra() {
	for _, k := range sortedOtherKeys(v.c.Others) {
		if msg := checkOtherKey(k); msg != "" {
			v.r.errorf(0, k, "%s", msg)
			continue
		}
		if msg := v.c.Others[k].Value.check(1); msg != "" {
			v.r.errorf(0, k, "%s", msg)
		}
	}
}

// checkName returns why name is not a valid domain name, or "".
func checkName(name string) string {
	if name == "" {
		return "is empty"
	}
	if len(name) > MaxNameLen {
		return fmt.Sprintf("is longer than %d characters", MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' || c == '-') {
			return "may contain only letters, digits, '_', '.' and '-'"
		}
	}
	if name[0] == '.' || name[0] == '-' {
		return "may not start with '.' or '-'"
	}
	return ""
}

// checkUUID returns why u is not a canonical lower-case UUID, or "".
func checkUUID(u string) string {
	const msg = "is not a UUID in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (lower-case hex digits)"
	if len(u) != 36 {
		return msg
	}
	zero := true
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return msg
			}
			continue
		}
		if !isDigit(c) && !(c >= 'a' && c <= 'f') {
			return msg
		}
		if c != '0' {
			zero = false
		}
	}
	if zero {
		return "is the nil UUID"
	}
	return ""
}

// checkOtherKey returns why k cannot be an Others key, or "".
func checkOtherKey(k string) string {
	if typedKeys[k] {
		return "has a typed field in Config and may not be in Others"
	}
	if k == "" || !isIdentStart(k[0]) {
		return "is not a valid option name"
	}
	for i := 1; i < len(k); i++ {
		if !isIdentChar(k[i]) {
			return "is not a valid option name"
		}
	}
	if pythonKeywords[k] {
		return "is a Python keyword and cannot be an option name"
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sortedOtherKeys returns the Others keys in file order (then by name).
func sortedOtherKeys(m map[string]OtherValue) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		li, lj := m[keys[i]].Line, m[keys[j]].Line
		if li != lj {
			return li < lj
		}
		return keys[i] < keys[j]
	})
	return keys
}

// Equal reports whether c and o describe the same domain: the same typed
// fields and the same Others values. It ignores what only records how the
// file was written: Disk.Raw, VIF.Raw, Workload (the spec as written),
// OtherValue.Raw and Line, Value.Line and Warnings.
func (c *Config) Equal(o *Config) bool {
	if c == nil || o == nil {
		return c == o
	}
	if c.Name != o.Name || c.UUID != o.UUID || c.Memory != o.Memory || c.MaxMem != o.MaxMem ||
		c.VCPUs != o.VCPUs || c.OnPoweroff != o.OnPoweroff || c.OnReboot != o.OnReboot ||
		c.OnCrash != o.OnCrash || c.WorkloadSpec != o.WorkloadSpec || c.MemoryBacking != o.MemoryBacking {
		return false
	}
	if c.Kernel != o.Kernel || c.Ramdisk != o.Ramdisk || c.Extra != o.Extra || c.Root != o.Root ||
		c.Bootloader != o.Bootloader || c.BootloaderArgs != o.BootloaderArgs || c.builder() != o.builder() ||
		c.Boot != o.Boot || c.serial() != o.serial() || len(c.VFBs) != len(o.VFBs) {
		return false
	}
	for i := range c.VFBs {
		if !c.VFBs[i].Equal(o.VFBs[i]) {
			return false
		}
	}
	if len(c.Disks) != len(o.Disks) || len(c.VIFs) != len(o.VIFs) || len(c.Others) != len(o.Others) {
		return false
	}
	for i := range c.Disks {
		if !c.Disks[i].Equal(o.Disks[i]) {
			return false
		}
	}
	for i := range c.VIFs {
		if !c.VIFs[i].Equal(o.VIFs[i]) {
			return false
		}
	}
	for k, v := range c.Others {
		ov, ok := o.Others[k]
		if !ok || !v.Value.Equal(ov.Value) {
			return false
		}
	}
	return true
}
