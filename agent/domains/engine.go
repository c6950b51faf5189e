package domains

import (
	"context"
	"fmt"
	"time"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/vmm"
)

// Which engine a domain runs on follows from its vm.cfg (Config.Guest):
// an operating system (kernel, bootloader or builder = 'hvm') runs on the
// qemu engine, with the QEMU program and accelerator Options.QEMU
// resolves; the workload guest runs on the engine [agent] hypervisor
// chooses (kvm or sim). Boot, restore and an incoming migration all ask
// engineFor, so that the engine is the vm.cfg's, never the host's guess.

// engineRun is the engine a domain's VMM is started on, and for the qemu
// engine the QEMU program and accelerator (vmmproc passes them as
// --engine-binary and --accel).
type engineRun struct {
	Engine string
	Binary string
	Accel  string
}

// qemuProbeTimeout bounds asking QEMU its version before a start.
const qemuProbeTimeout = 30 * time.Second

// engineFor says which engine cfg's domain runs on here, or why it cannot
// run here (Unsupported, with what to install or set).
func (m *Manager) engineFor(cfg *vmcfg.Config) (engineRun, error) {
	if cfg.Guest() != vmcfg.GuestOS {
		e, err := m.workloadEngine()
		return engineRun{Engine: e}, err
	}
	binary, accel, err := m.qemuReady()
	if err != nil {
		return engineRun{}, &Error{Kind: Unsupported, Msg: fmt.Sprintf("domain %s is an operating system (%s), which runs on the qemu engine, and this host cannot run it: %v", cfg.Name, osReason(cfg), err)}
	}
	return engineRun{Engine: vmm.EngineQEMU, Binary: binary, Accel: accel}, nil
}

// engineName is the engine cfg's domain runs on, without checking that
// this host can run it ("" when [agent] hypervisor = kvm and KVM is not
// usable).
func (m *Manager) engineName(cfg *vmcfg.Config) string {
	if cfg.Guest() == vmcfg.GuestOS {
		return vmm.EngineQEMU
	}
	e, _ := m.workloadEngine()
	return e
}

// qemuReady is the QEMU program and accelerator qemu domains get here, or
// why they cannot start (the error says what to install or set).
func (m *Manager) qemuReady() (binary, accel string, err error) {
	if m.opts.QEMU == nil {
		return "", "", fmt.Errorf("this agent has no QEMU configured: apt-get install qemu-system-x86, or set [qemu] binary in agent.ini")
	}
	ctx, cancel := context.WithTimeout(context.Background(), qemuProbeTimeout)
	defer cancel()
	return m.opts.QEMU.Ready(ctx)
}

// osReason says which vm.cfg key makes cfg an operating system.
func osReason(cfg *vmcfg.Config) string {
	switch {
	case cfg.Kernel != "":
		return "kernel = " + cfg.Kernel
	case cfg.Bootloader != "":
		return "bootloader = " + cfg.Bootloader
	default:
		return "builder = '" + vmcfg.BuilderHVM + "'"
	}
}

// workloadEngine resolves [agent] hypervisor: the engine of the workload
// guest.
func (m *Manager) workloadEngine() (string, error) {
	switch m.opts.Hypervisor {
	case "sim":
		return vmm.EngineSim, nil
	case "kvm":
		if err := m.opts.KVMUsable(); err != nil {
			return "", &Error{Kind: Unsupported, Msg: fmt.Sprintf("hypervisor = kvm, but KVM is not usable here: %v (set hypervisor = sim or auto to run domains in software)", err)}
		}
		return vmm.EngineKVM, nil
	default: // auto
		if m.opts.KVMUsable() == nil {
			return vmm.EngineKVM, nil
		}
		return vmm.EngineSim, nil
	}
}

// checkEngine records (soft) why this host cannot run the domain of cfg,
// which its source ran on engine ("" when it does not say): the engine
// its vm.cfg asks for is not usable here, or differs from the source's.
func (m *Manager) checkEngine(c *relocation.Checker, cfg *vmcfg.Config, engine string) {
	want := m.engineName(cfg)
	if cfg.Guest() == vmcfg.GuestOS || engine == vmm.EngineQEMU {
		if engine != "" && engine != want {
			c.Soft("engine", "the domain ran on the %s engine, but its vm.cfg describes %s, which runs on %s", engine, guestWords(cfg), want)
			return
		}
		if _, _, err := m.qemuReady(); err != nil {
			c.Soft("engine", "the domain is an operating system (%s) on the qemu engine, and this host cannot run it: %v", osReason(cfg), err)
		}
		return
	}
	if local, err := m.workloadEngine(); err != nil {
		c.Soft("engine", "%v", err)
	} else if engine != "" && engine != local {
		c.Soft("engine", "the domain runs on the %s engine; this host runs domains on %s (hypervisor = %s)", engine, local, m.opts.Hypervisor)
	}
}

// guestWords says what runs in cfg's domain, for a message.
func guestWords(cfg *vmcfg.Config) string {
	if cfg.Guest() == vmcfg.GuestOS {
		return "an operating system (" + osReason(cfg) + ")"
	}
	return "the workload guest"
}

// contextFor is a context that ends after d.
func contextFor(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
