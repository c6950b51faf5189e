package qemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/vmm/qmp"
)

// The ends of a guest, as Machine.Err wraps them.
var (
	// ErrRebooted: the guest rebooted. QEMU runs with -no-reboot, so a
	// guest reset ends it (SHUTDOWN reason guest-reset); the caller
	// decides whether to start it again (on_reboot).
	ErrRebooted = errors.New("the guest rebooted")
	// ErrPanicked: the guest reported a panic on its pvpanic device
	// (GUEST_PANICKED; QEMU runs -action panic=shutdown).
	ErrPanicked = errors.New("the guest panicked")
	// ErrCrashed: QEMU died or its QMP broke or went silent; the error
	// says the exit status and the end of QEMU's stderr.
	ErrCrashed = errors.New("QEMU crashed")
	// ErrHostShutdown: QEMU ended at a request from the host side that
	// was not this Machine's Kill: a signal from someone else
	// (host-signal), a system_reset under -no-reboot
	// (host-qmp-system-reset: a host reset, not a guest reboot), the UI.
	// The guest neither powered off nor rebooted nor crashed.
	ErrHostShutdown = errors.New("QEMU was ended from the host side")
)

// Timeouts of the Machine. Variables so that the tests can shorten them.
var (
	// machineCommandTimeout bounds every QMP command the Machine sends; a
	// QEMU that does not answer within it is killed (ErrCrashed, "QMP did
	// not answer").
	machineCommandTimeout = 10 * time.Second
	// handshakeTimeout bounds QMP's greeting when ctx has no sooner end.
	handshakeTimeout = 30 * time.Second
	// quitGrace is how long Kill waits after quit before SIGKILL.
	quitGrace = 3 * time.Second
	// killWait bounds KillNow's wait for QEMU to be reaped after SIGKILL
	// (its readers' drain included).
	killWait = 5 * time.Second
	// drainTimeout bounds the wait for the console and stderr readers
	// once QEMU has been reaped (a process QEMU left behind could hold
	// the pipes open).
	drainTimeout = 2 * time.Second
	// consoleWriteTimeout bounds ConsoleInput when QEMU does not read.
	consoleWriteTimeout = 10 * time.Second
)

const (
	// maxConsoleLine cuts a console or stderr line that has no newline
	// within it.
	maxConsoleLine = 4 << 10
	// stderrKeep is how much of the end of QEMU's stderr is kept for
	// errors.
	stderrKeep = 4 << 10
	// MinBalloon is the smallest balloon target SetBalloon accepts.
	MinBalloon = 64 << 20
	// cleanPath is QEMU's whole environment besides LC_ALL=C.
	cleanPath = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
)

// Stats are a running Machine's figures.
type Stats struct {
	CPUTime                       time.Duration // utime+stime of the QEMU process
	RSSBytes                      uint64        // its resident set
	DiskReadBytes, DiskWriteBytes uint64        // summed over its disks (query-blockstats)
	DiskReadOps, DiskWriteOps     uint64        // the requests those bytes took
}

// Facts are what QEMU runs, as it says it.
type Facts struct {
	Accel    string // kvm or tcg
	Version  string // "QEMU 7.2.22", from the QMP greeting
	Machine  string // the machine type, an alias resolved (pc → pc-i440fx-7.2)
	CPUModel string // the -cpu given
	VNC      string // "host:port" QEMU listens on, "" without VNC
}

// Machine is one running QEMU. Its methods are safe for concurrent use.
type Machine struct {
	spec    Spec
	cmd     *exec.Cmd
	qc      *qmp.Client
	memPath string   // the RAM file's name while QEMU starts
	mem     *os.File // the RAM file, unlinked once QEMU has it mapped
	stdin   *os.File
	facts   Facts

	stderrTail *tailBuffer
	readers    sync.WaitGroup // console and stderr readers
	events     chan struct{}  // closed when the event loop has returned

	mu       sync.Mutex
	killing  bool   // Kill was called
	reaped   bool   // QEMU has been reaped
	silent   string // a QMP command that did not answer (the Machine killed QEMU)
	shutdown *shutdownEvent
	panicked bool
	running  bool
	inputMu  sync.Mutex // one ConsoleInput at a time

	done chan struct{}
	err  error
}

