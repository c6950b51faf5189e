package vmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/vmm/bootloader"
	"github.com/ovs-agent/ovs-agent/vmm/diskimage"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/qemu"
	"github.com/ovs-agent/ovs-agent/vmm/tap"
)

// qemuEngine is the Engine of an operating system's guest: one
// qemu-system-x86_64 child (vmm/qemu's Machine) made from the domain's
// vm.cfg. What it reads there:
//
//   - memory and maxmem: QEMU gets maxmem of RAM (a memory file under
//     /dev/shm, so that the RAM check of a migration can read it on both
//     sides) and the balloon holds the guest at memory; vcpus: -smp;
//   - kernel, ramdisk, root and extra: a direct boot; bootloader = pygrub:
//     vmm/bootloader reads the default entry (or bootloader_args') of the
//     first disk's grub.cfg or menu.lst, and its kernel and initrd are
//     copied into the domain's directory and booted directly; builder =
//     'hvm': the firmware boots from disk or CD-ROM in boot's order;
//   - disk: each entry's file or device, its format detected by
//     vmm/diskimage (or checked against the one tap:qcow2: declares), r
//     read-only, :cdrom an IDE CD-ROM;
//   - vif: a tap device on the vif's bridge (vmm/tap) with its mac, or
//     one made from the UUID and the vif's index under xend's 00:16:3e
//     prefix (the same on every start and on a migration's target, so the
//     guest keeps its address);
//   - vfb type=vnc: QEMU's VNC server on vnclisten (127.0.0.1 when unset)
//     at vncdisplay, or the first free display from it with vncunused, the
//     password set over QMP before the guest runs.
//
// Paths the vm.cfg names are confined by the agent before the VMM starts
// (the repositories, the domain's directory); relative ones are relative
// to the domain's directory here.
type qemuEngine struct {
	cfg     EngineConfig
	vm      *vmcfg.Config
	binary  string
	accel   string
	version qemu.Version
	// memory is the vm.cfg's memory, ram its maxmem: the RAM QEMU has.
	memory, ram uint64
	// backing is the wished memory backing; got and why what the RAM
	// of the latest launch is made of, and why (spec).
	backing     guestmem.Backing
	got, gotWhy string

	mu      sync.Mutex
	m       *qemu.Machine
	taps    []string
	tapNets []string // the taps' names, for the network counters
	done    chan struct{}
	started bool
	last    *sendState // the latest send or save, for ResumeSource
	// abandoned: the guest runs elsewhere; QEMU was killed
	// without waiting for it (Abandon), and Stop and Close do not wait.
	abandoned bool
	// written estimates the bytes the guest wrote since it started, from
	// QEMU's sampled dirty rate (sampleDirty), for Info's dirty rate.
	written uint64
	// measuring serialises calc-dirty-rate: QEMU measures one at a time.
	measuring sync.Mutex
	// sampling cancels the background sample in progress (nil when
	// none), so that a move or a dry run never waits for it.
	sampling context.CancelFunc
}

// dirtySampleEvery is how often the running guest's dirty rate is
// sampled (one second of QEMU's page sampling each time).
const dirtySampleEvery = 10 * time.Second

// qemuStartTimeout bounds QEMU's start: its launch, the QMP handshake and
// the first commands.
const qemuStartTimeout = 60 * time.Second

