package qemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Spec is everything QEMU is started with: fully resolved by the caller
// (the vmm package's qemu engine), checked here, turned into QEMU's
// command line by argv.
type Spec struct {
	Binary   string // "" → DefaultBinary (probe.go)
	Accel    string // "kvm" or "tcg" (required; anything else an error)
	Machine  string // "" → "pc" resolved by QEMU; Facts reports what QEMU runs (query-machines / the -machine given)
	CPUModel string // "" → "host" on kvm, "qemu64" on tcg (QEMU's default); passed as -cpu
	// Name and UUID: -name guest=NAME,debug-threads=on ; -uuid. UUID is
	// required (it names the RAM file).
	Name, UUID  string
	MemoryBytes uint64 // a multiple of 1 MiB
	VCPUs       int    // -smp N (>=1)
	// MemoryDir is where the RAM file goes ("" → /dev/shm): memory-backend-file
	// share=on,mem-path=<file>, -machine memory-backend=...; the file is created by Start
	// (named after UUID + random suffix, mode 0600), removed when the Machine has ended.
	MemoryDir string
	// MemoryBacking is the RAM's pages: "" or MemoryBacking4K, the file
	// in MemoryDir (tmpfs: 4 KiB pages); MemoryBackingHugeTLB, a
	// hugetlbfs memfd (2 MiB pages from the host's reserved pool; the
	// memory, and maxmem, a whole number of them); MemoryBackingTHP, a
	// plain memfd, which QEMU madvises for transparent huge pages (a
	// tmpfs file gets none unless mounted huge=). A memfd is created by
	// Start and handed to QEMU as /proc/self/fd/N of the memory-backend-file.
	MemoryBacking           string
	Kernel, Initrd, Cmdline string // direct boot when Kernel != ""
	Boot                    string // firmware boot order for -boot order= ("c", "d", "cd", "n"); "" → QEMU's
	Disks                   []Disk
	NICs                    []NIC
	VNC                     *VNC      // nil: no display (-display none -vga none)
	Balloon                 bool      // a virtio-balloon-pci device
	Incoming                bool      // -incoming defer -S: Start leaves it waiting for MigrateIn/Restore, not running
	FwCfg                   []FwCfg   // fw_cfg files the guest reads (fwcfg.go), e.g. FwCfgGeneration
	Console                 io.Writer // the serial console's output (QEMU's -serial stdio → our pipe), whole lines per Write
	Stderr                  io.Writer // optional: QEMU's stderr lines (Start also keeps the last 4 KiB for errors)
	// Generation is the generation of the domain's owner in a pool (0:
	// none), given to the guest as the fw_cfg file FwCfgGeneration, a
	// decimal string (Linux: /sys/firmware/qemu_fw_cfg/by_name/.../raw
	// with the qemu_fw_cfg module). It is the generation QEMU started
	// with; a later lease does not change it.
	Generation int64
}

// Disk is one disk image, in the order of the guest's disks.
type Disk struct {
	Path     string
	Format   string // "raw", "qcow2", ... always given (never let QEMU probe)
	ReadOnly bool
	CDROM    bool // an IDE cdrom (media=cdrom, read-only) instead of virtio-blk
	// Shared: other processes may open the image for writing at the same
	// time (vm.cfg mode "w!"): QEMU takes no lock on it (locking=off).
	// Without it QEMU locks the image, and a second QEMU that asks to
	// write it fails to start.
	Shared bool
}

// NIC is one network card on an already open tap device.
type NIC struct {
	Tap   *os.File // an open tap descriptor (IFF_VNET_HDR); passed as an extra file, -netdev tap,fd=N
	MAC   string   // 00:16:3e:xx:xx:xx
	Model string   // "" → virtio-net-pci; also e1000, rtl8139
}

// VNC is the guest's graphical console.
type VNC struct {
	Listen   string // an IP address, e.g. 127.0.0.1 or 0.0.0.0
	Display  int    // display number: TCP port 5900+Display
	Password string // "" → no password; else set with QMP set_password after start (never on the command line, never logged)
}

