package domains

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/vmm"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

func hostMemTotal() (uint64, error) { return hostinfo.MemoryTotal() }

// engine resolves the hypervisor setting for a start.
func (m *Manager) engine() (string, error) {
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

// Start starts a stopped domain and returns once its VMM answers.
func (m *Manager) Start(name string) error {
	d, err := m.get(name)
	if err != nil {
		return err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	return m.start(d)
}

// start runs with d.opMu held: it boots the domain, or restores it from
// its save image when it is suspended.
func (m *Manager) start(d *domain) error {
	d.mu.Lock()
	img := d.rec.SaveImage
	suspended := d.rec.State == Suspended
	d.mu.Unlock()
	if suspended && img != "" {
		return m.launch(d, launchRestore, img, "")
	}
	return m.launch(d, launchBoot, "", "")
}

// How a VMM is launched.
const (
	launchBoot = iota
	launchRestore
	launchIncoming
)

// launch starts d's VMM: booting, restoring from image, or waiting for an
// incoming migration (the domain stays starting until the migration's
// commit, see watchIncoming).
//
// For a restore, imageFile (if given) is the image already opened and
// checked by the caller: the VMM gets it as an inherited descriptor and
// reads it as /dev/fd/3, so a path swapped after the check (a symlink, a
// FIFO) is never what it reads.
func (m *Manager) launch(d *domain, how int, image, from string, imageFile ...*os.File) error {
	name := d.rec.Name
	engine, err := m.engine()
	if err != nil {
		return err
	}
	m.noteRepositories(d)
	// Check and claim memory atomically with respect to other starts.
	m.mu.Lock()
	d.mu.Lock()
	op := "start"
	if how == launchIncoming {
		op = "receive"
	}
	if err := check(name, op, d.rec.State); err != nil {
		d.mu.Unlock()
		m.mu.Unlock()
		return err
	}
	d.mu.Unlock()
	total, err := m.opts.HostMemory()
	if err != nil {
		m.mu.Unlock()
		return errorf(Failed, "read host memory: %v", err)
	}
	used := m.committed(d)
	free := saturatingSub(saturatingSub(total, m.opts.MemoryReserve), used)
	need := uint64(d.cfg.Memory) << 20
	if need > free {
		m.mu.Unlock()
		return errorf(NoResources, "not enough free memory to start %s: it needs %d MiB, %d MiB are free for domains (%d MiB total, %d MiB reserved for the host, %d MiB used by running domains)",
			name, d.cfg.Memory, free>>20, total>>20, m.opts.MemoryReserve>>20, used>>20)
	}
	d.mu.Lock()
	d.gen++
	gen := d.gen
	d.expect = ""
	d.exited = make(chan struct{})
	d.rec.Engine = engine
	d.rec.LastExit = nil
	m.setState(d, Starting, "")
	d.mu.Unlock()
	m.mu.Unlock()

	sock := m.socketPath(d)
	if len(sock) > 107 {
		return m.startFailed(d, gen, fmt.Errorf("VMM socket path %s is longer than 107 bytes: use a shorter state_dir", sock))
	}
	// What the last run left goes now: a VMM that fails before it opens
	// its console must not be reported with the previous run's output.
	_ = os.Remove(filepath.Join(d.dir, vmm.ExitFile))
	_ = os.Remove(filepath.Join(d.dir, vmm.ConsoleFile))
	_ = os.Remove(sock)

	logf, err := os.OpenFile(filepath.Join(d.dir, "vmm.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return m.startFailed(d, gen, err)
	}
	args := []string{"--config", filepath.Join(d.dir, "vm.cfg"), "--engine", engine, "--dir", d.dir, "--socket", sock}
	switch how {
	case launchRestore:
		if len(imageFile) > 0 && imageFile[0] != nil {
			image = "/dev/fd/3" // cmd.ExtraFiles[0]
		}
		args = append(args, "--restore", image)
	case launchIncoming:
		args = append(args, "--incoming")
	}
	cmd := exec.Command(m.vmmBinary(), args...)
	if how == launchRestore && len(imageFile) > 0 && imageFile[0] != nil {
		cmd.ExtraFiles = []*os.File{imageFile[0]}
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: the VMM must outlive the agent and not get the
	// terminal's signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return m.startFailed(d, gen, fmt.Errorf("run %s: %w", m.vmmBinary(), err))
	}
	pid := cmd.Process.Pid
	waited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		waited <- err
		m.vmmGone(d, gen, pid, err)
	}()

	// Wait until the VMM answers on its socket, or ends.
	deadline := time.Now().Add(m.opts.StartTimeout)
	var info *control.Info
	var ctl *control.Client
	for time.Now().Before(deadline) {
		select {
		case <-d.exited:
			d.mu.Lock()
			reason := d.rec.Reason
			d.mu.Unlock()
			return errorf(Failed, "domain %s did not start: %s", name, reason)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := control.Dial(ctx, sock)
		if err == nil {
			info, err = c.Info(ctx)
			if err == nil {
				ctl = c
				cancel()
				break
			}
			c.Close()
		}
		cancel()
		time.Sleep(20 * time.Millisecond)
	}
	if ctl == nil {
		syscall.Kill(pid, syscall.SIGKILL)
		<-d.exited
		return errorf(Failed, "domain %s did not start: its VMM did not answer within %s", name, m.opts.StartTimeout)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen != gen || d.rec.State != Starting {
		ctl.Close()
		return errorf(Failed, "domain %s did not start: %s", name, d.rec.Reason)
	}
	d.ctl = ctl
	d.rec.PID = info.PID
	d.rec.Started = info.Started
	switch how {
	case launchIncoming:
		d.rec.Incoming, d.rec.IncomingFrom = true, from
		m.setState(d, Starting, "incoming migration from "+from)
		m.log.Info("VMM waiting for an incoming migration", zap.String("domain", name), zap.String("from", from), zap.Int("vmm_pid", info.PID))
		return nil
	case launchRestore:
		d.rec.SaveImage = ""
		m.setState(d, Running, "restored from "+image)
	default:
		m.setState(d, Running, "")
	}
	m.log.Info("domain started", zap.String("domain", name), zap.String("engine", engine), zap.Int("vmm_pid", info.PID))
	return nil
}

func (m *Manager) startFailed(d *domain, gen int, err error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen == gen {
		m.setState(d, Stopped, "failed to start: "+err.Error())
		close(d.exited)
	}
	return errorf(Failed, "domain %s did not start: %v", d.rec.Name, err)
}

func (m *Manager) vmmBinary() string {
	if m.opts.VMMBinary != "" {
		return m.opts.VMMBinary
	}
	if exe, err := os.Executable(); err == nil {
		return filepath.Join(filepath.Dir(exe), "ovs-vmm")
	}
	return "ovs-vmm"
}

// vmmGone handles the end of a VMM process (a child: waitErr is its wait
// status; a re-attached one: waitErr is nil and status unknown).
func (m *Manager) vmmGone(d *domain, gen, pid int, waitErr error) {
	d.mu.Lock()
	if d.gen != gen {
		d.mu.Unlock()
		return
	}
	if d.ctl != nil {
		d.ctl.Close()
		d.ctl = nil
	}
	ex, _ := readExit(d.dir, pid)
	var reason string
	switch {
	case d.expect != "":
		reason = d.expect
	case ex != nil:
		reason = string(ex.Reason)
		if ex.Detail != "" {
			reason += ": " + firstLine(ex.Detail)
		}
	case waitErr != nil:
		reason = fmt.Sprintf("ovs-vmm (pid %d) ended unexpectedly: %v", pid, waitErr)
	default:
		reason = fmt.Sprintf("ovs-vmm (pid %d) ended unexpectedly", pid)
	}
	if ex == nil {
		ex = &control.Exit{Time: time.Now().UTC(), PID: pid, Reason: "vanished", Detail: reason, Code: -1}
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			ex.Code = ee.ExitCode()
			ex.Detail = waitErr.Error()
		}
	}
	expected := d.expect != ""
	d.rec.LastExit = ex
	d.rec.ConsoleTail = consoleTail(d.dir, ConsoleTailLines)
	d.rec.PID = 0
	incoming := d.rec.Incoming
	d.rec.Incoming = false
	switch {
	case ex.Reason == control.ExitMigrated:
		// The domain runs on the target now: it is no longer this host's.
		name := d.rec.Name
		m.setState(d, Stopped, "migrated to "+ex.Detail)
		m.closeExited(d)
		d.mu.Unlock()
		m.log.Info("domain migrated away", zap.String("domain", name), zap.String("target", ex.Detail))
		m.forget(d)
		return
	case incoming:
		// An incoming migration that did not complete leaves nothing here.
		name := d.rec.Name
		m.setState(d, Stopped, reason)
		m.closeExited(d)
		d.mu.Unlock()
		m.log.Info("incoming migration did not complete; domain removed", zap.String("domain", name), zap.String("reason", reason))
		m.forget(d)
		return
	case ex.Reason == control.ExitSaved:
		d.rec.SaveImage = ex.Detail
		m.setState(d, Suspended, "saved to "+ex.Detail)
		m.closeExited(d)
		d.mu.Unlock()
		return
	}
	m.setState(d, Stopped, reason)
	m.closeExited(d)
	action := ""
	if !expected {
		switch ex.Reason {
		case control.ExitShutdown:
			action = d.cfg.OnPoweroff
		case control.ExitFailedToStart:
		default:
			action = d.cfg.OnCrash
		}
	}
	name := d.rec.Name
	d.mu.Unlock()
	if !expected {
		m.log.Warn("domain stopped on its own", zap.String("domain", name), zap.String("reason", reason), zap.String("action", action))
	}
	if action == vmcfg.ActionRestart || action == vmcfg.ActionRenameRestart || action == vmcfg.ActionCoredumpRestart {
		go m.autoRestart(d)
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

// Restart budget for on_crash/on_poweroff = restart.
const (
	restartWindow = time.Minute
	restartMax    = 3
)

func (m *Manager) autoRestart(d *domain) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	select {
	case <-m.closed:
		return
	default:
	}
	d.mu.Lock()
	now := time.Now()
	var recent []time.Time
	for _, t := range d.rec.Restarts {
		if now.Sub(t) < restartWindow {
			recent = append(recent, t)
		}
	}
	if len(recent) >= restartMax || d.rec.State != Stopped {
		if len(recent) >= restartMax {
			m.setState(d, Stopped, d.rec.Reason+fmt.Sprintf("; not restarted: %d restarts within %s", len(recent), restartWindow))
		}
		d.mu.Unlock()
		return
	}
	d.rec.Restarts = append(recent, now)
	d.mu.Unlock()
	if err := m.start(d); err != nil {
		m.log.Error("automatic restart failed", zap.String("domain", d.rec.Name), zap.Error(err))
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// recover re-attaches to d's VMM after an agent restart.
func (m *Manager) recover(d *domain) {
	d.mu.Lock()
	if !d.rec.State.live() {
		d.mu.Unlock()
		return
	}
	d.gen++
	gen := d.gen
	d.exited = make(chan struct{})
	pid := d.rec.PID
	d.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	fail := func(why string) {
		m.log.Warn("VMM not found again", zap.String("domain", d.rec.Name), zap.String("why", why))
		d.mu.Lock()
		if ex, err := readExit(d.dir, pid); err == nil {
			d.expect = "the VMM ended while the agent was away: " + string(ex.Reason)
			if ex.Detail != "" {
				d.expect += ": " + firstLine(ex.Detail)
			}
		} else {
			d.expect = fmt.Sprintf("the VMM (pid %d) ended while the agent was away (%s)", pid, why)
		}
		d.mu.Unlock()
		m.vmmGone(d, gen, pid, nil)
	}
	c, err := control.Dial(ctx, m.socketPath(d))
	if err != nil {
		fail(err.Error())
		return
	}
	info, err := c.Info(ctx)
	if err != nil {
		c.Close()
		fail(err.Error())
		return
	}
	if !strings.EqualFold(info.UUID, d.rec.UUID) {
		c.Close()
		fail(fmt.Sprintf("the socket answers for UUID %s", info.UUID))
		return
	}
	m.noteRepositories(d)
	pidfd, err := unix.PidfdOpen(info.PID, 0)
	if err != nil {
		c.Close()
		fail(fmt.Sprintf("pidfd_open(%d): %v", info.PID, err))
		return
	}
	d.mu.Lock()
	d.ctl = c
	d.rec.PID = info.PID
	d.rec.Started = info.Started
	incoming := info.State == "incoming"
	switch {
	case incoming:
		m.setState(d, Starting, "incoming migration from "+d.rec.IncomingFrom+" (re-attached after agent restart)")
	case info.State == "paused":
		m.setState(d, Paused, "re-attached after agent restart")
	default:
		// An incoming migration that committed while the agent was away
		// is over.
		d.rec.Incoming = false
		m.setState(d, Running, "re-attached after agent restart")
	}
	d.mu.Unlock()
	if incoming {
		go m.WatchIncoming(d.rec.Name)
	}
	m.settleOutgoing(d)
	m.log.Info("re-attached to running domain", zap.String("domain", d.rec.Name), zap.Int("vmm_pid", info.PID))
	go m.watchPidfd(d, gen, info.PID, pidfd)
}

// settleOutgoing handles a migration the VMM was sending when the agent
// went away: one that has not committed is aborted (the domain stays here,
// the target discards its copy); a committing one finishes on its own; an
// in-doubt one is left to the resolver the caller installs (Resolve).
func (m *Manager) settleOutgoing(d *domain) {
	resp, err := m.ctlCall(d, control.Request{Op: control.OpMigrateStatus}, 3*time.Second)
	if err != nil || resp.Migration == nil {
		return
	}
	st := resp.Migration
	switch st.Phase {
	case control.PhaseSetup, control.PhasePrecopy, control.PhaseStopCopy, control.PhaseSent, control.PhaseVerified:
		m.log.Warn("aborting the migration the agent was running before its restart", zap.String("domain", d.rec.Name), zap.String("migration", st.ID), zap.String("phase", string(st.Phase)))
		_, _ = m.ctlCall(d, control.Request{Op: control.OpMigrateAbort, Reason: "the source agent restarted before the commit"}, 5*time.Second)
	case control.PhaseInDoubt:
		m.log.Warn("a migration is in doubt after the agent restart; the domain stays paused until the target says where it runs", zap.String("domain", d.rec.Name), zap.String("target", st.Target))
		d.mu.Lock()
		d.inDoubt = st.Target
		d.mu.Unlock()
	}
}

// InDoubt lists the domains whose outgoing migration was found in doubt
// when the agent started, with their targets.
func (m *Manager) InDoubt() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for n, d := range m.doms {
		d.mu.Lock()
		if d.inDoubt != "" {
			out[n] = d.inDoubt
		}
		d.mu.Unlock()
	}
	return out
}

// watchPidfd waits for a VMM that is not our child to end.
func (m *Manager) watchPidfd(d *domain, gen, pid, fd int) {
	defer unix.Close(fd)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 1000)
		if err != nil && !errors.Is(err, unix.EINTR) {
			m.log.Error("poll pidfd", zap.Error(err))
			return
		}
		if n > 0 {
			m.vmmGone(d, gen, pid, nil)
			return
		}
		select {
		case <-m.closed:
			return
		default:
		}
	}
}

// Pause stops a running domain's vCPUs.
func (m *Manager) Pause(name string) error {
	return m.pauseResume(name, "pause", control.OpPause, Paused)
}

// Unpause continues a paused domain.
func (m *Manager) Unpause(name string) error {
	return m.pauseResume(name, "unpause", control.OpResume, Running)
}

func (m *Manager) pauseResume(name, op, ctlOp string, to State) error {
	d, err := m.get(name)
	if err != nil {
		return err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	err = check(name, op, d.rec.State)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if _, err := m.ctlCall(d, control.Request{Op: ctlOp}, 10*time.Second); err != nil {
		return errorf(Failed, "%s %s: %v", op, name, err)
	}
	d.mu.Lock()
	m.setState(d, to, "")
	d.mu.Unlock()
	return nil
}

// Shutdown stops a domain cleanly, destroying it if it has not ended after
// timeout.
func (m *Manager) Shutdown(name string, timeout time.Duration) error {
	d, err := m.get(name)
	if err != nil {
		return err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	return m.stop(d, "shutdown", "shut down", timeout)
}

// Destroy stops a domain at once.
func (m *Manager) Destroy(name string) error {
	d, err := m.get(name)
	if err != nil {
		return err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	return m.stop(d, "destroy", "destroyed", 0)
}

// Reboot shuts a domain down cleanly and starts it again.
func (m *Manager) Reboot(name string, timeout time.Duration) error {
	d, err := m.get(name)
	if err != nil {
		return err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if err := m.stop(d, "reboot", "rebooted", timeout); err != nil {
		return err
	}
	return m.start(d)
}

// stop ends the VMM: cleanly (timeout > 0, then forced) or at once.
func (m *Manager) stop(d *domain, op, reason string, timeout time.Duration) error {
	name := d.rec.Name
	d.mu.Lock()
	if err := check(name, op, d.rec.State); err != nil {
		d.mu.Unlock()
		return err
	}
	d.expect = reason
	exited, pid := d.exited, d.rec.PID
	m.setState(d, Stopping, op)
	d.mu.Unlock()

	ctlOp := control.OpShutdown
	if timeout <= 0 {
		ctlOp = control.OpDestroy
		timeout = 5 * time.Second
	}
	if _, err := m.ctlCall(d, control.Request{Op: ctlOp}, 5*time.Second); err != nil {
		m.log.Warn("VMM did not take the stop request; killing it", zap.String("domain", name), zap.Error(err))
		timeout = 0
	}
	if timeout > 0 {
		select {
		case <-exited:
			return nil
		case <-time.After(timeout):
			m.log.Warn("domain did not stop in time; destroying it", zap.String("domain", name), zap.Duration("timeout", timeout))
		}
	}
	d.mu.Lock()
	if d.expect == reason && timeout > 0 {
		d.expect = reason + fmt.Sprintf(" (forced after %s)", timeout)
	}
	d.mu.Unlock()
	if pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return errorf(Failed, "%s %s: VMM pid %d does not end", op, name, pid)
	}
}