// shutdownEvent is SHUTDOWN's data.
type shutdownEvent struct {
	Guest  bool   `json:"guest"`
	Reason string `json:"reason"`
}

// Start launches QEMU for s, connects to its QMP, sets the VNC password
// and, unless s.Incoming, lets the guest run (QEMU starts with -S, so no
// guest instruction runs before the password is set). It fails with
// nothing left behind: no QEMU running, no RAM file. ctx bounds the start
// only, not the Machine's life.
func Start(ctx context.Context, s Spec) (*Machine, error) {
	s, err := s.resolve()
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(s.Binary); err != nil {
		return nil, fmt.Errorf("QEMU binary %s: %w (install Debian's qemu-system-x86 or set the engine binary)", s.Binary, err)
	} else if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("QEMU binary %s is not an executable file", s.Binary)
	}
	drivers := make([]string, len(s.Disks))
	for i, d := range s.Disks {
		if drivers[i], err = diskDriver(d.Path); err != nil {
			return nil, fmt.Errorf("qemu: domain %q: %w (check the disk's path in the domain's config)", s.Name, err)
		}
	}
	if s.usesMemfd() {
		mem, err := createMemfd(s)
		if err != nil {
			return nil, err
		}
		m, err := launchOn(ctx, s, "", mem, drivers)
		if err != nil {
			mem.Close()
			if m != nil {
				_ = m.Kill()
			}
			return nil, err
		}
		return m, nil
	}
	if err := checkRoom(s.MemoryDir, s.MemoryBytes); err != nil {
		return nil, err
	}
	memPath, err := createMemoryFile(s.MemoryDir, s.UUID)
	if err != nil {
		return nil, err
	}
	m, err := launch(ctx, s, memPath, drivers)
	if err == nil {
		err = m.keepMemory()
	}
	if err != nil {
		if m != nil {
			_ = m.Kill()
		}
		os.Remove(memPath)
		return nil, err
	}
	return m, nil
}

// usesMemfd says whether the RAM is a memfd (hugetlb, thp) rather than a
// file in MemoryDir.
func (s Spec) usesMemfd() bool {
	return s.MemoryBacking == MemoryBackingHugeTLB || s.MemoryBacking == MemoryBackingTHP
}

// createMemfd creates the RAM's memfd, sized: a hugetlbfs one for
// hugetlb (whose pages QEMU's shared mapping reserves from the pool: a
// start the pool cannot hold fails there), a plain one for thp.
func createMemfd(s Spec) (*os.File, error) {
	flags := unix.MFD_CLOEXEC
	if s.MemoryBacking == MemoryBackingHugeTLB {
		flags |= unix.MFD_HUGETLB | unix.MFD_HUGE_2MB
	}
	fd, err := unix.MemfdCreate("ovs-qemu-"+strings.ToLower(s.UUID), flags)
	if err != nil {
		return nil, fmt.Errorf("qemu: domain %q: memfd_create for %s memory: %w", s.Name, s.MemoryBacking, err)
	}
	f := os.NewFile(uintptr(fd), "ovs-qemu-ram")
	if err := f.Truncate(int64(s.MemoryBytes)); err != nil {
		f.Close()
		return nil, fmt.Errorf("qemu: domain %q: size the %s memory to %d MiB: %w", s.Name, s.MemoryBacking, s.MemoryBytes/mib, err)
	}
	return f, nil
}

// keepMemory opens the RAM file QEMU has mapped (QMP answers only once
// QEMU made its memory backends) and unlinks it: the memory goes back to
// the host when both QEMU and this process are gone, however they end (a
// VMM killed with SIGKILL leaves no guest-sized file in /dev/shm), and
// MemoryFile names it through this process's descriptor.
func (m *Machine) keepMemory() error {
	f, err := os.OpenFile(m.memPath, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("qemu: domain %q: open the guest's RAM file: %w", m.spec.Name, err)
	}
	if err := os.Remove(m.memPath); err != nil {
		f.Close()
		return fmt.Errorf("qemu: domain %q: unlink the guest's RAM file: %w", m.spec.Name, err)
	}
	m.mu.Lock()
	m.mem = f
	m.mu.Unlock()
	return nil
}