// Defaults and limits of a Spec.
const (
	DefaultMachine   = "pc"
	DefaultMemoryDir = "/dev/shm"
	DefaultNICModel  = "virtio-net-pci"
	// MaxVCPUs is the most vCPUs the pc machine takes.
	MaxVCPUs = 255
	// MaxVNCPassword is the longest VNC password: VNC's DES
	// authentication uses only the first 8 bytes.
	MaxVNCPassword = 8
	// MaxCDROMs is the number of units on the PIIX IDE controller (two
	// buses, master and slave).
	MaxCDROMs = 4
	// MaxDisks and MaxNICs keep the command line within what the PCI
	// bus holds (32 slots, a few taken by the chipset).
	MaxDisks = 20
	MaxNICs  = 8
	mib      = 1 << 20
)

// The memory backings of Spec.MemoryBacking.
const (
	MemoryBacking4K      = "4k"
	MemoryBackingHugeTLB = "hugetlb"
	MemoryBackingTHP     = "thp"
	hugePage             = 2 << 20
)

// Descriptors QEMU inherits (exec.Cmd.ExtraFiles start at 3): the QMP
// socket first, then one tap per NIC in order, then the RAM's memfd when
// there is one.
const (
	qmpFD      = 3
	firstTapFD = 4
)

// Disk formats QEMU is asked to open: its format drivers for images.
var diskFormats = map[string]bool{
	"raw": true, "qcow2": true, "qcow": true, "qed": true, "vmdk": true,
	"vpc": true, "vhdx": true, "vdi": true, "parallels": true,
}

// NIC models.
var nicModels = map[string]bool{"virtio-net-pci": true, "e1000": true, "rtl8139": true}

var (
	uuidRE    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	macRE     = regexp.MustCompile(`^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$`)
	machineRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`)
	// A CPU model with optional flags: "qemu64", "host,+vmx,-svm".
	cpuRE  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}(,[a-zA-Z0-9._=+-]+)*$`)
	bootRE = regexp.MustCompile(`^[acdn]{1,4}$`)
)