// newQEMUEngine checks what the vm.cfg asks of QEMU before anything runs:
// the binary (its version once QEMU greets, checkVersion), the accelerator,
// the memory.
func newQEMUEngine(c EngineConfig) (Engine, error) {
	if c.Config == nil {
		return nil, fmt.Errorf("qemu engine: domain %s has no vm.cfg: an operating system's guest needs its kernel, bootloader or builder = 'hvm'", c.Name)
	}
	if c.Config.Guest() != vmcfg.GuestOS {
		return nil, fmt.Errorf("qemu engine: the vm.cfg of %s names no operating system (kernel, bootloader or builder = 'hvm'): its guest is the workload, which runs on the kvm or sim engine", c.Name)
	}
	if c.MemoryBytes == 0 || c.MemoryBytes%(1<<20) != 0 {
		return nil, fmt.Errorf("qemu engine: memory of %d bytes: give memory in whole MiB", c.MemoryBytes)
	}
	e := &qemuEngine{cfg: c, vm: c.Config, binary: c.Binary, accel: c.Accel, memory: c.MemoryBytes, ram: c.MemoryBytes, done: make(chan struct{})}
	if mx := uint64(c.Config.MaxMem) << 20; mx > e.ram {
		e.ram = mx
	}
	if e.binary == "" {
		e.binary = qemu.DefaultBinary
	}
	var err error
	if e.backing, err = guestmem.ParseBacking(c.MemoryBacking); err != nil {
		return nil, fmt.Errorf("qemu engine: %w", err)
	}
	switch e.accel {
	case "":
		e.accel, _ = qemu.ProbeAccel()
	case "kvm", "tcg":
	default:
		return nil, fmt.Errorf("qemu engine: accelerator %q: want kvm or tcg", e.accel)
	}
	// The binary must be there now; its version is QMP's greeting's,
	// checked against qemu.MinVersion when it starts (launch), which
	// spares every start a run of QEMU --version (the agent checked it
	// too, qemuhost).
	if st, err := os.Stat(e.binary); err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("qemu engine: %s is not an executable file (%v): install qemu-system-x86 or set [qemu] binary", e.binary, err)
	}
	return e, nil
}

// checkVersion reads QEMU's version from m's QMP greeting and refuses one
// older than qemu.MinVersion.
func (e *qemuEngine) checkVersion(m *qemu.Machine) error {
	g := m.QMP().Greeting().Version
	v := qemu.Version{Major: g.Major, Minor: g.Minor, Micro: g.Micro, Package: g.Package}
	if v.Less(qemu.MinVersion) {
		return fmt.Errorf("%s is %s: %w (this agent needs %d.%d or newer; install Debian 12's qemu-system-x86 or newer)",
			e.binary, v, qemu.ErrTooOld, qemu.MinVersion.Major, qemu.MinVersion.Minor)
	}
	e.mu.Lock()
	e.version = v
	e.mu.Unlock()
	return nil
}

// path resolves a path of the vm.cfg: relative ones are relative to the
// domain's directory.
func (e *qemuEngine) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(e.cfg.Dir, p)
}

// launchAs says what QEMU launch starts: a fresh boot, or a machine that
// waits for a migration or a save image (incoming) on the machine type
// the image was made on ("" for QEMU's default). tapID names its tap
// devices (tap.Name): the domain's UUID, or for a migration's target the
// UUID and the migration's ID, so that they never clash with the taps of
// the source VMM of the same domain when both run on one host, whichever
// way it moved before.
type launchAs struct {
	incoming bool
	machine  string
	tapID    string
}

