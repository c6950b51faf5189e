package vmmproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// Mode says what a new VMM starts with.
type Mode int

// Start modes.
const (
	Boot     Mode = iota // a new machine from vm.cfg
	Restore              // the machine of a save image
	Incoming             // no machine yet: it comes with a migration
)

// Spec is what a VMM is started with.
type Spec struct {
	UUID string // the domain's; the VMM answers for it
	// Dir is the domain's folder: its vm.cfg is read from there, and the
	// VMM writes console.log, its exit record and vmm.log there.
	Dir    string
	Socket string // the control socket to create
	Engine string // vmm.EngineKVM, vmm.EngineSim or vmm.EngineQEMU
	// EngineBinary is the engine's program and Accel its accelerator
	// (the qemu engine: the qemu-system-x86_64 and kvm or tcg, as the
	// agent resolved them); "" leaves each to the engine.
	EngineBinary string
	Accel        string
	// MemoryBacking is the guest memory's pages as the agent chose them
	// (4k, hugetlb or thp; auto leaves the choice to the VMM, "" too).
	MemoryBacking string
	Mode          Mode
	// Image is the save image to restore (Restore). ImageFile, when set,
	// is that image already opened and checked by the caller: the VMM
	// inherits it and reads /dev/fd/3, so that a path swapped after the
	// check (a symlink, a FIFO) is never what it reads.
	Image     string
	ImageFile *os.File
	// RunUntil and Generation are the domain's lease from the start
	// (control.OpLease): zero RunUntil, no fencing.
	RunUntil   control.Monotonic
	Generation int64
	// Host is the name the host is known by in the domain's pool (the
	// agent's [pool] member name; "" outside a pool): the VMM tells a pool
	// domain's guest who runs it by this name, not the system's.
	Host string
}

// Handle is what finds a VMM again after an agent restart. The registry
// persists PID and Started; UUID, Dir and Socket follow from the domain.
// Recover finds the VMM by Socket and UUID alone (a VMM answering there for
// the domain is the domain's, whatever pid it has); Exited takes the exit
// record only when it names PID.
type Handle struct {
	UUID    string
	Dir     string
	Socket  string
	PID     int
	Started time.Time
}

// ErrEnded says a VMM ended before it answered on its control socket; its
// exit comes on Wait.
var ErrEnded = errors.New("the VMM ended before it answered")

// maxSocketPath is the longest unix socket path (sun_path less its NUL).
const maxSocketPath = 107

// Driver starts and finds again ovs-vmm processes.
type Driver struct {
	// Binary is the ovs-vmm program ("": ovs-vmm next to this executable).
	Binary string
}

func (dr *Driver) binary() string {
	if dr.Binary != "" {
		return dr.Binary
	}
	if exe, err := os.Executable(); err == nil {
		return filepath.Join(filepath.Dir(exe), "ovs-vmm")
	}
	return "ovs-vmm"
}

// Start runs a VMM for s and returns once it answers on its control
// socket. With a nil VMM nothing runs. With a VMM and an error, the VMM
// ran but did not answer: ErrEnded when it ended first, ctx's error when
// ctx ended first (the VMM is then killed); its exit comes on Wait.
func (dr *Driver) Start(ctx context.Context, s Spec) (*VMM, error) {
	if len(s.Socket) > maxSocketPath {
		return nil, fmt.Errorf("VMM socket path %s is longer than %d bytes: use a shorter state_dir", s.Socket, maxSocketPath)
	}
	// What the last run left goes now: a VMM that fails before it opens
	// its console must not be reported with the previous run's output.
	_ = os.Remove(filepath.Join(s.Dir, control.ExitFile))
	_ = os.Remove(filepath.Join(s.Dir, control.ConsoleFile))
	_ = os.Remove(s.Socket)
	cmd, err := dr.spawn(s)
	if err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("pidfd_open(%d): %w", pid, err)
	}
	v, err := newVMM(Handle{UUID: s.UUID, Dir: s.Dir, Socket: s.Socket, PID: pid}, cmd, pidfd, nil)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		unix.Close(pidfd)
		return nil, err
	}
	return v, v.awaitAnswer(ctx)
}