// resolve fills the defaults into a copy of s and checks every field, so
// that argv has nothing left to decide and QEMU nothing to guess.
func (s Spec) resolve() (Spec, error) {
	if s.Binary == "" {
		s.Binary = DefaultBinary
	}
	if !filepath.IsAbs(s.Binary) {
		return s, fmt.Errorf("qemu spec: binary %q is not an absolute path", s.Binary)
	}
	switch s.Accel {
	case AccelKVM, AccelTCG:
	case "":
		return s, errors.New("qemu spec: no accelerator (want kvm or tcg: ProbeAccel chooses)")
	default:
		return s, fmt.Errorf("qemu spec: accelerator %q is neither kvm nor tcg", s.Accel)
	}
	if s.Machine == "" {
		s.Machine = DefaultMachine
	}
	if !machineRE.MatchString(s.Machine) {
		return s, fmt.Errorf("qemu spec: machine type %q is not a QEMU machine name (as pc or pc-i440fx-7.2)", s.Machine)
	}
	if s.CPUModel == "" {
		s.CPUModel = "qemu64"
		if s.Accel == AccelKVM {
			s.CPUModel = "host"
		}
	}
	if len(s.CPUModel) > 1024 || !cpuRE.MatchString(s.CPUModel) {
		return s, fmt.Errorf("qemu spec: CPU model %q is not a QEMU -cpu value (a model name, then ,+flag or ,-flag)", s.CPUModel)
	}
	if s.Name == "" || len(s.Name) > 256 || hasControl(s.Name) {
		return s, fmt.Errorf("qemu spec: domain name %q must be 1 to 256 printable bytes", s.Name)
	}
	if !uuidRE.MatchString(s.UUID) {
		return s, fmt.Errorf("qemu spec: UUID %q is not of the form 8-4-4-4-12 hex digits", s.UUID)
	}
	if s.MemoryBytes == 0 || s.MemoryBytes%mib != 0 {
		return s, fmt.Errorf("qemu spec: memory of %d bytes is not a positive whole number of MiB", s.MemoryBytes)
	}
	if s.MemoryBytes > 1<<50 {
		return s, fmt.Errorf("qemu spec: memory of %d bytes is more than any host has", s.MemoryBytes)
	}
	if s.VCPUs < 1 || s.VCPUs > MaxVCPUs {
		return s, fmt.Errorf("qemu spec: %d vCPUs is out of range (1 to %d)", s.VCPUs, MaxVCPUs)
	}
	switch s.MemoryBacking {
	case "", MemoryBacking4K, MemoryBackingTHP:
	case MemoryBackingHugeTLB:
		if s.MemoryBytes%hugePage != 0 {
			return s, fmt.Errorf("qemu spec: memory of %d MiB is not a whole number of 2 MiB huge pages (give memory and maxmem an even number of MiB, or choose memory_backing = 4k or thp)", s.MemoryBytes/mib)
		}
	default:
		return s, fmt.Errorf("qemu spec: memory backing %q: want 4k, hugetlb or thp", s.MemoryBacking)
	}
	if s.MemoryDir == "" {
		s.MemoryDir = DefaultMemoryDir
	}
	if !filepath.IsAbs(s.MemoryDir) {
		return s, fmt.Errorf("qemu spec: memory directory %q is not an absolute path", s.MemoryDir)
	}
	if s.Kernel == "" && (s.Initrd != "" || s.Cmdline != "") {
		return s, errors.New("qemu spec: an initrd or a kernel command line without a kernel (direct boot needs Kernel)")
	}
	for what, p := range map[string]string{"kernel": s.Kernel, "initrd": s.Initrd} {
		if p != "" && !filepath.IsAbs(p) {
			return s, fmt.Errorf("qemu spec: %s %q is not an absolute path", what, p)
		}
	}
	if hasControl(s.Cmdline) {
		return s, fmt.Errorf("qemu spec: kernel command line %q holds control characters", s.Cmdline)
	}
	if s.Boot != "" {
		if s.Kernel != "" {
			return s, fmt.Errorf("qemu spec: boot order %q with a direct kernel boot (the firmware boot order is not used then)", s.Boot)
		}
		if !bootRE.MatchString(s.Boot) || repeats(s.Boot) {
			return s, fmt.Errorf("qemu spec: boot order %q is not made of distinct a, c, d, n", s.Boot)
		}
	}
	if len(s.Disks) > MaxDisks {
		return s, fmt.Errorf("qemu spec: %d disks, more than the %d this engine attaches", len(s.Disks), MaxDisks)
	}
	s.Disks = append([]Disk(nil), s.Disks...)
	cdroms := 0
	for i, d := range s.Disks {
		if d.Path == "" || !filepath.IsAbs(d.Path) || hasControl(d.Path) {
			return s, fmt.Errorf("qemu spec: disk %d: path %q is not an absolute path", i, d.Path)
		}
		if !utf8.ValidString(d.Path) {
			return s, fmt.Errorf("qemu spec: disk %d: path %q is not valid UTF-8, which QEMU's -blockdev JSON cannot carry (rename the image)", i, d.Path)
		}
		if d.Format == "" {
			return s, fmt.Errorf("qemu spec: disk %d (%s): no format (it is always given: QEMU is never let probe)", i, d.Path)
		}
		if !diskFormats[d.Format] {
			return s, fmt.Errorf("qemu spec: disk %d (%s): format %q is not one QEMU opens (raw, qcow2, qcow, qed, vmdk, vpc, vhdx, vdi, parallels)", i, d.Path, d.Format)
		}
		if d.CDROM {
			cdroms++
			s.Disks[i].ReadOnly = true
		}
	}
	if cdroms > MaxCDROMs {
		return s, fmt.Errorf("qemu spec: %d CD-ROMs, more than the %d units of the IDE controller", cdroms, MaxCDROMs)
	}
	if len(s.NICs) > MaxNICs {
		return s, fmt.Errorf("qemu spec: %d NICs, more than the %d this engine attaches", len(s.NICs), MaxNICs)
	}
	s.NICs = append([]NIC(nil), s.NICs...)
	for i, n := range s.NICs {
		if n.Tap == nil {
			return s, fmt.Errorf("qemu spec: NIC %d: no tap descriptor (vmm/tap opens it)", i)
		}
		if !macRE.MatchString(n.MAC) {
			return s, fmt.Errorf("qemu spec: NIC %d: MAC %q is not six hex pairs separated by colons", i, n.MAC)
		}
		if n.Model == "" {
			s.NICs[i].Model = DefaultNICModel
		}
		if !nicModels[s.NICs[i].Model] {
			return s, fmt.Errorf("qemu spec: NIC %d: model %q is not virtio-net-pci, e1000 or rtl8139", i, n.Model)
		}
	}
	if s.Generation < 0 {
		return s, fmt.Errorf("qemu spec: generation %d is negative", s.Generation)
	}
	s.FwCfg = append([]FwCfg(nil), s.FwCfg...)
	if s.Generation > 0 {
		s.FwCfg = append(s.FwCfg, FwCfg{Name: FwCfgGeneration, Value: strconv.FormatInt(s.Generation, 10)})
	}
	if err := checkFwCfg(s.FwCfg); err != nil {
		return s, err
	}
	if v := s.VNC; v != nil {
		ip := net.ParseIP(v.Listen)
		if ip == nil {
			return s, fmt.Errorf("qemu spec: VNC listen address %q is not an IP address", v.Listen)
		}
		if v.Display < 0 || v.Display > 65535-5900 {
			return s, fmt.Errorf("qemu spec: VNC display %d is out of range (0 to %d: port 5900+display)", v.Display, 65535-5900)
		}
		if len(v.Password) > MaxVNCPassword {
			return s, fmt.Errorf("qemu spec: the VNC password is %d bytes, VNC uses at most %d (set a shorter one)", len(v.Password), MaxVNCPassword)
		}
		if hasControl(v.Password) {
			return s, errors.New("qemu spec: the VNC password holds control characters")
		}
		c := *v
		s.VNC = &c
	}
	return s, nil
}