// spec builds QEMU's Spec from the vm.cfg for how. The taps it creates
// are the engine's (removed by Close).
func (e *qemuEngine) spec(how launchAs) (qemu.Spec, error) {
	s := qemu.Spec{
		Binary: e.binary, Accel: e.accel, Name: e.cfg.Name, UUID: e.cfg.UUID, Machine: how.machine,
		MemoryBytes: e.ram, VCPUs: max(e.cfg.VCPUs, 1), Balloon: true, Incoming: how.incoming,
		Console: lineWriter{e.cfg.Console}, Generation: e.cfg.Generation,
	}
	if e.cfg.Generation > 0 {
		// A pool domain's guest may read who runs it (the HA tests' record
		// writer does): its name and this host's, beside the generation
		// (a name fw_cfg cannot carry is left out, not a failed start).
		if qemu.FwCfgValueOK(e.cfg.Name) {
			s.FwCfg = append(s.FwCfg, qemu.FwCfg{Name: qemu.FwCfgDomain, Value: e.cfg.Name})
		}
		if h := e.hostName(); qemu.FwCfgValueOK(h) {
			s.FwCfg = append(s.FwCfg, qemu.FwCfg{Name: qemu.FwCfgHost, Value: h})
		}
	}
	// The RAM's backing is this host's choice at each launch (a boot,
	// an incoming migration, a restore), whatever the source's was.
	host, err := guestmem.ReadHost()
	if err != nil {
		return s, fmt.Errorf("qemu engine: %w", err)
	}
	b, why, err := guestmem.Choose(e.backing, e.ram, host)
	if err != nil {
		return s, fmt.Errorf("qemu engine: guest memory of %s: %w", e.cfg.Name, err)
	}
	if b == guestmem.BackingHugeTLB && e.ram%guestmem.HugePageSize != 0 {
		if e.backing == guestmem.BackingHugeTLB {
			return s, fmt.Errorf("qemu engine: memory_backing = hugetlb: maxmem of %d MiB is not a whole number of 2 MiB huge pages (give an even number of MiB)", e.ram>>20)
		}
		b, why = guestmem.Backing4K, why+"; but maxmem is an odd number of MiB, not whole 2 MiB pages: 4k"
		if host.THP {
			b, why = guestmem.BackingTHP, why+"; thp"
		}
	}
	s.MemoryBacking = string(b)
	e.mu.Lock()
	e.got, e.gotWhy = string(b), why
	e.mu.Unlock()
	disks, err := e.disks()
	if err != nil {
		return s, err
	}
	s.Disks = disks
	if err := e.boot(&s); err != nil {
		return s, err
	}
	if s.VNC, err = e.vnc(); err != nil {
		return s, err
	}
	if s.NICs, err = e.nics(how.tapID); err != nil {
		return s, err
	}
	return s, nil
}

// hostName is the name a pool domain's guest is told runs it: the pool
// member name the agent gave, else the system's host name ("" when that
// cannot be read).
func (e *qemuEngine) hostName() string {
	if e.cfg.Host != "" {
		return e.cfg.Host
	}
	h, _ := os.Hostname()
	return h
}

// lineWriter is the console as an io.Writer (nil: discard).
type lineWriter struct{ w io.Writer }

func (l lineWriter) Write(p []byte) (int, error) {
	if l.w == nil {
		return len(p), nil
	}
	return l.w.Write(p)
}

// disks resolves the vm.cfg's disks: the path (phy:sdb is /dev/sdb), the
// format from the image itself, read-only for r and CD-ROMs, shared (QEMU
// takes no lock, other domains may write it too) for w!.
func (e *qemuEngine) disks() ([]qemu.Disk, error) {
	var out []qemu.Disk
	for i, d := range e.vm.Disks {
		if d.Path == "" { // an empty CD-ROM drive
			continue
		}
		var p string
		switch {
		case d.IsDevice():
			p = d.DevicePath()
		case d.IsImage():
			p = e.path(d.Path)
		default:
			return nil, fmt.Errorf("disk %d (%s): type %s: the qemu engine runs phy:, file:, tap:aio: and tap:qcow2: disks", i, d.Raw, d.Type)
		}
		info, err := diskimage.InspectWith(p, diskimage.Options{Declared: diskimage.Format(d.DeclaredFormat()), AllowBacking: true})
		if err != nil {
			return nil, fmt.Errorf("disk %d (%s): %w", i, d.Raw, err)
		}
		out = append(out, qemu.Disk{Path: p, Format: string(info.Format), ReadOnly: d.Mode == "r" || d.CDROM, CDROM: d.CDROM,
			Shared: d.Mode == vmcfg.ModeWriteShared})
	}
	return out, nil
}

