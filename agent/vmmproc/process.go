package vmmproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// VMM is one ovs-vmm process, started or recovered by a Driver.
type VMM struct {
	h    Handle
	cmd  *exec.Cmd // nil when recovered: not our child
	exit chan control.Exit
	// ended is closed once the process has ended.
	ended chan struct{}

	mu       sync.Mutex
	pidfd    int // -1 once closed
	wake     int // eventfd that Release signals; -1 once closed
	ctl      *control.Client
	released bool
	gone     bool
}

func newVMM(h Handle, cmd *exec.Cmd, pidfd int, ctl *control.Client) (*VMM, error) {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	v := &VMM{h: h, cmd: cmd, exit: make(chan control.Exit, 1), ended: make(chan struct{}), pidfd: pidfd, wake: wake, ctl: ctl}
	go v.wait()
	return v, nil
}

// Handle is what finds this VMM again after an agent restart.
func (v *VMM) Handle() Handle {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.h
}

// Wait delivers the VMM's exit record once it has ended, then is closed.
// It is closed without a record when the VMM is released first.
func (v *VMM) Wait() <-chan control.Exit { return v.exit }

// wait blocks until the process ends or the VMM is released, and
// delivers the exit unless the VMM was released first.
func (v *VMM) wait() {
	if !v.block() {
		v.letGo()
		return
	}
	var waitErr error
	if v.cmd != nil {
		waitErr = v.cmd.Wait() // it has ended: this only reaps it
	}
	v.mu.Lock()
	ex := exitOf(v.h, waitErr)
	released := v.released // Release raced with the end: not reported
	v.gone = true
	v.closeFDs()
	if v.ctl != nil {
		v.ctl.Close()
		v.ctl = nil
	}
	v.mu.Unlock()
	close(v.ended)
	if !released {
		v.exit <- ex
	}
	close(v.exit)
}

// letGo ends the watch of a released VMM (or one whose wait failed): Wait
// closes without a record. A child of ours is still reaped once it ends,
// so that it never lingers as a zombie while the agent lives on; its exit
// is no longer anyone's to report.
func (v *VMM) letGo() {
	v.mu.Lock()
	v.closeFDs()
	v.mu.Unlock()
	close(v.exit)
	if v.cmd != nil {
		_ = v.cmd.Wait()
	}
}

// block waits on the pidfd and the wake eventfd; it says whether the
// process ended (false: released, or the wait failed).
func (v *VMM) block() bool {
	v.mu.Lock()
	fds := []unix.PollFd{{Fd: int32(v.pidfd), Events: unix.POLLIN}, {Fd: int32(v.wake), Events: unix.POLLIN}}
	v.mu.Unlock()
	for {
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || fds[1].Revents != 0 {
			return false
		}
		if fds[0].Revents != 0 {
			return true
		}
	}
}

// closeFDs closes the pidfd and the eventfd; the caller holds v.mu.
func (v *VMM) closeFDs() {
	if v.pidfd >= 0 {
		unix.Close(v.pidfd)
		v.pidfd = -1
	}
	if v.wake >= 0 {
		unix.Close(v.wake)
		v.wake = -1
	}
}

// awaitAnswer waits until the VMM answers on its socket (it keeps that
// connection), or ends, or ctx ends (it is then killed).
func (v *VMM) awaitAnswer(ctx context.Context) error {
	for {
		select {
		case <-v.ended:
			return ErrEnded
		case <-ctx.Done():
			_ = v.Kill()
			return ctx.Err()
		default:
		}
		if info, c := v.dial(ctx); c != nil {
			v.mu.Lock()
			defer v.mu.Unlock()
			if v.gone {
				c.Close()
				return ErrEnded
			}
			v.ctl, v.h.PID, v.h.Started = c, info.PID, info.Started
			return nil
		}
		select {
		case <-v.ended:
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dial tries once to connect to the VMM and read its Info.
func (v *VMM) dial(ctx context.Context) (*control.Info, *control.Client) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := control.Dial(ctx, v.h.Socket)
	if err != nil {
		return nil, nil
	}
	info, err := c.Info(ctx)
	if err != nil {
		c.Close()
		return nil, nil
	}
	return info, c
}

// client is the control connection, or an error once there is none.
func (v *VMM) client() (*control.Client, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ctl == nil {
		return nil, fmt.Errorf("VMM pid %d: no connection to it", v.h.PID)
	}
	return v.ctl, nil
}

// Call makes one control call, passing files along.
func (v *VMM) Call(ctx context.Context, req control.Request, files ...*os.File) (*control.Response, error) {
	c, err := v.client()
	if err != nil {
		return nil, err
	}
	return c.CallFiles(ctx, req, files...)
}

// Inspect asks the VMM for its Info: identity, state and counters.
func (v *VMM) Inspect(ctx context.Context) (*control.Info, error) {
	c, err := v.client()
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// SetLease gives the VMM its domain's lease (control.OpLease): the guest
// runs until runUntil (zero: no fencing) under generation, which the
// VMM refuses when it is lower than its own. The answer is the VMM's
// Info after it.
func (v *VMM) SetLease(ctx context.Context, runUntil control.Monotonic, generation int64) (*control.Info, error) {
	c, err := v.client()
	if err != nil {
		return nil, err
	}
	return c.Lease(ctx, runUntil, generation)
}

// Stop asks the VMM to end: cleanly (shut the machine down), or at once
// with force. It ends on its own afterwards; its exit comes on Wait.
func (v *VMM) Stop(ctx context.Context, force bool) error {
	op := control.OpShutdown
	if force {
		op = control.OpDestroy
	}
	_, err := v.Call(ctx, control.Request{Op: op})
	return err
}

// Kill ends the process at once (SIGKILL through its pidfd, so that a
// reused pid is never signalled).
func (v *VMM) Kill() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.gone || v.pidfd < 0 {
		return nil
	}
	return unix.PidfdSendSignal(v.pidfd, unix.SIGKILL, nil, 0)
}

// Release lets go of the VMM without stopping it: the control connection
// closes and Wait closes without a record.
func (v *VMM) Release() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.released || v.gone {
		return
	}
	v.released = true
	if v.ctl != nil {
		v.ctl.Close()
		v.ctl = nil
	}
	if v.wake >= 0 {
		one := [8]byte{1} // any count other than zero wakes the poll
		_, _ = unix.Write(v.wake, one[:])
	}
}
