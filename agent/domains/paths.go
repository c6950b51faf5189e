package domains

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/relocation"
)

// The files an operating system's vm.cfg names are the ones its VMM opens
// with the agent's rights: kernel, ramdisk and the disk images. Each must
// resolve, after symlinks, inside a repository or [agent] file_dirs
// (Options.FileRoots, the rule of agent/fileaccess) or the domain's own
// folder (where a relative path points), and be a regular file; a phy:
// disk must be a block device. Create refuses a vm.cfg that breaks the
// rule or names a file that is missing; start checks again (files may
// have gone since), and also that every vif's bridge exists, so that
// nothing starts half-way. The workload guest opens no file of its
// vm.cfg: its vm.cfg is not checked here.

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

// devicePath is where a phy: disk is: "phy:sdb" means /dev/sdb, as in
// xend.
func devicePath(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join("/dev", p)
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

// fileProblems lists, one problem each, the files of cfg (an operating
// system's vm.cfg; the workload's has none) that break the rule (hard) or
// are missing (soft); missingRelativeOK lets a relative path be missing.
func (m *Manager) fileProblems(cfg *vmcfg.Config, dir string, missingRelativeOK bool) []relocation.Problem {
	if cfg.Guest() != vmcfg.GuestOS {
		return nil
	}
	var c relocation.Checker
	roots := m.fileRoots(dir)
	// A file missing protects the domain (soft); one that breaks the
	// rule protects this host (hard).
	report := func(field string, err error, relative bool) {
		switch {
		case !errors.Is(err, fs.ErrNotExist):
			c.Hard(field, "%v", err)
		case !relative || !missingRelativeOK:
			c.Soft(field, "%v", err)
		}
	}
	file := func(field, p string) {
		if p == "" {
			return
		}
		if err := checkFile(roots, hostPath(dir, p)); err != nil {
			report(field, err, !filepath.IsAbs(p))
		}
	}
	file(vmcfg.KeyKernel, cfg.Kernel)
	file(vmcfg.KeyRamdisk, cfg.Ramdisk)
	for i, d := range cfg.Disks {
		if d.Path == "" {
			continue // an empty CD-ROM drive
		}
		field := diskField(i, d)
		switch {
		case d.Type == "phy":
			if err := checkBlockDevice(devicePath(d.Path)); err != nil {
				report(field, err, false)
			}
		case fileDisk(d):
			file(field, d.Path)
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

// checkBlockDevice requires p to be a block device (a symlink to one, as
// /dev/disk/by-id/..., counts).
func checkBlockDevice(p string) error {
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist on this host: %w", p, fs.ErrNotExist)
	}
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
		return fmt.Errorf("%s is not a block device (a phy: disk is a block device; an image file is file:, tap:aio: or tap:qcow2:)", p)
	}
	return nil
}

// bridgeProblems lists, one soft problem each, the vifs of cfg (an
// operating system's) whose bridge this host does not have.
func (m *Manager) bridgeProblems(cfg *vmcfg.Config) []relocation.Problem {
	if cfg.Guest() != vmcfg.GuestOS || len(cfg.VIFs) == 0 {
		return nil
	}
	var c relocation.Checker
	have, err := m.bridges()
	if err != nil {
		c.Soft("vif", "cannot list this host's bridges: %v", err)
		return c.Problems()
	}
	set := map[string]bool{}
	for _, b := range have {
		set[b] = true
	}
	for i, v := range cfg.VIFs {
		field := fmt.Sprintf("vif %d", i)
		b, err := v.BridgeOn(have)
		switch {
		case err != nil:
			c.Soft(field, "%v", err)
		case !set[b]:
			c.Soft(field, "bridge %s does not exist on this host: create it or change the vif's bridge=", b)
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
