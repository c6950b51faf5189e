package domains

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
	"github.com/ovs-agent/ovs-agent/agent/vmmproc"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

func hostMemTotal() (uint64, error) { return hostinfo.MemoryTotal() }

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
		return m.resume(d, img)
	}
	return m.launch(d, vmmproc.Boot, "", "", nil)
}

// resume restores a suspended domain from its save image img. An image
// that opens is checked first, as Restore does (its engine and QEMU), and
// handed to the VMM opened; one that does not is the VMM's to report.
func (m *Manager) resume(d *domain, img string) error {
	f, err := boundedfile.Open(img, boundedfile.NoFollow)
	if err != nil {
		return m.launch(d, vmmproc.Restore, img, "", nil)
	}
	defer f.Close()
	h, err := readImageHeader(f, img)
	if err != nil {
		return err
	}
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	if err := m.checkImage(cfg, h, img); err != nil {
		return err
	}
	return m.launch(d, vmmproc.Restore, img, "", f)
}

// launch starts d's VMM: booting, restoring from image, or waiting for an
// incoming migration (the domain stays starting until the migration's
// commit, see WatchIncoming). For a restore, imageFile (if not nil) is the
// image already opened and checked by the caller (see vmmproc.Spec).
func (m *Manager) launch(d *domain, how vmmproc.Mode, image, from string, imageFile *os.File) error {
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	run, err := m.engineFor(cfg)
	if err != nil {
		return err
	}
	if err := m.checkFiles(cfg, d.dir, true); err != nil {
		return err
	}
	d.mu.Lock()
	ru, g := d.runUntil, d.rec.Generation
	d.mu.Unlock()
	if how != vmmproc.Incoming && g > 0 && ru.IsZero() {
		// The run-until time is kept in memory only: after an agent
		// restart a stopped pool domain has none until its pool gives
		// one, and it must not run unfenced meanwhile.
		return errorf(BadState, "domain %s belongs to a pool (generation %d) and has no lease here (none given since the agent started, or its fencing was turned off): its pool starts it, with a lease",
			d.rec.Name, g)
	}
	if !ru.IsZero() && ru.Until() <= 0 {
		return errorf(BadState, "domain %s: its lease ran out %v ago (SetLease's run-until time has passed): not started until its pool renews the lease",
			d.rec.Name, -ru.Until().Round(time.Millisecond))
	}
	m.noteRepositories(d)
	gen, err := m.claim(d, how, run.Engine)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.StartTimeout)
	defer cancel()
	spec := vmmproc.Spec{UUID: d.rec.UUID, Dir: d.dir, Socket: m.socketPath(d), Engine: run.Engine, EngineBinary: run.Binary, Accel: run.Accel, Mode: how, Image: image, ImageFile: imageFile,
		Host: m.opts.HostName}
	d.mu.Lock()
	spec.RunUntil, spec.Generation = d.runUntil, d.rec.Generation
	spec.MemoryBacking = d.rec.MemoryBacking
	d.mu.Unlock()
	v, err := m.vmms.Start(ctx, spec)
	if v == nil {
		return m.startFailed(d, gen, err)
	}
	go m.watch(d, gen, v)
	if err != nil {
		return m.notAnswered(d, err)
	}
	if err := m.started(d, gen, v, how, image, from); err != nil {
		return err
	}
	if err := m.leaseSince(d, gen, v, spec); err != nil {
		// It must not run on a lease it does not have: the pool
		// believes the one it gave is in force.
		if serr := m.stop(d, "destroy", "destroyed: "+err.Error(), 0); serr != nil {
			m.log.Error("destroy of a VMM without its lease", zap.String("domain", d.rec.Name), zap.Error(serr))
		}
		return errorf(Failed, "domain %s: %v; its VMM was destroyed (it must not run on a lease it does not have): start it again",
			d.rec.Name, err)
	}
	return nil
}

// leaseRetry is the pause between two attempts of leaseSince.
const leaseRetry = 100 * time.Millisecond

// leaseSince hands a VMM just started the lease SetLease recorded while
// it started, if that differs from the one it started with. It holds
// d.leaseMu for each attempt (a SetLease that comes meanwhile is ordered
// with it, and the attempt hands over the lease recorded last), and tries
// until the VMM takes it, the VMM has ended, or the lease's run-until
// time passes (without one, the start timeout): then the lease could not
// be delivered, and the error says so.
func (m *Manager) leaseSince(d *domain, gen int, v VMM, spec vmmproc.Spec) error {
	giveUp := time.Now().Add(m.opts.StartTimeout)
	for attempt := 1; ; attempt++ {
		done, ru, g, err := m.leaseAttempt(d, v, spec)
		if done {
			return nil
		}
		d.mu.Lock()
		current := d.gen == gen && d.vmm == v
		d.mu.Unlock()
		if !current {
			return nil // it has ended: nothing of it runs without the lease
		}
		if attempt == 1 {
			m.log.Warn("lease taken while the VMM started did not reach it yet; trying again", zap.String("domain", d.rec.Name),
				zap.Int64("generation", g), zap.Error(err))
		}
		if (!ru.IsZero() && ru.Until() <= leaseRetry) || time.Now().Add(leaseRetry).After(giveUp) {
			err = fmt.Errorf("the lease taken while its VMM started (generation %d) did not reach it after %d attempts: %w", g, attempt, err)
			m.log.Error("lease undelivered: destroying the VMM", zap.String("domain", d.rec.Name), zap.Error(err))
			return err
		}
		time.Sleep(leaseRetry)
	}
}