// checkRoom refuses a guest whose RAM the memory directory's file system
// cannot hold now: QEMU would die of SIGBUS when the guest touches a page
// that finds no room. (The file is sparse: a guest that has not yet
// touched its RAM takes less, and other guests may take room later.)
func checkRoom(dir string, bytes uint64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("qemu: memory directory %s for the guest's RAM file: %w", dir, err)
	}
	if free := st.Bavail * uint64(st.Bsize); free < bytes {
		return fmt.Errorf("qemu: memory directory %s has %d MiB free, the guest's RAM needs %d MiB (free room there or give the domain less memory)",
			dir, free/mib, bytes/mib)
	}
	return nil
}

// createMemoryFile creates the empty RAM file (QEMU sizes it) in dir.
func createMemoryFile(dir, uuid string) (string, error) {
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("qemu: random name of the RAM file: %w", err)
	}
	path := filepath.Join(dir, "ovs-qemu-"+strings.ToLower(uuid)+"-"+hex.EncodeToString(r[:])+".ram")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("qemu: create the guest's RAM file: %w (is the memory directory %s there and writable?)", err, dir)
	}
	f.Close()
	return path, nil
}

// launch runs QEMU on memPath and brings it to the state Start promises;
// on an error QEMU is gone (the caller removes memPath).
func launch(ctx context.Context, s Spec, memPath string, drivers []string) (*Machine, error) {
	return launchOn(ctx, s, memPath, nil, drivers)
}

// launchOn is launch with the RAM in memPath, or, with mem set, in that
// memfd, which QEMU inherits and the Machine keeps (its MemoryFile).
func launchOn(ctx context.Context, s Spec, memPath string, mem *os.File, drivers []string) (*Machine, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("qemu: QMP socketpair: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "qmp")
	theirs := os.NewFile(uintptr(fds[1]), "qmp-qemu")
	defer theirs.Close()
	fc, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return nil, fmt.Errorf("qemu: QMP socket: %w", err)
	}
	conn := fc.(*net.UnixConn)
	m, err := spawn(s, memPath, mem, drivers, theirs)
	if err != nil {
		conn.Close()
		return nil, err
	}
	theirs.Close() // QEMU holds it now: its end shows QEMU's
	if err := m.connect(ctx, conn); err != nil {
		m.abort()
		return nil, err
	}
	return m, nil
}

// spawn starts the QEMU process with its pipes and readers, and the
// goroutine that reaps it.
func spawn(s Spec, memPath string, mem *os.File, drivers []string, qmpEnd *os.File) (*Machine, error) {
	qemuMem := memPath
	if mem != nil {
		// QEMU opens its inherited descriptor again by its /proc name:
		// a memory-backend-file over the memfd (its hugetlbfs page size
		// found by fstatfs, as on a hugetlbfs mount).
		qemuMem = fmt.Sprintf("/proc/self/fd/%d", firstTapFD+len(s.NICs))
	}
	argv := s.argv(qemuMem, drivers)
	var closeAfter []*os.File
	closeAll := func() {
		for _, f := range closeAfter {
			f.Close()
		}
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("qemu: console pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("qemu: console pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("qemu: stderr pipe: %w", err)
	}
	closeAfter = append(closeAfter, inR, outW, errW)
	cmd := &exec.Cmd{
		Path:       s.Binary,
		Args:       argv,
		Env:        []string{cleanPath, "LC_ALL=C"},
		Dir:        "/",
		Stdin:      inR,
		Stdout:     outW,
		Stderr:     errW,
		ExtraFiles: []*os.File{qmpEnd},
		SysProcAttr: &syscall.SysProcAttr{
			// QEMU dies with its ovs-vmm. The kernel sends it when the
			// thread that forked ends: Go keeps its threads, except one
			// that a goroutine locked and left locked when it returned,
			// so Start must not run on such a goroutine.
			Pdeathsig: syscall.SIGKILL,
			Setpgid:   true,
		},
	}
	for _, n := range s.NICs {
		cmd.ExtraFiles = append(cmd.ExtraFiles, n.Tap)
	}
	if mem != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, mem)
	}
	m := &Machine{
		spec: s, cmd: cmd, memPath: memPath, mem: mem, stdin: inW,
		stderrTail: &tailBuffer{max: stderrKeep},
		events:     make(chan struct{}),
		done:       make(chan struct{}),
		facts:      Facts{Accel: s.Accel, Machine: s.Machine, CPUModel: s.CPUModel},
	}
	if err := cmd.Start(); err != nil {
		closeAll()
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("qemu: start %s: %w", s.Binary, err)
	}
	closeAll()
	console := s.Console
	if console == nil {
		console = io.Discard
	}
	m.readers.Add(2)
	go func() {
		defer m.readers.Done()
		readLines(outR, func(line []byte) { console.Write(line) })
	}()
	go func() {
		defer m.readers.Done()
		readLines(errR, func(line []byte) {
			m.stderrTail.Write(line)
			if s.Stderr != nil {
				s.Stderr.Write(line)
			}
		})
	}()
	go m.wait(outR, errR)
	return m, nil
}