// boot fills in how the guest boots: a kernel of the vm.cfg, one pygrub
// finds on the first disk, or the firmware (builder = 'hvm').
func (e *qemuEngine) boot(s *qemu.Spec) error {
	switch {
	case e.vm.Kernel != "":
		s.Kernel, s.Initrd, s.Cmdline = e.path(e.vm.Kernel), e.path(e.vm.Ramdisk), e.vm.KernelCmdline()
		for key, p := range map[string]string{"kernel": s.Kernel, "ramdisk": s.Initrd} {
			if p == "" {
				continue
			}
			if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
				return fmt.Errorf("%s %s: not a readable file (%v): fix the vm.cfg's %s", key, p, err, key)
			}
		}
	case vmcfg.IsPygrub(e.vm.Bootloader):
		return e.pygrub(s)
	default:
		s.Boot = e.vm.BootOrder()
	}
	return nil
}

// pygrub reads the boot entry from the first disk that is not a CD-ROM
// and copies its kernel and initrd into the domain's directory.
func (e *qemuEngine) pygrub(s *qemu.Spec) error {
	var disk *qemu.Disk
	for i := range s.Disks {
		if !s.Disks[i].CDROM {
			disk = &s.Disks[i]
			break
		}
	}
	if disk == nil {
		return errors.New("bootloader = pygrub, but the vm.cfg has no disk to read a grub menu from")
	}
	o, err := bootloader.ParseArgs(e.vm.BootloaderArgs)
	if err != nil {
		return fmt.Errorf("bootloader_args: %w", err)
	}
	r, err := diskimage.OpenWith(disk.Path, diskimage.Options{Declared: diskimage.Format(disk.Format), AllowBacking: true})
	if err != nil {
		return fmt.Errorf("bootloader: %w", err)
	}
	defer r.Close()
	b, err := bootloader.Load(r, r.Size(), o)
	if err != nil {
		return fmt.Errorf("bootloader: %s: %w", disk.Path, err)
	}
	if b.Kernel == nil {
		return fmt.Errorf("bootloader: the entry %q of %s has no kernel", b.Title, b.Config)
	}
	dir := filepath.Join(e.cfg.Dir, "boot")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bootloader: %w", err)
	}
	if s.Kernel, err = copyBootFile(b.Kernel, filepath.Join(dir, "kernel")); err != nil {
		return err
	}
	if b.Initrd != nil {
		if s.Initrd, err = copyBootFile(b.Initrd, filepath.Join(dir, "initrd")); err != nil {
			return err
		}
	}
	s.Cmdline = b.Args
	return nil
}

// copyBootFile writes f (a kernel or initrd inside a guest's image) to
// path, replacing what was there.
func copyBootFile(f *bootloader.File, path string) (string, error) {
	tmp := path + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("bootloader: %w", err)
	}
	_, err = f.WriteTo(out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("bootloader: copy %s: %w", f.Path(), err)
	}
	return path, nil
}

// maxVNCDisplay bounds the search of vncunused.
const maxVNCDisplay = 99

// vnc is the display of the vm.cfg's first vfb of type vnc (nil without).
func (e *qemuEngine) vnc() (*qemu.VNC, error) {
	for _, f := range e.vm.VFBs {
		if f.Type != vmcfg.VFBVNC {
			continue
		}
		v := &qemu.VNC{Listen: f.VNCListen, Display: f.VNCDisplay, Password: f.VNCPasswd}
		if v.Listen == "" {
			v.Listen = "127.0.0.1"
		}
		if v.Display < 0 {
			v.Display = 0
		}
		if !f.VNCUnused {
			return v, nil
		}
		for d := v.Display; d <= maxVNCDisplay; d++ {
			l, err := net.Listen("tcp", net.JoinHostPort(v.Listen, strconv.Itoa(5900+d)))
			if err == nil {
				l.Close()
				v.Display = d
				return v, nil
			}
		}
		return nil, fmt.Errorf("vfb: no free VNC display on %s from %d to %d: stop a display or set vncdisplay", v.Listen, v.Display, maxVNCDisplay)
	}
	return nil, nil
}