// leaseAttempt is one attempt of leaseSince: done when the VMM has the
// lease recorded (or needs none handed), or holds a lease that stands
// for it (a newer generation's; or it fenced itself and the lease is not
// in the future). ru and g are the lease it tried.
func (m *Manager) leaseAttempt(d *domain, v VMM, spec vmmproc.Spec) (done bool, ru control.Monotonic, g int64, err error) {
	d.leaseMu.Lock()
	defer d.leaseMu.Unlock()
	d.mu.Lock()
	ru, g = d.runUntil, d.rec.Generation
	d.mu.Unlock()
	if ru == spec.RunUntil && g == spec.Generation {
		return true, ru, g, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaseTimeout)
	defer cancel()
	_, err = v.SetLease(ctx, ru, g)
	var ve *control.ErrVMM
	if errors.As(err, &ve) && (strings.HasPrefix(ve.Msg, control.ErrStaleGeneration.Error()) || strings.HasPrefix(ve.Msg, control.ErrFenceNeedsFuture.Error())) {
		m.log.Warn("lease taken while the VMM started refused by it; the VMM keeps its own", zap.String("domain", d.rec.Name), zap.String("why", ve.Msg))
		return true, ru, g, nil
	}
	return err == nil, ru, g, err
}

// claim checks that d may start and that its memory fits beside that of
// the live domains, and marks it starting, atomically with respect to
// other starts. It returns the new VMM incarnation.
func (m *Manager) claim(d *domain, how vmmproc.Mode, engine string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	op := "start"
	if how == vmmproc.Incoming {
		op = "receive"
	}
	d.mu.Lock()
	err := check(d.rec.Name, op, d.rec.State)
	d.mu.Unlock()
	if err != nil {
		return 0, err
	}
	f, err := m.fitsBeside(d)
	if err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rec.MemoryBacking = string(f.backing)
	d.gen++
	d.expect = ""
	d.exited = make(chan struct{})
	d.rec.Engine = engine
	d.rec.LastExit = nil
	d.rec.MemoryTarget = 0
	m.setState(d, Starting, "")
	return d.gen, nil
}

// fitsBeside refuses to start d when its memory does not fit in what the
// live domains leave free, and returns the backing its memory gets (see
// fit); the caller holds m.mu.
func (m *Manager) fitsBeside(d *domain) (memoryFit, error) {
	return m.fit(d.cfg, d.cfg.Memory, m.wantedBacking(d.cfg.MemoryBacking), d, false)
}

// started records the VMM that answered: the domain runs, or waits for
// its incoming migration. When the manager was closed meanwhile, the VMM
// is recorded all the same (the next Open finds it again) but released,
// not held: Close let go of the others, and nothing would let go of it.
func (m *Manager) started(d *domain, gen int, v VMM, how vmmproc.Mode, image, from string) error {
	h := v.Handle()
	d.mu.Lock()
	defer d.mu.Unlock()
	name := d.rec.Name
	if d.gen != gen || d.rec.State != Starting {
		return errorf(Failed, "domain %s did not start: %s", name, d.rec.Reason)
	}
	// Close closes m.closed before it takes d.mu: either it already let
	// go of d.vmm, or it is seen closed here.
	if m.isClosed() {
		v.Release()
		m.log.Info("manager closed while the VMM started; released, left running", zap.String("domain", name), zap.Int("vmm_pid", h.PID))
	} else {
		d.vmm = v
	}
	d.rec.PID, d.rec.Started = h.PID, h.Started
	switch how {
	case vmmproc.Incoming:
		d.rec.Incoming, d.rec.IncomingFrom = true, from
		m.setState(d, Starting, "incoming migration from "+from)
		m.log.Info("VMM waiting for an incoming migration", zap.String("domain", name), zap.String("from", from), zap.Int("vmm_pid", h.PID))
		return nil
	case vmmproc.Restore:
		d.rec.SaveImage = ""
		m.setState(d, Running, "restored from "+image)
	default:
		m.setState(d, Running, "")
	}
	m.log.Info("domain started", zap.String("domain", name), zap.String("engine", d.rec.Engine), zap.Int("vmm_pid", h.PID))
	return nil
}

