package domains

import (
	"fmt"
	"io"
	"os"

	"github.com/ovs-agent/ovs-agent/agent/qemuhost"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm"
	"github.com/ovs-agent/ovs-agent/vmm/qemu"
)

// A save image says which engine wrote it: the workload engines' is the
// page-transfer stream written to a file (its header names kvm or sim),
// the qemu engine's starts with its own header (qemu.SaveMagic) and the
// QEMU that saved it. Restore reads whichever it is, and refuses an image
// whose engine is not the one its vm.cfg runs on here, before any VMM
// starts.

// imageHeader is what Restore reads of a save image.
type imageHeader struct {
	engine string // the engine that wrote it
	config string // the domain's vm.cfg text
	// qemuVersion is the saving QEMU's version, as "7.2.22" (qemu
	// engine images; "" when the image does not say).
	qemuVersion string
}

// readImageHeader reads the header of the save image f (named path) and
// leaves f at its start, for the VMM to read all of it.
func readImageHeader(f *os.File, path string) (imageHeader, error) {
	var magic [len(qemu.SaveMagic)]byte
	n, err := io.ReadFull(f, magic[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return imageHeader{}, errorf(Failed, "read save image %s: %v", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return imageHeader{}, errorf(Failed, "read save image %s: %v", path, err)
	}
	var img imageHeader
	if qemu.IsSaveImage(magic[:n]) {
		h, err := qemu.ReadSaveHeader(f)
		if err != nil {
			return imageHeader{}, errorf(Invalid, "%s is not a save image: %v", path, err)
		}
		img = imageHeader{engine: vmm.EngineQEMU, config: h.Config, qemuVersion: h.QEMUVersion}
	} else {
		h, err := pagexfer.ReadHeader(f)
		if err != nil {
			return imageHeader{}, errorf(Invalid, "%s is not a save image: %v", path, err)
		}
		img = imageHeader{engine: h.Engine, config: h.Config}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return imageHeader{}, errorf(Failed, "read save image %s: %v", path, err)
	}
	return img, nil
}

// checkImage refuses to restore an image whose engine is not the one its
// vm.cfg (cfg) runs on here, or that this host's QEMU cannot load.
func (m *Manager) checkImage(cfg *vmcfg.Config, img imageHeader, path string) error {
	run, err := m.engineFor(cfg)
	if err != nil {
		return err
	}
	if img.engine != run.Engine {
		why := ""
		if cfg.Guest() != vmcfg.GuestOS {
			why = fmt.Sprintf(" (hypervisor = %s)", m.opts.Hypervisor)
		}
		return errorf(Unsupported, "save image %s was written by the %s engine; its domain %s (%s) runs on %s here%s, which cannot load it", path, img.engine, cfg.Name, guestWords(cfg), run.Engine, why)
	}
	if img.qemuVersion == "" {
		return nil
	}
	saved, ok := qemuhost.ParseVersion("QEMU " + img.qemuVersion)
	if !ok {
		return errorf(Invalid, "save image %s: its QEMU version %q is not one", path, img.qemuVersion)
	}
	ctx, cancel := contextFor(qemuProbeTimeout)
	defer cancel()
	if _, here, err := m.opts.QEMU.Version(ctx); err == nil && here.Less(saved) {
		return errorf(Unsupported, "save image %s was written by QEMU %s; this host has %s, which cannot load the state of a newer QEMU (install qemu-system-x86 %d.%d or newer)", path, img.qemuVersion, here, saved.Major, saved.Minor)
	}
	return nil
}