// connect runs the QMP handshake, starts the event loop, sets the VNC
// password, learns the facts and lets the guest run.
func (m *Machine) connect(ctx context.Context, conn *net.UnixConn) error {
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	// QEMU exiting closes its end of the socket: the handshake then
	// fails at once, and the error carries QEMU's stderr.
	c, err := qmp.Connect(hctx, conn, qmp.Options{})
	if err != nil {
		conn.Close()
		return m.startError("QMP handshake", err)
	}
	m.mu.Lock()
	if m.reaped {
		m.mu.Unlock()
		c.Close()
		return m.startError("QMP handshake", errors.New("QEMU exited right after it"))
	}
	m.qc = c
	go m.watch()
	m.mu.Unlock()
	if v := m.spec.VNC; v != nil && v.Password != "" {
		// The password goes only to QMP, never to the command line nor
		// into an error.
		err := m.commandCtx(ctx, "set_password", func(ctx context.Context) error {
			return m.qc.Execute(ctx, "set_password", map[string]string{"protocol": "vnc", "password": v.Password}, nil)
		})
		if err != nil {
			return m.startError("set the VNC password", err)
		}
	}
	g := m.qc.Greeting()
	m.facts.Version = "QEMU " + g.Version.String()
	machine, err := m.resolveMachine(ctx)
	if err != nil {
		return m.startError("query-machines", err)
	}
	m.facts.Machine = machine
	if m.spec.VNC != nil {
		vnc, err := m.queryVNC(ctx)
		if err != nil {
			return m.startError("query-vnc", err)
		}
		m.facts.VNC = vnc
	}
	if !m.spec.Incoming {
		if err := m.commandCtx(ctx, "cont", m.qc.Cont); err != nil {
			return m.startError("cont", err)
		}
		m.setRunning(true)
	}
	return nil
}

// resolveMachine is the machine type QEMU runs: the name given, or the
// machine whose alias it is.
func (m *Machine) resolveMachine(ctx context.Context) (string, error) {
	var ms []struct {
		Name  string `json:"name"`
		Alias string `json:"alias"`
	}
	if err := m.commandCtx(ctx, "query-machines", func(ctx context.Context) error { return m.qc.Execute(ctx, "query-machines", nil, &ms) }); err != nil {
		return "", err
	}
	for _, x := range ms {
		if x.Name == m.spec.Machine {
			return x.Name, nil
		}
	}
	for _, x := range ms {
		if x.Alias == m.spec.Machine {
			return x.Name, nil
		}
	}
	return m.spec.Machine, nil
}

// queryVNC is where QEMU's VNC server listens, as host:port.
func (m *Machine) queryVNC(ctx context.Context) (string, error) {
	var v struct {
		Enabled bool   `json:"enabled"`
		Host    string `json:"host"`
		Service string `json:"service"`
	}
	if err := m.commandCtx(ctx, "query-vnc", func(ctx context.Context) error { return m.qc.Execute(ctx, "query-vnc", nil, &v) }); err != nil {
		return "", err
	}
	if !v.Enabled {
		return "", errors.New("QEMU says its VNC server is not enabled")
	}
	return net.JoinHostPort(v.Host, v.Service), nil
}