// startFailed records a VMM that could not be run at all.
func (m *Manager) startFailed(d *domain, gen int, err error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen == gen {
		m.setState(d, Stopped, "failed to start: "+err.Error())
		close(d.exited)
	}
	return errorf(Failed, "domain %s did not start: %v", d.rec.Name, err)
}

// notAnswered waits until the exit of a VMM that did not answer is
// recorded (vmmGone), and says why the domain did not start.
func (m *Manager) notAnswered(d *domain, err error) error {
	d.mu.Lock()
	exited, name := d.exited, d.rec.Name
	d.mu.Unlock()
	select {
	case <-exited:
	case <-m.closed:
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errorf(Failed, "domain %s did not start: its VMM did not answer within %s", name, m.opts.StartTimeout)
	}
	d.mu.Lock()
	reason := d.rec.Reason
	d.mu.Unlock()
	return errorf(Failed, "domain %s did not start: %s", name, reason)
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
	d, done, err := m.begin(name, op, nil)
	if err != nil {
		return err
	}
	defer done()
	if _, err := m.ctlCall(d, control.Request{Op: ctlOp}, 10*time.Second); err != nil {
		var ve *control.ErrVMM
		if errors.As(err, &ve) && strings.HasPrefix(ve.Msg, control.ErrFenced.Error()) {
			// Not a failure: the guest's lease is not its agent's to
			// lift.
			return errorf(BadState, "%s %s: %s", op, name, ve.Msg)
		}
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

// stop ends the VMM: cleanly (timeout > 0: the guest is asked to power
// off, an ACPI button press for a qemu guest), or at once (timeout 0).
// A guest that has not ended after timeout is destroyed through its VMM
// (which quits QEMU and writes the exit record), and a VMM that does not
// end within destroyWait of that is killed, the last resort.
func (m *Manager) stop(d *domain, op, reason string, timeout time.Duration) error {
	name := d.rec.Name
	d.mu.Lock()
	if err := check(name, op, d.rec.State); err != nil {
		d.mu.Unlock()
		return err
	}
	exited, pid, v := d.exited, d.rec.PID, d.vmm
	if v == nil {
		// A live domain holds its VMM until the VMM ends, unless Close
		// let go of it: the VMM runs on, and nothing here can end it.
		d.mu.Unlock()
		why := "the agent holds no VMM for it"
		if m.isClosed() {
			why = "the agent is closing and no longer holds its VMM"
		}
		return errorf(Failed, "%s %s: %s (pid %d); nothing was done", op, name, why, pid)
	}
	d.expect = reason
	m.setState(d, Stopping, op)
	d.mu.Unlock()

	if timeout > 0 && m.endCleanly(d, v, exited, reason, timeout) {
		return nil
	}
	if err := askStop(v, true); err != nil {
		m.log.Warn("VMM did not take the destroy request; killing it", zap.String("domain", name), zap.Error(err))
	} else if ended(exited, m.destroyWait()) {
		return nil
	} else {
		m.log.Warn("VMM did not end after destroy; killing it", zap.String("domain", name), zap.Duration("waited", m.destroyWait()))
	}
	_ = v.Kill()
	if ended(exited, 10*time.Second) {
		return nil
	}
	return errorf(Failed, "%s %s: VMM pid %d does not end", op, name, pid)
}

// endCleanly asks d's guest to power off and waits up to timeout for its
// VMM to end; false when it did not (the reason then says it was forced).
func (m *Manager) endCleanly(d *domain, v VMM, exited chan struct{}, reason string, timeout time.Duration) bool {
	name := d.rec.Name
	if err := askStop(v, false); err != nil {
		m.log.Warn("VMM did not take the shutdown request; destroying it", zap.String("domain", name), zap.Error(err))
		return false
	}
	if ended(exited, timeout) {
		return true
	}
	m.log.Warn("domain did not stop in time; destroying it", zap.String("domain", name), zap.Duration("timeout", timeout))
	d.mu.Lock()
	if d.expect == reason {
		d.expect = reason + fmt.Sprintf(" (forced after %s)", timeout)
	}
	d.mu.Unlock()
	return false
}

// destroyWait is how long a VMM told to destroy its guest may take to end
// before it is killed.
func (m *Manager) destroyWait() time.Duration {
	if m.opts.DestroyTimeout > 0 {
		return m.opts.DestroyTimeout
	}
	return 10 * time.Second
}

// ended waits up to d for ch to close, and says whether it did.
func ended(ch <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// askStop asks v to end, cleanly or at once with force.
func askStop(v VMM, force bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return v.Stop(ctx, force)
}
