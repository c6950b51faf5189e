package domains

import (
	"fmt"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/restarts"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// watch hands the exit of d's VMM (incarnation gen) to vmmGone; it returns
// without one when the VMM is released (Close).
func (m *Manager) watch(d *domain, gen int, v VMM) {
	if ex, ok := <-v.Wait(); ok {
		m.vmmGone(d, gen, ex)
	}
}

// vmmGone settles a domain whose VMM ended, from its exit record: the
// domain left this host (migrated away, or an incoming migration that did
// not complete), is suspended (saved), or is stopped, and perhaps
// restarted (on_crash, on_poweroff).
func (m *Manager) vmmGone(d *domain, gen int, ex control.Exit) {
	d.mu.Lock()
	if d.gen != gen {
		d.mu.Unlock()
		return
	}
	reason, expected := exitReason(d, ex), d.expect != ""
	incoming := recordExit(d, ex, reason)
	switch {
	case ex.Reason == control.ExitMigrated:
		// The domain runs on the target now: it is no longer this host's.
		m.leave(d, "migrated to "+ex.Detail, "domain migrated away", zap.String("target", ex.Detail))
	case incoming:
		// An incoming migration that did not complete leaves nothing here.
		m.leave(d, reason, "incoming migration did not complete; domain removed", zap.String("reason", reason))
	case ex.Reason == control.ExitSaved:
		d.rec.SaveImage = ex.Detail
		m.setState(d, Suspended, "saved to "+ex.Detail)
		m.closeExited(d)
		d.mu.Unlock()
	default:
		m.stopped(d, ex, reason, expected)
	}
}

// exitReason is the domain's reason for the end of its VMM: what the
// agent asked for, else what the exit record says; the caller holds d.mu.
func exitReason(d *domain, ex control.Exit) string {
	switch {
	case d.expect != "":
		return d.expect
	case ex.Reason != control.ExitVanished:
		return exitText(ex)
	case ex.Detail != "":
		return fmt.Sprintf("ovs-vmm (pid %d) ended unexpectedly: %s", ex.PID, ex.Detail)
	default:
		return fmt.Sprintf("ovs-vmm (pid %d) ended unexpectedly", ex.PID)
	}
}

// exitText is an exit record's reason and the first line of its detail.
func exitText(ex control.Exit) string {
	if ex.Detail == "" {
		return string(ex.Reason)
	}
	return string(ex.Reason) + ": " + firstLine(ex.Detail)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// recordExit keeps the exit record and the console's last lines, and lets
// go of the VMM; it says whether the VMM was an incoming migration's. The
// caller holds d.mu.
func recordExit(d *domain, ex control.Exit, reason string) (incoming bool) {
	if ex.Reason == control.ExitVanished && ex.Detail == "" {
		ex.Detail = reason
	}
	d.vmm = nil
	d.rec.LastExit = &ex
	d.rec.ConsoleTail = consoleTail(d.dir, ConsoleTailLines)
	d.rec.PID = 0
	incoming = d.rec.Incoming
	d.rec.Incoming = false
	return incoming
}

// leave records a domain that left this host and forgets it; the caller
// holds d.mu, which leave releases.
func (m *Manager) leave(d *domain, reason, msg string, f zap.Field) {
	name := d.rec.Name
	m.setState(d, Stopped, reason)
	m.closeExited(d)
	d.mu.Unlock()
	m.log.Info(msg, zap.String("domain", name), f)
	m.forget(d)
}

// stopped records a domain whose VMM ended here, and restarts it when the
// end was not asked for and vm.cfg says so. The caller holds d.mu, which
// stopped releases.
func (m *Manager) stopped(d *domain, ex control.Exit, reason string, expected bool) {
	m.setState(d, Stopped, reason)
	m.closeExited(d)
	action := ""
	if !expected {
		action = exitAction(d.cfg, ex.Reason)
	}
	name := d.rec.Name
	d.mu.Unlock()
	if !expected {
		m.log.Warn("domain stopped on its own", zap.String("domain", name), zap.String("reason", reason), zap.String("action", action))
	}
	if action == vmcfg.ActionRestart || action == vmcfg.ActionRenameRestart || action == vmcfg.ActionCoredumpRestart {
		go m.autoRestart(d)
		return
	}
	if !expected {
		m.tellStopped(d)
	}
}

// tellStopped tells Options.Stopped of d, stopped for good.
func (m *Manager) tellStopped(d *domain) {
	if m.opts.Stopped == nil {
		return
	}
	d.mu.Lock()
	name, uuid := d.rec.Name, d.rec.UUID
	d.mu.Unlock()
	go m.opts.Stopped(name, uuid)
}

// exitAction is what vm.cfg asks for when a VMM ends on its own for
// reason r ("" when nothing is to be done).
func exitAction(cfg *vmcfg.Config, r control.ExitReason) string {
	switch r {
	case control.ExitShutdown:
		return cfg.OnPoweroff
	case control.ExitRebooted:
		return cfg.OnReboot
	case control.ExitFailedToStart:
		return ""
	case control.ExitFenced:
		// The lease ran out: where the domain runs next is its pool's
		// to decide, never this host's on its own.
		return ""
	default:
		return cfg.OnCrash
	}
}

// closeExited wakes whoever waits for the VMM to end; the caller holds d.mu.
func (m *Manager) closeExited(d *domain) {
	if d.exited != nil {
		select {
		case <-d.exited:
		default:
			close(d.exited)
		}
	}
}

// forget removes a domain that left this host from the registry and its
// folder.
func (m *Manager) forget(d *domain) {
	m.mu.Lock()
	if m.doms[d.rec.Name] == d {
		delete(m.doms, d.rec.Name)
	}
	m.mu.Unlock()
	if err := os.RemoveAll(d.dir); err != nil {
		m.log.Error("remove domain folder", zap.String("dir", d.dir), zap.Error(err))
	}
}

// autoRestart starts a domain whose VMM ended on its own again, within
// the restart budget; past it the domain stays stopped and its reason says
// why.
func (m *Manager) autoRestart(d *domain) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if m.isClosed() {
		return
	}
	d.mu.Lock()
	if d.rec.State != Stopped {
		d.mu.Unlock()
		return
	}
	v := restarts.Default.Take(d.rec.Restarts, time.Now())
	if !v.Restart {
		m.setState(d, Stopped, d.rec.Reason+"; not restarted: "+v.Why)
		d.mu.Unlock()
		m.tellStopped(d)
		return
	}
	d.rec.Restarts = v.History
	d.mu.Unlock()
	if err := m.start(d); err != nil {
		m.log.Error("automatic restart failed", zap.String("domain", d.rec.Name), zap.Error(err))
		m.tellStopped(d)
	}
}