// startError ends a QEMU that failed to start (unless it is gone
// already) and says why, with the end of its stderr.
func (m *Machine) startError(step string, err error) error {
	m.abort()
	status := m.cmd.ProcessState.String()
	return fmt.Errorf("qemu: start of %q failed at the %s (QEMU %s): %w; QEMU's stderr: %s",
		m.spec.Name, step, status, err, m.stderrTail.excerpt())
}

// abort kills QEMU and waits until it is reaped and the Machine done.
func (m *Machine) abort() {
	m.mu.Lock()
	m.killing = true
	m.mu.Unlock()
	m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
}

// wait reaps QEMU, then settles the Machine's error, removes the RAM file
// and closes done.
func (m *Machine) wait(outR, errR *os.File) {
	waitErr := m.cmd.Wait()
	drained := make(chan struct{})
	go func() { m.readers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		outR.Close()
		errR.Close()
		<-drained
	}
	outR.Close()
	errR.Close()
	m.stdin.Close()
	m.mu.Lock()
	m.reaped = true
	qc := m.qc
	m.mu.Unlock()
	if qc != nil {
		// QEMU's end of the socket closed with it: the client reads what
		// QEMU sent last (its SHUTDOWN event) before it ends by itself.
		select {
		case <-m.events:
		case <-time.After(drainTimeout):
		}
		qc.Close()
		<-m.events
	}
	m.err = m.endError(waitErr)
	m.mu.Lock()
	if m.mem != nil {
		m.mem.Close()
		m.mem = nil
	}
	m.mu.Unlock()
	if m.memPath != "" {
		os.Remove(m.memPath) // when QEMU ended before keepMemory
	}
	close(m.done)
}

// endError is Err: why QEMU ended.
func (m *Machine) endError(waitErr error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	status := m.cmd.ProcessState.String()
	if m.silent != "" {
		return fmt.Errorf("qemu: domain %q: %w: QMP did not answer %s within %v, so QEMU was killed (%s); QEMU's stderr: %s",
			m.spec.Name, ErrCrashed, m.silent, machineCommandTimeout, status, m.stderrTail.excerpt())
	}
	if m.killing {
		return nil
	}
	if sd := m.shutdown; sd != nil {
		switch {
		case m.panicked || sd.Reason == "guest-panic":
			return fmt.Errorf("qemu: domain %q: %w (pvpanic; QEMU %s)", m.spec.Name, ErrPanicked, status)
		case sd.Reason == "guest-shutdown":
			return nil
		case sd.Reason == "guest-reset" && sd.Guest:
			return fmt.Errorf("qemu: domain %q: %w (QEMU runs -no-reboot and ended; %s)", m.spec.Name, ErrRebooted, status)
		case sd.Reason == "host-error":
			return fmt.Errorf("qemu: domain %q: %w: QEMU shut down on a host error (%s); QEMU's stderr: %s", m.spec.Name, ErrCrashed, status, m.stderrTail.excerpt())
		case !sd.Guest:
			return fmt.Errorf("qemu: domain %q: %w: reason %s: %s (%s)", m.spec.Name, ErrHostShutdown, sd.Reason, hostReason(sd.Reason), status)
		}
		return fmt.Errorf("qemu: domain %q: %w: QEMU shut down for the guest with reason %q (%s)", m.spec.Name, ErrCrashed, sd.Reason, status)
	}
	if m.panicked {
		return fmt.Errorf("qemu: domain %q: %w (pvpanic; QEMU %s)", m.spec.Name, ErrPanicked, status)
	}
	why := "QEMU exited without a SHUTDOWN event"
	if m.qc != nil {
		if qerr := m.qc.Err(); qerr != nil && !errors.Is(qerr, qmp.ErrDisconnected) && !errors.Is(qerr, qmp.ErrClosed) {
			why += " (QMP: " + qerr.Error() + ")"
		}
	}
	if waitErr != nil {
		why += ": " + waitErr.Error()
	}
	return fmt.Errorf("qemu: domain %q: %w: %s; QEMU's stderr: %s", m.spec.Name, ErrCrashed, why, m.stderrTail.excerpt())
}