// nics creates a tap device on each vif's bridge, named after id.
func (e *qemuEngine) nics(id string) ([]qemu.NIC, error) {
	if len(e.vm.VIFs) == 0 {
		return nil, nil
	}
	bridges, err := hostBridges()
	if err != nil {
		return nil, err
	}
	if id == "" {
		id = e.cfg.UUID
	}
	var nics []qemu.NIC
	fail := func(err error) ([]qemu.NIC, error) {
		for _, n := range nics {
			n.Tap.Close()
		}
		e.removeTaps()
		return nil, err
	}
	for i, v := range e.vm.VIFs {
		bridge, err := v.BridgeOn(bridges)
		if err != nil {
			return fail(fmt.Errorf("vif %d: %w", i, err))
		}
		if err := tap.BridgeExists(bridge); err != nil {
			return fail(fmt.Errorf("vif %d: %w", i, err))
		}
		model, err := nicModel(v.Model)
		if err != nil {
			return fail(fmt.Errorf("vif %d: %w", i, err))
		}
		name, err := tap.Name(id, i)
		if err != nil {
			return fail(err)
		}
		f, err := tap.Create(name, bridge)
		if err != nil {
			return fail(fmt.Errorf("vif %d: %w", i, err))
		}
		e.mu.Lock()
		e.taps = append(e.taps, name)
		e.mu.Unlock()
		mac := strings.ToLower(v.MAC)
		if mac == "" {
			mac = tap.MAC(e.cfg.UUID, i)
		}
		nics = append(nics, qemu.NIC{Tap: f, MAC: mac, Model: model})
	}
	return nics, nil
}

// nicModel is QEMU's device for a vif's model=.
func nicModel(m string) (string, error) {
	switch m {
	case "", "virtio", "virtio-net", "virtio-net-pci", "netfront":
		return "virtio-net-pci", nil
	case "e1000", "rtl8139":
		return m, nil
	}
	return "", fmt.Errorf("model=%s: the qemu engine has virtio-net, e1000 and rtl8139", m)
}

// hostBridges lists the host's bridges (/sys/class/net/*/bridge).
func hostBridges() ([]string, error) {
	dirs, err := filepath.Glob("/sys/class/net/*/bridge")
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(dirs))
	for _, d := range dirs {
		out = append(out, filepath.Base(filepath.Dir(d)))
	}
	sort.Strings(out)
	return out, nil
}

// exclusive takes calc-dirty-rate for a move or a dry run, ending the
// background sample if one runs; the caller unlocks e.measuring.
func (e *qemuEngine) exclusive() {
	e.mu.Lock()
	if e.sampling != nil {
		e.sampling()
	}
	e.mu.Unlock()
	e.measuring.Lock()
}

// removeTaps deletes the engine's tap devices (gone already when their
// last descriptor closed; Remove of a missing one is not an error).
func (e *qemuEngine) removeTaps() {
	e.mu.Lock()
	taps := e.taps
	e.taps = nil
	e.mu.Unlock()
	for _, t := range taps {
		_ = tap.Remove(t)
	}
}