// spawn starts the ovs-vmm process of s, in its own session.
func (dr *Driver) spawn(s Spec) (*exec.Cmd, error) {
	logf, err := os.OpenFile(filepath.Join(s.Dir, "vmm.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args, extra := s.args()
	cmd := exec.Command(dr.binary(), args...)
	cmd.ExtraFiles = extra
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: the VMM must outlive the agent and not get the
	// terminal's signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", dr.binary(), err)
	}
	return cmd, nil
}

// args are the ovs-vmm arguments of s, and the files it inherits from fd 3
// on.
func (s Spec) args() ([]string, []*os.File) {
	args := []string{"--config", filepath.Join(s.Dir, "vm.cfg"), "--engine", s.Engine, "--dir", s.Dir, "--socket", s.Socket}
	if s.EngineBinary != "" {
		args = append(args, "--engine-binary", s.EngineBinary)
	}
	if s.Accel != "" {
		args = append(args, "--accel", s.Accel)
	}
	if s.MemoryBacking != "" {
		args = append(args, "--memory-backing", s.MemoryBacking)
	}
	if s.RunUntil != 0 {
		args = append(args, "--run-until", strconv.FormatInt(int64(s.RunUntil), 10))
	}
	if s.Generation != 0 {
		args = append(args, "--generation", strconv.FormatInt(s.Generation, 10))
	}
	if s.Host != "" {
		args = append(args, "--host", s.Host)
	}
	var extra []*os.File
	switch s.Mode {
	case Restore:
		image := s.Image
		if s.ImageFile != nil {
			image, extra = "/dev/fd/3", []*os.File{s.ImageFile} // ExtraFiles[0] is fd 3
		}
		args = append(args, "--restore", image)
	case Incoming:
		args = append(args, "--incoming")
	}
	return args, extra
}

// Recover re-attaches to the VMM of h, which a previous agent started: its
// socket must answer for h's UUID. The handle of the VMM returned has the
// pid and start time the VMM reports.
func (dr *Driver) Recover(ctx context.Context, h Handle) (*VMM, error) {
	c, err := control.Dial(ctx, h.Socket)
	if err != nil {
		return nil, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		c.Close()
		return nil, err
	}
	if !strings.EqualFold(info.UUID, h.UUID) {
		c.Close()
		return nil, fmt.Errorf("the socket answers for UUID %s", info.UUID)
	}
	pidfd, err := unix.PidfdOpen(info.PID, 0)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("pidfd_open(%d): %v", info.PID, err)
	}
	h.PID, h.Started = info.PID, info.Started
	v, err := newVMM(h, nil, pidfd, c)
	if err != nil {
		c.Close()
		unix.Close(pidfd)
		return nil, err
	}
	return v, nil
}

// Exited is the exit record the VMM of h left: the one in its exit file
// when that names h's pid (or h has none), else one with reason
// control.ExitVanished and no detail.
func (dr *Driver) Exited(h Handle) control.Exit {
	return exitOf(h, nil)
}

// exitOf is the exit of h's VMM; waitErr is its wait status when it was
// our child (nil otherwise), the detail of a vanished exit.
func exitOf(h Handle, waitErr error) control.Exit {
	if e, err := control.ReadExit(filepath.Join(h.Dir, control.ExitFile)); err == nil && (h.PID == 0 || e.PID == h.PID) {
		return *e
	}
	ex := control.Exit{Time: time.Now().UTC(), PID: h.PID, Reason: control.ExitVanished, Code: -1}
	if waitErr != nil {
		ex.Detail = waitErr.Error()
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			ex.Code = ee.ExitCode()
		}
	}
	return ex
}