// memoryAlign is the memory backend's align option: thp's mapping must
// be 2 MiB aligned for the kernel to map 2 MiB pages (QEMU aligns a file's
// RAM to the file's page size, 4 KiB on shmem); hugetlbfs's page size
// aligns it already.
func (s Spec) memoryAlign() string {
	if s.MemoryBacking == MemoryBackingTHP {
		return fmt.Sprintf(",align=%d", hugePage)
	}
	return ""
}

// argv is QEMU's command line for a resolved Spec, its RAM in memPath,
// with the QMP socket on descriptor qmpFD and the taps from firstTapFD on.
// drivers are the protocol drivers of the disks, in order ("file" or
// "host_device", see diskDriver).
func (s Spec) argv(memPath string, drivers []string) []string {
	a := []string{s.Binary,
		"-name", "guest=" + optEscape(s.Name) + ",debug-threads=on",
		"-uuid", s.UUID,
		"-nodefaults", "-no-user-config", "-no-reboot",
		"-msg", "timestamp=off",
		"-accel", s.Accel,
		"-object", fmt.Sprintf("memory-backend-file,id=ram0,size=%d,mem-path=%s,share=on%s", s.MemoryBytes, optEscape(memPath), s.memoryAlign()),
		"-machine", optEscape(s.Machine) + ",memory-backend=ram0",
		"-m", strconv.FormatUint(s.MemoryBytes/mib, 10) + "M",
		"-cpu", s.CPUModel,
		"-smp", strconv.Itoa(s.VCPUs),
		"-chardev", fmt.Sprintf("socket,id=qmp,fd=%d", qmpFD),
		"-mon", "chardev=qmp,mode=control",
		"-chardev", "stdio,id=ser0,signal=off",
		"-serial", "chardev:ser0",
		"-device", "pvpanic",
		"-action", "panic=shutdown",
		"-S",
	}
	if s.Incoming {
		a = append(a, "-incoming", "defer")
	}
	if s.Kernel != "" {
		a = append(a, "-kernel", s.Kernel)
		if s.Initrd != "" {
			a = append(a, "-initrd", s.Initrd)
		}
		if s.Cmdline != "" {
			a = append(a, "-append", s.Cmdline)
		}
	}
	if s.Boot != "" {
		a = append(a, "-boot", "order="+s.Boot)
	}
	cd := 0
	for i, d := range s.Disks {
		proto := fmt.Sprintf("disk%d-file", i)
		node := fmt.Sprintf("disk%d", i)
		file := map[string]any{"driver": drivers[i], "node-name": proto, "filename": d.Path, "read-only": d.ReadOnly}
		if d.Shared {
			file["locking"] = "off"
		}
		a = append(a, "-blockdev", blockdevJSON(file))
		a = append(a, "-blockdev", blockdevJSON(map[string]any{
			"driver": d.Format, "node-name": node, "file": proto, "read-only": d.ReadOnly,
		}))
		if d.CDROM {
			bus, unit := ideUnit(s.Machine, cd)
			cd++
			a = append(a, "-device", fmt.Sprintf("ide-cd,drive=%s,id=%s-dev,bus=%s,unit=%d", node, node, bus, unit))
		} else {
			a = append(a, "-device", fmt.Sprintf("virtio-blk-pci,drive=%s,id=%s-dev", node, node))
		}
	}
	for i, n := range s.NICs {
		a = append(a, "-netdev", fmt.Sprintf("tap,id=net%d,fd=%d", i, firstTapFD+i),
			"-device", fmt.Sprintf("%s,netdev=net%d,id=net%d-dev,mac=%s", n.Model, i, i, strings.ToLower(n.MAC)))
	}
	if v := s.VNC; v != nil {
		host := v.Listen
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		opt := fmt.Sprintf("%s:%d", host, v.Display)
		if v.Password != "" {
			opt += ",password=on"
		}
		a = append(a, "-vga", "std", "-vnc", opt)
	} else {
		a = append(a, "-display", "none", "-vga", "none")
	}
	if s.Balloon {
		a = append(a, "-device", "virtio-balloon-pci,id=balloon0")
	}
	return append(a, fwCfgArgs(s.FwCfg)...)
}