// launch starts QEMU on a fresh spec; on failure nothing is left.
func (e *qemuEngine) launch(how launchAs) (*qemu.Machine, error) {
	s, err := e.spec(how)
	if err != nil {
		return nil, fmt.Errorf("start qemu engine: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), qemuStartTimeout)
	defer cancel()
	m, err := qemu.Start(ctx, s)
	for _, n := range s.NICs { // QEMU holds its own copies
		n.Tap.Close()
	}
	if err == nil {
		if err = e.checkVersion(m); err != nil {
			_ = m.Kill()
		}
	}
	if err != nil {
		e.removeTaps()
		return nil, fmt.Errorf("start qemu engine: %w", err)
	}
	e.mu.Lock()
	e.m = m
	for _, n := range e.taps {
		e.tapNets = append(e.tapNets, n)
	}
	e.mu.Unlock()
	return m, nil
}

func (e *qemuEngine) machine() *qemu.Machine {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m
}

func errNoMachine(op string) error { return fmt.Errorf("qemu engine: %s: no machine", op) }

func (e *qemuEngine) Boot() error {
	m, err := e.launch(launchAs{})
	if err != nil {
		return err
	}
	e.watch(m)
	if e.memory < e.ram {
		if err := m.SetBalloon(e.memory); err != nil {
			_ = m.Kill()
			return fmt.Errorf("start qemu engine: balloon to the vm.cfg's memory: %w", err)
		}
	}
	return nil
}

// watch closes done when the started machine ends.
func (e *qemuEngine) watch(m *qemu.Machine) {
	e.mu.Lock()
	e.started = true
	e.mu.Unlock()
	stop := make(chan struct{})
	go func() {
		<-m.Done()
		close(stop)
		close(e.done)
	}()
	go e.sampleDirty(m, stop)
}

// sampleDirty keeps written up to date while the machine runs: every
// dirtySampleEvery it measures a second of the guest's dirty rate and
// counts that rate over the time since the last sample.
func (e *qemuEngine) sampleDirty(m *qemu.Machine, stop <-chan struct{}) {
	t := time.NewTicker(dirtySampleEvery)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		e.mu.Lock()
		ok := m.Running() && e.measuring.TryLock()
		if ok {
			e.sampling = cancel // under e.mu with the lock: exclusive sees it
		}
		e.mu.Unlock()
		if !ok {
			cancel()
			last = time.Now()
			continue // paused, migrating or measured by MeasureDirty
		}
		go func() {
			select {
			case <-stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		rate, err := e.dirtyRate(ctx, m, time.Second)
		cancel()
		now := time.Now()
		e.mu.Lock()
		e.sampling = nil
		if err == nil {
			e.written += uint64(rate * now.Sub(last).Seconds())
		}
		e.mu.Unlock()
		e.measuring.Unlock()
		last = now
	}
}

// Start runs a machine Receive or Restore built: the guest continues, and
// announces itself on the network (QEMU's announce-self: gratuitous ARP
// from each NIC, so the bridges learn where it went).
func (e *qemuEngine) Start() error {
	m := e.machine()
	if m == nil {
		return errNoMachine("start")
	}
	if err := m.Resume(); err != nil {
		_ = m.Kill()
		return fmt.Errorf("start qemu engine: %w", err)
	}
	e.watch(m)
	if len(e.vm.VIFs) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.QMP().Execute(ctx, "announce-self", map[string]any{"initial": 50, "max": 550, "rounds": 5, "step": 100}, nil)
	}
	return nil
}

func (e *qemuEngine) Pause() error {
	if m := e.machine(); m != nil {
		return m.Pause()
	}
	return errNoMachine("pause")
}

func (e *qemuEngine) Resume() error {
	if m := e.machine(); m != nil {
		return m.Resume()
	}
	return errNoMachine("resume")
}

func (e *qemuEngine) Stop() error {
	if m := e.machine(); m != nil && !e.isAbandoned() {
		return m.Kill()
	}
	return nil
}

// Kill sends QEMU SIGKILL without a word on QMP first: the fence's way
// when QMP did not answer its stop in time.
func (e *qemuEngine) Kill() error {
	if m := e.machine(); m != nil {
		return m.KillNow()
	}
	return nil
}

// Abandon ends QEMU without waiting for it once the guest runs on the
// target: the VMM then exits at once, and the source agent sees the move
// completed without the teardown of the guest's address space in it. (An
// incoming VMM names its taps after the migration, so the target's taps
// never meet these.)
func (e *qemuEngine) Abandon() {
	e.mu.Lock()
	e.abandoned = true
	m := e.m
	e.mu.Unlock()
	if m != nil {
		m.Abandon()
	}
}

func (e *qemuEngine) isAbandoned() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.abandoned
}

func (e *qemuEngine) Done() <-chan struct{} { return e.done }

// Err says why the machine ended: a guest reboot (QEMU runs with
// -no-reboot) is ErrGuestRebooted, for on_reboot.
func (e *qemuEngine) Err() error {
	m := e.machine()
	if m == nil {
		return nil
	}
	err := m.Err()
	if errors.Is(err, qemu.ErrRebooted) {
		return fmt.Errorf("%w: %v", ErrGuestRebooted, err)
	}
	return err
}

func (e *qemuEngine) Close() error {
	if m := e.machine(); m != nil && !e.isAbandoned() {
		_ = m.Kill()
	}
	e.removeTaps()
	return nil
}

func (e *qemuEngine) Shutdown() error {
	if m := e.machine(); m != nil {
		return m.Powerdown()
	}
	return errNoMachine("shutdown")
}

func (e *qemuEngine) SetMemory(bytes uint64) error {
	m := e.machine()
	if m == nil {
		return errNoMachine("set memory")
	}
	if bytes > e.ram {
		return fmt.Errorf("set memory: %d MiB is more than the guest's maxmem, %d MiB", bytes>>20, e.ram>>20)
	}
	return m.SetBalloon(bytes)
}

func (e *qemuEngine) ConsoleInput(p []byte) error {
	if m := e.machine(); m != nil {
		return m.ConsoleInput(p)
	}
	return errNoMachine("console input")
}

func (e *qemuEngine) Facts() Facts {
	e.mu.Lock()
	f := Facts{Accel: e.accel, MaxMemoryBytes: e.ram, MemoryBacking: e.got, MemoryBackingWhy: e.gotWhy}
	if e.version.Major > 0 {
		f.Version = e.version.String()
	}
	e.mu.Unlock()
	m := e.machine()
	if m == nil {
		return f
	}
	q := m.Facts()
	f.Machine, f.CPUModel, f.VNC = q.Machine, q.CPUModel, q.VNC
	if q.Version != "" {
		f.Version = q.Version
	}
	if b, err := m.Balloon(); err == nil {
		f.BalloonBytes = b
	}
	return f
}

// MemoryBytes is the vm.cfg's memory: what the balloon holds the guest at
// on start.
func (e *qemuEngine) MemoryBytes() uint64 { return e.memory }

// Stats: QEMU's CPU time, its disks' bytes, and the taps' counters (what
// the tap receives the guest sent).
func (e *qemuEngine) Stats() Stats {
	m := e.machine()
	if m == nil {
		return Stats{}
	}
	var st Stats
	if q, err := m.Stats(); err == nil {
		st.CPUTime, st.DiskReadBytes, st.DiskWriteBytes = q.CPUTime, q.DiskReadBytes, q.DiskWriteBytes
		st.DiskReadOps, st.DiskWriteOps = q.DiskReadOps, q.DiskWriteOps
	}
	e.mu.Lock()
	taps := append([]string(nil), e.tapNets...)
	st.WrittenBytes = e.written
	e.mu.Unlock()
	for _, t := range taps {
		st.NetRxBytes += netCounter(t, "tx_bytes")
		st.NetTxBytes += netCounter(t, "rx_bytes")
	}
	return st
}

// netCounter reads /sys/class/net/DEV/statistics/NAME (0 when it cannot).
func netCounter(dev, name string) uint64 {
	b, err := os.ReadFile(filepath.Join("/sys/class/net", dev, "statistics", name))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// SetThrottle: QEMU throttles its vCPUs itself during a migration
// (auto-converge, always on); there is no throttle to set by hand.
func (e *qemuEngine) SetThrottle(int) error {
	return fmt.Errorf("throttle: the qemu engine's guest is throttled by QEMU's auto-converge during a migration: %w", ErrUnsupported)
}

// ResidentBytes is the memory of the guest's RAM file actually populated.
func (e *qemuEngine) ResidentBytes() (uint64, error) {
	m := e.machine()
	if m == nil {
		return 0, nil
	}
	return fileBlocks(m.MemoryFile())
}