// hostReason says in words what a SHUTDOWN reason of the host side means.
func hostReason(reason string) string {
	switch reason {
	case "host-signal":
		return "another process sent QEMU SIGTERM, SIGINT or SIGHUP"
	case "host-qmp-system-reset":
		return "a system_reset on QMP, which -no-reboot turns into an end (a host reset, not a guest reboot)"
	case "host-qmp-quit":
		return "a quit on QMP that was not the Machine's Kill"
	case "host-ui":
		return "QEMU's user interface was closed"
	}
	return "QEMU shut down for a reason of the host's"
}

// watch is the only reader of QMP's events.
func (m *Machine) watch() {
	defer close(m.events)
	for ev := range m.qc.Events() {
		m.mu.Lock()
		switch ev.Name {
		case "SHUTDOWN":
			var sd shutdownEvent
			if json.Unmarshal(ev.Data, &sd) == nil {
				m.shutdown = &sd
			}
		case "RESET":
			// Under -no-reboot a guest reset ends QEMU with SHUTDOWN
			// guest-reset; a RESET means QEMU went on (a subsystem
			// reset): nothing to record.
		case "GUEST_PANICKED":
			m.panicked = true
		case "STOP":
			m.running = false
		case "RESUME":
			m.running = true
		}
		m.mu.Unlock()
	}
}

// command runs one QMP command under machineCommandTimeout; a QEMU that
// does not answer within it is killed.
func (m *Machine) command(name string, run func(ctx context.Context) error) error {
	return m.commandCtx(context.Background(), name, run)
}

// commandCtx is command, cut short by parent too (Start's ctx): a parent
// that ends first is not QEMU's silence.
func (m *Machine) commandCtx(parent context.Context, name string, run func(ctx context.Context) error) error {
	select {
	case <-m.done:
		return fmt.Errorf("qmp %s: QEMU has ended (%v)", name, m.err)
	default:
	}
	ctx, cancel := context.WithTimeout(parent, machineCommandTimeout)
	defer cancel()
	err := run(ctx)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil {
		select {
		case <-m.done:
		default:
			m.mu.Lock()
			if m.silent == "" {
				m.silent = name
			}
			m.mu.Unlock()
			m.cmd.Process.Signal(syscall.SIGKILL)
		}
		return fmt.Errorf("%w: QMP did not answer within %v: QEMU was killed", err, machineCommandTimeout)
	}
	return err
}

// QMP is the Machine's QMP client, for MigrateOut/MigrateIn/Save/Restore.
// Its Events belong to the Machine: do not read them.
func (m *Machine) QMP() *qmp.Client { return m.qc }

// PID is QEMU's process id.
func (m *Machine) PID() int { return m.cmd.Process.Pid }

// MemoryFile is a path of the guest's RAM file (shared with QEMU) while
// the Machine runs: /proc/self/fd/N of this process's descriptor, the file
// having no name of its own (keepMemory). "" once Done is closed.
func (m *Machine) MemoryFile() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mem == nil {
		return ""
	}
	return fmt.Sprintf("/proc/self/fd/%d", m.mem.Fd())
}

// Running says whether the vCPUs run: as the last stop or cont of this
// Machine left them, or as QEMU's STOP and RESUME events said since
// (a migration stops them, a failed one resumes them). False once QEMU
// has ended.
func (m *Machine) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running && !m.reaped
}

func (m *Machine) setRunning(r bool) {
	m.mu.Lock()
	m.running = r
	m.mu.Unlock()
}

// Pause stops the vCPUs (idempotent).
func (m *Machine) Pause() error {
	if err := m.command("stop", m.qc.Stop); err != nil {
		return fmt.Errorf("qemu: pause %q: %w", m.spec.Name, err)
	}
	m.setRunning(false)
	return nil
}

// Resume lets the vCPUs run (idempotent).
func (m *Machine) Resume() error {
	if err := m.command("cont", m.qc.Cont); err != nil {
		return fmt.Errorf("qemu: resume %q: %w", m.spec.Name, err)
	}
	m.setRunning(true)
	return nil
}

// Powerdown presses the guest's ACPI power button and returns at once;
// Done is closed when the guest has powered off (if it does).
func (m *Machine) Powerdown() error {
	if err := m.command("system_powerdown", m.qc.SystemPowerdown); err != nil {
		return fmt.Errorf("qemu: power button of %q: %w", m.spec.Name, err)
	}
	return nil
}

