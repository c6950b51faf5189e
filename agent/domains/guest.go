package domains

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/vmm"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// What an operating system's guest takes from the agent while it runs: a
// new memory target for its balloon (xm mem-set) and keystrokes for its
// serial console (xm console). Both are the qemu engine's; the workload
// guest has neither.

// MinMemoryTargetMiB is the lowest balloon target SetMemory accepts (a
// Linux guest squeezed below it stops answering); a domain whose vm.cfg
// memory is lower may go down to that.
const MinMemoryTargetMiB = 64

// SetMemory asks the running domain's guest to use mib MiB of memory
// through its balloon, at most its maxmem and at least
// MinMemoryTargetMiB. Growing it past the memory the domain holds now must
// fit in the host's free memory. The target lasts while the guest runs
// (as xm mem-set of a domain xend does not manage): the next start boots
// with the vm.cfg's memory again, which is left as written.
func (m *Manager) SetMemory(name string, mib int) error {
	d, done, err := m.begin(name, "set_memory", nil)
	if err != nil {
		return err
	}
	defer done()
	if err := m.checkTarget(d, mib); err != nil {
		return err
	}
	if _, err := m.ctlCall(d, control.Request{Op: control.OpSetMemory, MemoryBytes: uint64(mib) << 20}, 10*time.Second); err != nil {
		return errorf(Failed, "set the memory of %s to %d MiB: %v", name, mib, err)
	}
	d.mu.Lock()
	d.rec.MemoryTarget = mib
	if err := d.persist(); err != nil {
		m.log.Error("persist domain memory target", zap.String("domain", name), zap.Error(err))
	}
	d.mu.Unlock()
	m.log.Info("domain memory target", zap.String("domain", name), zap.Int("mib", mib))
	return nil
}

// checkTarget refuses a balloon target d cannot take: not a qemu domain,
// beyond maxmem, under the floor, or more than the host has free.
func (m *Manager) checkTarget(d *domain, mib int) error {
	d.mu.Lock()
	name, engine, maxMem, memory, cur := d.rec.Name, d.rec.Engine, d.cfg.MaxMem, d.cfg.Memory, d.holds()
	d.mu.Unlock()
	if engine != vmm.EngineQEMU {
		return errorf(Unsupported, "domain %s runs the workload guest (engine %s), which has no balloon: only qemu domains take a memory target", name, engine)
	}
	floor := min(MinMemoryTargetMiB, memory)
	switch {
	case mib > maxMem:
		return errorf(Invalid, "domain %s: %d MiB is more than its maxmem, %d MiB (raise maxmem in its vm.cfg and start it again)", name, mib, maxMem)
	case mib < floor:
		return errorf(Invalid, "domain %s: %d MiB is less than the %d MiB a guest is left at least", name, mib, floor)
	case mib <= cur:
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	total, err := m.opts.HostMemory()
	if err != nil {
		return errorf(Failed, "read host memory: %v", err)
	}
	free := saturatingSub(saturatingSub(total, m.opts.MemoryReserve), m.committed(d))
	if uint64(mib)<<20 > free {
		return errorf(NoResources, "domain %s: %d MiB do not fit: %d MiB are free for it (%d MiB total, %d MiB reserved for the host, the rest used by other domains)",
			name, mib, free>>20, total>>20, m.opts.MemoryReserve>>20)
	}
	return nil
}

// holds is the memory, in MiB, d's guest holds: its balloon target when
// one was set since it started, else its vm.cfg memory. The caller holds
// d.mu.
func (d *domain) holds() int {
	if d.rec.MemoryTarget > 0 {
		return d.rec.MemoryTarget
	}
	return d.cfg.Memory
}

// ConsoleInput types data into the running domain's serial console, at
// most control.MaxConsoleInput bytes at once.
func (m *Manager) ConsoleInput(name string, data []byte) error {
	if len(data) > control.MaxConsoleInput {
		return errorf(Invalid, "console input for %s: %d bytes at once, at most %d: send it in pieces", name, len(data), control.MaxConsoleInput)
	}
	d, err := m.get(name)
	if err != nil {
		return err
	}
	d.mu.Lock()
	state, engine := d.rec.State, d.rec.Engine
	d.mu.Unlock()
	if state != Running && state != Paused {
		return &Error{Kind: BadState, State: state, Msg: fmt.Sprintf("domain %s is %s; console input needs it running or paused", name, state)}
	}
	if engine != vmm.EngineQEMU {
		return errorf(Unsupported, "domain %s runs the workload guest (engine %s), which reads no console input", name, engine)
	}
	if len(data) == 0 {
		return nil
	}
	if _, err := m.ctlCall(d, control.Request{Op: control.OpConsoleInput, Bytes: data, Data: string(data)}, 5*time.Second); err != nil {
		return errorf(Failed, "console input for %s: %v", name, err)
	}
	return nil
}