// ideUnit places the n-th CD-ROM: on pc's PIIX controller two buses of two
// units; on q35's AHCI one unit on each of six buses.
func ideUnit(machine string, n int) (bus string, unit int) {
	if strings.Contains(machine, "q35") {
		return fmt.Sprintf("ide.%d", n), 0
	}
	return fmt.Sprintf("ide.%d", n/2), n % 2
}

// blockdevJSON is a -blockdev in QEMU's JSON syntax, so that a path needs
// no escaping.
func blockdevJSON(m map[string]any) string {
	b, err := json.Marshal(m)
	if err != nil { // strings and booleans always marshal
		panic(err)
	}
	return string(b)
}

// diskDriver is the protocol driver for a disk path: host_device for a
// block device, file for a regular file; an error names the path.
func diskDriver(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is said once
		}
		return "", fmt.Errorf("disk %s: %w", path, err)
	}
	switch {
	case fi.Mode().IsRegular():
		return "file", nil
	case fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0:
		return "host_device", nil
	}
	return "", fmt.Errorf("disk %s: neither a regular file nor a block device (%s)", path, fi.Mode().Type())
}

// optEscape escapes a value for QEMU's key=value option syntax, where a
// comma is written twice.
func optEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

func repeats(s string) bool {
	for i := range len(s) {
		if strings.IndexByte(s[i+1:], s[i]) >= 0 {
			return true
		}
	}
	return false
}