// Kill ends QEMU: quit, then SIGKILL if it is still there after a few
// seconds. It returns once QEMU is gone; a second call does nothing.
func (m *Machine) Kill() error {
	select {
	case <-m.done:
		return nil
	default:
	}
	m.mu.Lock()
	m.killing = true
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), quitGrace)
	quitErr := m.qc.Quit(ctx)
	cancel()
	if quitErr == nil {
		select {
		case <-m.done:
			return nil
		case <-time.After(quitGrace):
		}
	}
	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("qemu: kill %d: %w", m.PID(), err)
	}
	<-m.done
	return nil
}

// KillNow ends QEMU with SIGKILL at once, asking it nothing (a QEMU that
// does not answer QMP is ended as surely as one that does), and returns
// once it has been reaped, or with an error after killWait. Err is nil
// afterwards, as after Kill. A second call, or one after QEMU ended, does
// nothing.
func (m *Machine) KillNow() error {
	m.Abandon()
	select {
	case <-m.done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("qemu: QEMU (pid %d) was sent SIGKILL and is not gone after %v", m.PID(), killWait)
	}
}

// Abandon kills QEMU with SIGKILL and returns without waiting for it to
// end: for a guest that runs elsewhere now (migrated) or sits in its save
// image, where nothing is left to shut down cleanly and the teardown of a
// guest-sized address space (tens of milliseconds per GiB) need not delay
// the caller. Done closes once QEMU is gone, as after Kill.
func (m *Machine) Abandon() {
	select {
	case <-m.done:
		return
	default:
	}
	m.mu.Lock()
	m.killing = true
	m.mu.Unlock()
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
}

// Done is closed when QEMU has exited, for any reason, and the RAM file is
// removed.
func (m *Machine) Done() <-chan struct{} { return m.done }

// Err says why QEMU ended, once Done is closed: nil for a guest poweroff or
// Kill, else an error wrapping ErrRebooted, ErrPanicked, ErrCrashed or
// ErrHostShutdown. Before Done it is nil.
func (m *Machine) Err() error {
	select {
	case <-m.done:
		return m.err
	default:
		return nil
	}
}

// SetBalloon sets the balloon's target: the RAM the guest keeps.
func (m *Machine) SetBalloon(bytes uint64) error {
	if !m.spec.Balloon {
		return fmt.Errorf("qemu: %q has no balloon device (the domain was started without one)", m.spec.Name)
	}
	if bytes < MinBalloon || bytes > m.spec.MemoryBytes {
		return fmt.Errorf("qemu: balloon target of %d MiB for %q is out of range (%d MiB to the domain's %d MiB)",
			bytes/mib, m.spec.Name, MinBalloon/mib, m.spec.MemoryBytes/mib)
	}
	err := m.command("balloon", func(ctx context.Context) error {
		return m.qc.Execute(ctx, "balloon", map[string]uint64{"value": bytes}, nil)
	})
	if err != nil {
		return fmt.Errorf("qemu: balloon of %q: %w", m.spec.Name, err)
	}
	return nil
}

// Balloon is the RAM the guest has now, as the balloon says (query-balloon
// actual: all of it until a guest driver gives some back).
func (m *Machine) Balloon() (uint64, error) {
	if !m.spec.Balloon {
		return 0, fmt.Errorf("qemu: %q has no balloon device (the domain was started without one)", m.spec.Name)
	}
	var b struct {
		Actual int64 `json:"actual"`
	}
	if err := m.command("query-balloon", func(ctx context.Context) error { return m.qc.Execute(ctx, "query-balloon", nil, &b) }); err != nil {
		return 0, fmt.Errorf("qemu: query-balloon of %q: %w", m.spec.Name, err)
	}
	return uint64(max(b.Actual, 0)), nil
}

