package domains

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ovs-agent/ovs-agent/agent/blockdev"
	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/vmm/diskimage"
)

// The files an operating system's vm.cfg names are the ones its VMM opens
// with the agent's rights: kernel, ramdisk and the disk images. Each must
// resolve, after symlinks, inside a repository or [agent] file_dirs
// (Options.FileRoots, the rule of agent/fileaccess) or the domain's own
// folder (where a relative path points), and be a regular file, a disk
// image one the qemu engine runs as its type says (vmm/diskimage: raw or
// qcow2, no backing file); a phy: disk must be a block device that
// [agent] block_devices allows and the host does not use (agent/blockdev:
// not mounted, swap or held by device-mapper, LVM or md). Create
// refuses a vm.cfg that breaks the rule or names a file that is missing;
// start checks again (files may have gone since), and also that every
// vif's bridge exists, so that nothing starts half-way. The workload
// guest opens no file of its vm.cfg: its vm.cfg is not checked here.

// fileRoots is where a domain's files may be: the repositories and
// [agent] file_dirs, and its folder dir.
func (m *Manager) fileRoots(dir string) []string {
	var roots []string
	if m.opts.FileRoots != nil {
		roots = append(roots, m.opts.FileRoots()...)
	}
	return append(roots, dir)
}

// hostPath is where a path of a vm.cfg is on this host: relative paths
// are relative to the domain's folder dir.
func hostPath(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// checkFiles refuses cfg's domain (with its folder dir) when a file its
// vm.cfg names is outside the allowed roots, not what it must be, or
// missing; atStart adds the bridges of its vifs. At create (atStart
// false) a relative path may be missing still: it is for the domain's
// folder, which the operator fills before the start.
func (m *Manager) checkFiles(cfg *vmcfg.Config, dir string, atStart bool) error {
	ps := m.fileProblems(cfg, dir, !atStart)
	if atStart {
		ps = append(ps, m.bridgeProblems(cfg)...)
	}
	if len(ps) == 0 {
		return nil
	}
	what := "be registered"
	if atStart {
		what = "start"
	}
	return &Error{Kind: Invalid, Msg: fmt.Sprintf("domain %s cannot %s: its vm.cfg names what this host does not offer (nothing was started)", cfg.Name, what), Problems: relocation.Strings(ps)}
}

// fileCheck is one file an operating system's vm.cfg names, and what
// checking it found.
type fileCheck struct {
	field    string // kernel, ramdisk, disk xvda (...)
	path     string // where it is on this host
	relative bool   // written as a relative path (the domain's folder)
	err      error  // nil: there and usable
}

// checkedFiles checks every file of cfg (an operating system's vm.cfg;
// the workload's has none) against the rule, dir being its domain's
// folder.
func (m *Manager) checkedFiles(cfg *vmcfg.Config, dir string) []fileCheck {
	if cfg.Guest() != vmcfg.GuestOS {
		return nil
	}
	roots := m.fileRoots(dir)
	var out []fileCheck
	file := func(field, p string) {
		if p != "" {
			hp := hostPath(dir, p)
			out = append(out, fileCheck{field: field, path: hp, relative: !filepath.IsAbs(p), err: checkFile(roots, hp)})
		}
	}
	file(vmcfg.KeyKernel, cfg.Kernel)
	file(vmcfg.KeyRamdisk, cfg.Ramdisk)
	for i, d := range cfg.Disks {
		if d.Path == "" {
			continue // an empty CD-ROM drive
		}
		switch {
		case d.IsDevice():
			p := d.DevicePath()
			out = append(out, fileCheck{field: diskField(i, d), path: p, err: m.checkBlockDevice(p)})
		case !d.IsImage():
			out = append(out, fileCheck{field: diskField(i, d), path: d.Path,
				err: fmt.Errorf("type %s is not one this host runs: write phy: for a block device, file:, tap:aio: or tap:qcow2: for an image", d.Type)})
		case fileDisk(d):
			file(diskField(i, d), d.Path)
			if c := &out[len(out)-1]; c.err == nil {
				c.err = checkDiskImage(c.path, d)
			}
		}
	}
	return out
}

// checkDiskImage reads the header of the disk image p (a regular file
// inside the roots) as the qemu engine will (vmm/diskimage): a file that
// is not what its type declares (tap:qcow2: and not a qcow2), a format the
// engine does not run, or a qcow2 naming a backing file is refused here,
// before anything starts. The file is opened without blocking and read
// through that descriptor.
func checkDiskImage(p string, d vmcfg.Disk) error {
	f, err := boundedfile.Open(p, boundedfile.Follow)
	if err != nil {
		return err
	}
	defer f.Close()
	var o diskimage.Options
	if d.DeclaredFormat() == "qcow2" {
		o.Declared = diskimage.FormatQCOW2
	}
	fd := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	if _, err := diskimage.InspectWith(fd, o); err != nil {
		return errors.New(strings.ReplaceAll(err.Error(), fd, p))
	}
	return nil
}

// fileProblems lists, one problem each, the files of cfg that break the
// rule (hard: it protects this host) or are missing (soft: it protects
// the domain); missingRelativeOK lets a relative path be missing.
func (m *Manager) fileProblems(cfg *vmcfg.Config, dir string, missingRelativeOK bool) []relocation.Problem {
	var c relocation.Checker
	for _, f := range m.checkedFiles(cfg, dir) {
		switch {
		case f.err == nil:
		case !errors.Is(f.err, fs.ErrNotExist):
			c.Hard(f.field, "%v", f.err)
		case !f.relative || !missingRelativeOK:
			c.Soft(f.field, "%v", f.err)
		}
	}
	return c.Problems()
}

// diskField names disk i of a vm.cfg in a problem.
func diskField(i int, d vmcfg.Disk) string {
	if d.Device != "" {
		return fmt.Sprintf("disk %s (%s)", d.Device, d.Raw)
	}
	return "disk " + strconv.Itoa(i)
}

// checkFile requires p to resolve inside roots and be a regular file that
// exists (an error wrapping fs.ErrNotExist when it does not).
func checkFile(roots []string, p string) error {
	_, exists, err := fileaccess.CheckRegular(roots, p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err != nil || !exists {
		return fmt.Errorf("%s does not exist on this host: %w", p, fs.ErrNotExist)
	}
	return nil
}

// checkBlockDevice requires p to be a block device that [agent]
// block_devices allows and the host does not use (agent/blockdev).
func (m *Manager) checkBlockDevice(p string) error {
	var patterns []string
	if m.opts.BlockDevices != nil {
		patterns = m.opts.BlockDevices()
	}
	return blockdev.Host{}.Check(p, patterns)
}

// bridgeCheck is the bridge of one vif of an operating system's vm.cfg,
// and what checking it found.
type bridgeCheck struct {
	field  string // vif N
	bridge string // "" when there is none to name
	err    error  // nil: this host has it
}

// checkedBridges checks the bridge of every vif of cfg (an operating
// system's: the workload guest has no network); the error says this
// host's bridges cannot be listed.
func (m *Manager) checkedBridges(cfg *vmcfg.Config) ([]bridgeCheck, error) {
	if cfg.Guest() != vmcfg.GuestOS || len(cfg.VIFs) == 0 {
		return nil, nil
	}
	have, err := m.bridges()
	if err != nil {
		return nil, fmt.Errorf("cannot list this host's bridges: %v", err)
	}
	set := map[string]bool{}
	for _, b := range have {
		set[b] = true
	}
	var out []bridgeCheck
	for i, v := range cfg.VIFs {
		bc := bridgeCheck{field: fmt.Sprintf("vif %d", i)}
		bc.bridge, bc.err = v.BridgeOn(have)
		if bc.err == nil && !set[bc.bridge] {
			bc.err = fmt.Errorf("bridge %s does not exist on this host: create it or change the vif's bridge=", bc.bridge)
		}
		out = append(out, bc)
	}
	return out, nil
}

// bridgeProblems lists, one soft problem each, the vifs of cfg whose
// bridge this host does not have.
func (m *Manager) bridgeProblems(cfg *vmcfg.Config) []relocation.Problem {
	var c relocation.Checker
	bs, err := m.checkedBridges(cfg)
	if err != nil {
		c.Soft("vif", "%v", err)
	}
	for _, b := range bs {
		if b.err != nil {
			c.Soft(b.field, "%v", b.err)
		}
	}
	return c.Problems()
}

// bridges lists this host's bridges.
func (m *Manager) bridges() ([]string, error) {
	if m.opts.Bridges != nil {
		return m.opts.Bridges()
	}
	return hostinfo.Bridges(hostinfo.SysClassNet)
}

// The devices an operating system's kernel and ramdisk have among the
// disks of an Offer: an offline migration copies them with the disks (and
// the target's vm.cfg names the copies), a live one checks they are here.
const (
	OfferKernel  = "kernel"
	OfferRamdisk = "ramdisk"
)

// IsBootFile says whether an offered disk is an operating system's kernel
// or ramdisk, not a disk: copied, but never moved away from the source
// (other domains may boot the same file).
func IsBootFile(d relocation.Disk) bool {
	return d.Device == OfferKernel || d.Device == OfferRamdisk
}

// offeredFiles are the files of cfg that go with its domain to another
// host: its disks, and an operating system's kernel and ramdisk (as
// file: disks of devices OfferKernel and OfferRamdisk).
func offeredFiles(cfg *vmcfg.Config) []vmcfg.Disk {
	out := append([]vmcfg.Disk(nil), cfg.Disks...)
	if cfg.Guest() != vmcfg.GuestOS {
		return out
	}
	for _, f := range []struct{ dev, path string }{{OfferKernel, cfg.Kernel}, {OfferRamdisk, cfg.Ramdisk}} {
		if f.path != "" {
			out = append(out, vmcfg.Disk{Type: "file", Path: f.path, Device: f.dev, Mode: vmcfg.ModeRead})
		}
	}
	return out
}