// ConsoleInput writes p to the guest's serial console.
func (m *Machine) ConsoleInput(p []byte) error {
	select {
	case <-m.done:
		return fmt.Errorf("qemu: console of %q: QEMU has ended", m.spec.Name)
	default:
	}
	m.inputMu.Lock()
	defer m.inputMu.Unlock()
	if err := m.stdin.SetWriteDeadline(time.Now().Add(consoleWriteTimeout)); err != nil {
		return fmt.Errorf("qemu: console of %q: %w", m.spec.Name, err)
	}
	if _, err := m.stdin.Write(p); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("qemu: console of %q: QEMU took no input for %v (the guest's serial port does not read)", m.spec.Name, consoleWriteTimeout)
		}
		return fmt.Errorf("qemu: console of %q: %w", m.spec.Name, err)
	}
	return nil
}

// Stats reads the QEMU process's CPU time and RSS from /proc and the
// disks' bytes from query-blockstats.
func (m *Machine) Stats() (Stats, error) {
	var st Stats
	select {
	case <-m.done:
		return st, fmt.Errorf("qemu: stats of %q: QEMU has ended", m.spec.Name)
	default:
	}
	pid := m.PID()
	cpu, err := procCPUTime(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, fmt.Errorf("qemu: stats of %q: %w", m.spec.Name, err)
	}
	rss, err := procRSS(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return st, fmt.Errorf("qemu: stats of %q: %w", m.spec.Name, err)
	}
	st.CPUTime, st.RSSBytes = cpu, rss
	var bs []struct {
		Stats struct {
			RdBytes int64 `json:"rd_bytes"`
			WrBytes int64 `json:"wr_bytes"`
			RdOps   int64 `json:"rd_operations"`
			WrOps   int64 `json:"wr_operations"`
		} `json:"stats"`
	}
	if err := m.command("query-blockstats", func(ctx context.Context) error { return m.qc.Execute(ctx, "query-blockstats", nil, &bs) }); err != nil {
		return st, fmt.Errorf("qemu: query-blockstats of %q: %w", m.spec.Name, err)
	}
	for _, b := range bs {
		st.DiskReadBytes += uint64(max(b.Stats.RdBytes, 0))
		st.DiskWriteBytes += uint64(max(b.Stats.WrBytes, 0))
		st.DiskReadOps += uint64(max(b.Stats.RdOps, 0))
		st.DiskWriteOps += uint64(max(b.Stats.WrOps, 0))
	}
	return st, nil
}

// Facts says what QEMU runs.
func (m *Machine) Facts() Facts { return m.facts }

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on
// Linux for every architecture this runs on).
const clockTicks = 100

// procCPUTime is utime+stime from a /proc/PID/stat.
func procCPUTime(path string) (time.Duration, error) {
	b, err := readSmall(path)
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: the fields
	// start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no ')' after the command name", path)
	}
	f := strings.Fields(string(b[i+1:]))
	// Fields after ')': state(3) ... utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %d fields, want at least 15", path, len(f)+2)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: utime %q, stime %q are not numbers", path, f[11], f[12])
	}
	return time.Duration(utime+stime) * (time.Second / clockTicks), nil
}

// procRSS is the resident set of a /proc/PID/statm, in bytes.
func procRSS(path string) (uint64, error) {
	b, err := readSmall(path)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("%s: %d fields, want at least 2", path, len(f))
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: resident %q is not a number", path, f[1])
	}
	return pages * uint64(os.Getpagesize()), nil
}

// readSmall reads a /proc file of a few hundred bytes.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<10))
}

// readLines splits r into lines of at most maxConsoleLine bytes (a longer
// one is cut), each passed to emit with its '\r's dropped and ending in
// '\n', until r ends.
func readLines(r io.Reader, emit func([]byte)) {
	buf := make([]byte, 32<<10)
	line := make([]byte, 0, maxConsoleLine+1)
	flush := func() {
		line = append(line, '\n')
		emit(line)
		line = make([]byte, 0, maxConsoleLine+1)
	}
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			switch {
			case c == '\r':
			case c == '\n':
				flush()
			default:
				line = append(line, c)
				if len(line) == maxConsoleLine {
					flush()
				}
			}
		}
		if err != nil {
			if len(line) > 0 {
				flush()
			}
			return
		}
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// excerpt quotes the end of what QEMU wrote to stderr, for an error.
func (t *tailBuffer) excerpt() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.b))
	if s == "" {
		return "(nothing)"
	}
	const n = 1000
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return strconv.Quote(s)
}
