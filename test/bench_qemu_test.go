package test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/vmm/qmp"
)

// The bench of the qemu engine (make bench): the test guest under plain
// QEMU, driven by hand over QMP (vmm/qmp), against the same guest through
// two agents. Plain QEMU is the reference the ratio is taken
// against: the same binary, the same guest, the same migration options.

// plainQEMU is one qemu-system-x86_64 the bench drives itself.
type plainQEMU struct {
	cmd    *exec.Cmd
	start  time.Time
	exited chan struct{}
	stderr syncBuffer
	qc     *qmp.Client

	// corruptOK: a CORRUPT line of the memory checker is counted, not a
	// failure (a target of plain QEMU's migration: what the bench measures).
	corruptOK bool

	mu      sync.Mutex
	lines   []string
	first   time.Time // when the first console line came
	changed chan struct{}
	events  []qmp.Event
}

// plainArgs is QEMU's command line for the test guest: memMiB of RAM, the
// memory checker on memcheckMiB of it. It is the machine the qemu engine
// makes (vmm/qemu/spec.go, argv) for the guest's vm.cfg, so that the
// comparison is fair: RAM as a shared file on tmpfs (memory-backend-file
// share=on; mem-path a folder: QEMU makes its file there and unlinks it),
// machine pc, CPU qemu64 on tcg (host on kvm), the pvpanic and balloon
// devices, no display. Only the engine's plumbing differs: its QMP socket
// is a passed descriptor and it starts the guest with -S and cont.
func plainArgs(tb testing.TB, memMiB, memcheckMiB int) []string {
	dir := testGuestDir(tb)
	accel, cpu := testGuestAccel(tb), "qemu64"
	if accel == "kvm" {
		cpu = "host"
	}
	return []string{"-nodefaults", "-no-user-config", "-no-reboot", "-msg", "timestamp=off",
		"-accel", accel,
		"-object", fmt.Sprintf("memory-backend-file,id=ram0,size=%dM,mem-path=/dev/shm,share=on", memMiB),
		"-machine", "pc,memory-backend=ram0", "-m", fmt.Sprintf("%dM", memMiB),
		"-cpu", cpu, "-smp", "1",
		"-chardev", "stdio,id=ser0,signal=off", "-serial", "chardev:ser0",
		"-device", "pvpanic", "-action", "panic=shutdown",
		"-kernel", filepath.Join(dir, "vmlinux"), "-initrd", filepath.Join(dir, "initrd"),
		"-append", fmt.Sprintf("console=ttyS0 quiet no_timer_check memcheck_mib=%d", memcheckMiB),
		"-display", "none", "-vga", "none", "-device", "virtio-balloon-pci,id=balloon0"}
}

// startPlainQEMU starts QEMU with args and a QMP socket, reads its serial
// console and its events; the cleanup kills it by pid if it still runs.
func startPlainQEMU(tb testing.TB, args ...string) *plainQEMU {
	tb.Helper()
	return startPlainQEMUOn(tb, "", nil, args...)
}

// startPlainQEMUOn is startPlainQEMU pinned to cpus (taskset -c, which
// execs QEMU in its place; "" for any CPU) with files as its descriptors
// 3, 4, ...
func startPlainQEMUOn(tb testing.TB, cpus string, files []*os.File, args ...string) *plainQEMU {
	tb.Helper()
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		tb.Fatalf("qemu-system-x86_64 not installed (apt-get install --no-install-recommends qemu-system-x86): %v", err)
	}
	sock := filepath.Join(tb.TempDir(), "qmp.sock")
	q := &plainQEMU{exited: make(chan struct{}), changed: make(chan struct{})}
	argv := append(append([]string(nil), args...), "-qmp", "unix:"+sock+",server=on,wait=off")
	if cpus != "" {
		argv = append([]string{"-c", cpus, qemu}, argv...)
		qemu = "taskset"
	}
	q.cmd = exec.Command(qemu, argv...)
	q.cmd.ExtraFiles = files
	q.cmd.Stderr = &q.stderr
	stdout, err := q.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := q.cmd.StdinPipe(); err != nil { // an open, silent serial input
		tb.Fatal(err)
	}
	q.start = time.Now()
	if err := q.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	pid := q.cmd.Process.Pid
	go q.readConsole(stdout)
	go func() { q.cmd.Wait(); close(q.exited) }()
	tb.Cleanup(func() {
		select {
		case <-q.exited:
		default:
			syscall.Kill(pid, syscall.SIGKILL)
			<-q.exited
		}
		if q.qc != nil {
			q.qc.Close()
		}
		if tb.Failed() {
			tb.Logf("QEMU %d console:\n%s\nstderr:\n%s", pid, strings.Join(q.console(), "\n"), q.stderr.String())
		}
	})
	q.dialQMP(tb, sock)
	go q.readEvents()
	return q
}

func (q *plainQEMU) readConsole(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		q.mu.Lock()
		if len(q.lines) == 0 {
			q.first = time.Now()
		}
		q.lines = append(q.lines, line)
		q.notifyLocked()
		q.mu.Unlock()
	}
}

func (q *plainQEMU) readEvents() {
	for ev := range q.qc.Events() {
		q.mu.Lock()
		q.events = append(q.events, ev)
		q.notifyLocked()
		q.mu.Unlock()
	}
}

func (q *plainQEMU) notifyLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

func (q *plainQEMU) console() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.lines...)
}

// dialQMP connects once QEMU has made its socket (within a minute: a
// safety net on a loaded machine, not a measure).
func (q *plainQEMU) dialQMP(tb testing.TB, sock string) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := qmp.Dial(ctx, sock, qmp.Options{})
		cancel()
		if err == nil {
			q.qc = c
			return
		}
		select {
		case <-q.exited:
			tb.Fatalf("QEMU exited (%v) before its QMP socket answered: %s", q.cmd.ProcessState, q.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("QMP socket %s: %v", sock, err)
		}
	}
}

// waitFor waits until ok holds on the console lines and events seen so
// far, failing on a CORRUPT or FAILED console line, QEMU's exit or the
// timeout (generous: TCG on shared cores).
func (q *plainQEMU) waitFor(tb testing.TB, what string, timeout time.Duration, ok func(lines []string, events []qmp.Event) bool) {
	tb.Helper()
	limit := time.After(timeout)
	for {
		q.mu.Lock()
		lines, events, changed := q.lines, q.events, q.changed
		q.mu.Unlock()
		for _, l := range lines {
			if (strings.Contains(l, "CORRUPT") && !q.corruptOK) || strings.Contains(l, "FAILED") {
				tb.Fatalf("guest console: %s", l)
			}
		}
		if ok(lines, events) {
			return
		}
		select {
		case <-changed:
		case <-q.exited:
			tb.Fatalf("QEMU exited (%v) before %s", q.cmd.ProcessState, what)
		case <-limit:
			tb.Fatalf("no %s within %v", what, timeout)
		}
	}
}

// waitMemcheck waits for n OK lines of the memory checker after the
// guest's READY line.
func (q *plainQEMU) waitMemcheck(tb testing.TB, n int, timeout time.Duration) {
	q.waitFor(tb, fmt.Sprintf("%d OK lines of the memory checker", n), timeout, func(l []string, _ []qmp.Event) bool {
		return countFrom(l, "TESTGUEST READY", "OK memcheck") >= n
	})
}

// mark is how many events QEMU has sent so far: event and waitEvent look
// at the ones after a mark (a source paused earlier has a STOP event of
// its own before its migration's).
func (q *plainQEMU) mark() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events)
}

// event returns the first event named name (with status, for MIGRATION)
// seen after mark from.
func (q *plainQEMU) event(from int, name, status string) (qmp.Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, ev := range q.events[min(from, len(q.events)):] {
		if ev.Name != name {
			continue
		}
		if status == "" {
			return ev, true
		}
		var d struct{ Status string }
		if json.Unmarshal(ev.Data, &d) == nil && d.Status == status {
			return ev, true
		}
	}
	return qmp.Event{}, false
}

// waitEvent waits for event name (with status, for MIGRATION) after mark
// from and fails on a failed migration after it.
func (q *plainQEMU) waitEvent(tb testing.TB, from int, name, status string, timeout time.Duration) qmp.Event {
	tb.Helper()
	var ev qmp.Event
	q.waitFor(tb, name+" "+status, timeout, func([]string, []qmp.Event) bool {
		if _, bad := q.event(from, "MIGRATION", qmp.MigrationFailed); bad {
			tb.Fatalf("migration failed")
		}
		var ok bool
		ev, ok = q.event(from, name, status)
		return ok
	})
	return ev
}

// plainMigrationOptions are the migration settings the qemu engine gives
// a live move with no rate cap and the default max_downtime
// (vmm/qemuengine_migrate.go passes AutoConverge; vmm/qemu/migrate.go's
// setUp turns that into QMP): on the source, capabilities events and
// auto-converge on, max-bandwidth 1 TiB/s (QEMU's default caps at
// 32 MiB/s), downtime-limit 300 ms, the vCPU throttle from 20% by 20% up
// to 99%. The engine sets nothing on its target; here the target gets
// the events capability, which the bench waits on (the engine polls
// query-migrate instead).
func plainMigrationOptions(tb testing.TB, src, dst *plainQEMU) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	uncapped, downtime := int64(1)<<40, int64(300)
	initial, step, top := int64(20), int64(20), int64(99)
	if err := src.qc.MigrateSetCapabilities(ctx, map[string]bool{"events": true, "auto-converge": true}); err != nil {
		tb.Fatal(err)
	}
	if err := src.qc.MigrateSetParameters(ctx, qmp.MigrationParameters{MaxBandwidth: &uncapped, DowntimeLimit: &downtime,
		CPUThrottleInitial: &initial, CPUThrottleIncrement: &step, MaxCPUThrottle: &top}); err != nil {
		tb.Fatal(err)
	}
	if err := dst.qc.MigrateSetCapabilities(ctx, map[string]bool{"events": true}); err != nil {
		tb.Fatal(err)
	}
}

// loopbackPair is a TCP connection over 127.0.0.1, both ends as files
// to pass to QEMU.
func loopbackPair(tb testing.TB) (*os.File, *os.File) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c1, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	c2 := <-accepted
	if c2 == nil {
		tb.Fatal("loopback accept failed")
	}
	f1, err1 := c1.(*net.TCPConn).File()
	f2, err2 := c2.(*net.TCPConn).File()
	c1.Close()
	c2.Close()
	if err1 != nil || err2 != nil {
		tb.Fatal(err1, err2)
	}
	return f1, f2
}

// plainMove is what one plain-QEMU live migration measured.
type plainMove struct {
	Total       time.Duration // from starting the target QEMU to the target's cont
	QEMUTotal   time.Duration // QEMU's own total-time (source)
	QEMUDown    time.Duration // QEMU's own downtime (source)
	GuestDown   time.Duration // source STOP event to target RESUME event
	Transferred int64
	Rounds      int64
	// Corrupt counts the CORRUPT lines the guest's memory checker printed
	// on the target after the move; Broken says what went wrong with the
	// target's guest, "" when its checker went on.
	Corrupt int
	Broken  string
}

// migratePlain moves the running guest src to a new QEMU over a loopback
// socket, by hand over QMP, and resumes it there; src is ended.
func migratePlain(tb testing.TB, src *plainQEMU, args []string) (*plainQEMU, plainMove) {
	var m plainMove
	t0 := time.Now()
	dst := startPlainQEMU(tb, append(append([]string(nil), args...), "-incoming", "defer", "-S")...)
	dst.corruptOK = true
	plainMigrationOptions(tb, src, dst)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fs, fd := loopbackPair(tb)
	for _, p := range []struct {
		q *plainQEMU
		f *os.File
	}{{src, fs}, {dst, fd}} {
		err := p.q.qc.SendFD(ctx, "migration", int(p.f.Fd()))
		p.f.Close()
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := dst.qc.MigrateIncoming(ctx, "fd:migration"); err != nil {
		tb.Fatal(err)
	}
	srcMark := src.mark()
	if err := src.qc.Migrate(ctx, "fd:migration"); err != nil {
		tb.Fatal(err)
	}
	dst.waitEvent(tb, 0, "MIGRATION", qmp.MigrationCompleted, 5*time.Minute)
	if err := dst.qc.Cont(ctx); err != nil {
		tb.Fatal(err)
	}
	m.Total = time.Since(t0)
	stop := src.waitEvent(tb, srcMark, "STOP", "", time.Minute)
	resume := dst.waitEvent(tb, 0, "RESUME", "", time.Minute)
	m.GuestDown = resume.Timestamp.Sub(stop.Timestamp)
	info := completedInfo(tb, src)
	m.QEMUTotal = time.Duration(info.TotalTime) * time.Millisecond
	m.QEMUDown = time.Duration(info.Downtime) * time.Millisecond
	if info.RAM != nil {
		m.Transferred, m.Rounds = info.RAM.Transferred, info.RAM.DirtySyncCount
	}
	if err := src.qc.Quit(ctx); err != nil {
		tb.Fatal(err)
	}
	return dst, m
}

// completedInfo is the source's query-migrate once it says completed with
// its figures (QEMU 7.2 may say completed with total-time 0 for a moment).
func completedInfo(tb testing.TB, q *plainQEMU) qmp.MigrationInfo {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		info, err := q.qc.QueryMigrate(ctx)
		cancel()
		if err != nil {
			tb.Fatal(err)
		}
		if info.Status == qmp.MigrationCompleted && info.TotalTime > 0 {
			return info
		}
		if time.Now().After(deadline) {
			tb.Fatalf("query-migrate never completed with figures: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// plainSide is the test guest on plain QEMU as BenchmarkQEMUMigration
// moves it: live, each time to a new QEMU. What became of the guest on
// each target is counted, not failed: plain QEMU on tcg loses pages now
// and then, and that is what the engine's RAM check is measured against.
// A guest broken by a move is replaced by a fresh boot for the next one.
type plainSide struct {
	b     *testing.B
	args  []string
	q     *plainQEMU
	moves []plainMove
}

// newPlainSide boots the guest and waits for three OK lines of its
// memory checker.
func newPlainSide(b *testing.B, memMiB, memcheckMiB int) *plainSide {
	p := &plainSide{b: b, args: plainArgs(b, memMiB, memcheckMiB)}
	p.boot()
	return p
}

func (p *plainSide) boot() {
	p.q = startPlainQEMU(p.b, p.args...)
	p.q.waitMemcheck(p.b, 3, 3*time.Minute)
}

// qmp runs one QMP command on the guest's QEMU.
func (p *plainSide) qmp(what string, f func(*qmp.Client, context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f(p.q.qc, ctx); err != nil {
		p.b.Fatalf("plain QEMU: %s: %v", what, err)
	}
}

// pause stops the guest while the other side moves its own (a QEMU that
// has just exited is left to resume, which counts it).
func (p *plainSide) pause() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.q.qc.Stop(ctx); err != nil {
		select {
		case <-p.q.exited:
		default:
			p.b.Fatalf("plain QEMU: stop: %v", err)
		}
	}
}

// resume continues the guest and waits for two more OK lines of its
// checker. A guest that broke meanwhile (a kernel oops the checker
// outlived at first, or a panic that ended QEMU: -action panic=shutdown)
// is counted against the move that brought it here and replaced by a
// fresh boot.
func (p *plainSide) resume() {
	select {
	case <-p.q.exited:
		p.broke("", fmt.Sprintf("QEMU exited while paused: %v", p.q.cmd.ProcessState))
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := p.q.qc.Cont(ctx)
	cancel()
	if err != nil {
		p.broke("", fmt.Sprintf("cont: %v", err))
		return
	}
	corrupt, broken := afterPlainMove(p.b, p.q)
	if n := len(p.moves); n > 0 {
		p.moves[n-1].Corrupt = max(p.moves[n-1].Corrupt, corrupt)
	}
	if broken != "" {
		p.broke(broken, "")
	}
}

// broke records that the guest broke after its last move (why: a console
// line or what QEMU did) and boots a fresh one.
func (p *plainSide) broke(line, why string) {
	if line != "" {
		why = line
	}
	if n := len(p.moves); n > 0 && p.moves[n-1].Broken == "" {
		p.moves[n-1].Broken = "later: " + why
	}
	p.b.Logf("plain QEMU: the guest broke after move %d: %s\n%s", len(p.moves), why, strings.Join(p.q.console(), "\n"))
	syscall.Kill(p.q.cmd.Process.Pid, syscall.SIGKILL)
	<-p.q.exited
	p.boot()
}

// move moves the guest to a new QEMU and waits for two OK lines of its
// checker there; the moves so far are p.moves.
func (p *plainSide) move(i int) {
	dst, m := migratePlain(p.b, p.q, p.args)
	m.Corrupt, m.Broken = afterPlainMove(p.b, dst)
	if m.Corrupt > 0 || m.Broken != "" {
		p.b.Logf("plain QEMU move %d: %d CORRUPT lines, broken: %q\n%s", i+1, m.Corrupt, m.Broken, strings.Join(dst.console(), "\n"))
	}
	p.moves = append(p.moves, m)
	p.q = dst
	if m.Broken != "" {
		syscall.Kill(dst.cmd.Process.Pid, syscall.SIGKILL)
		<-dst.exited
		p.boot()
	}
}

// close ends the guest's QEMU (the cleanup kills it if it does not go).
func (p *plainSide) close() {
	p.qmp("quit", (*qmp.Client).Quit)
}

// afterPlainMove waits for two more OK lines of the memory checker on a
// target and counts its CORRUPT lines; broken says why it never got them
// (a kernel oops or panic, QEMU's exit, or two silent minutes).
func afterPlainMove(b *testing.B, q *plainQEMU) (corrupt int, broken string) {
	seen := countFrom(q.console(), "", "OK memcheck")
	deadline := time.After(2 * time.Minute)
	for {
		lines := q.console()
		corrupt = 0
		for _, l := range lines {
			switch {
			case strings.HasPrefix(l, "CORRUPT memcheck"):
				corrupt++
			case strings.Contains(l, "Kernel panic") || strings.Contains(l, "BUG:") || strings.Contains(l, "Oops"):
				if broken == "" {
					broken = strings.TrimSpace(l)
				}
			}
		}
		if broken != "" || countFrom(lines, "", "OK memcheck") >= seen+2 {
			return corrupt, broken
		}
		q.mu.Lock()
		changed := q.changed
		q.mu.Unlock()
		select {
		case <-changed:
		case <-q.exited:
			return corrupt, fmt.Sprintf("QEMU exited: %v", q.cmd.ProcessState)
		case <-deadline:
			return corrupt, "no OK line of the memory checker for 2 minutes"
		}
	}
}

// qemuBenchMoves is how many times each migration benchmark moves its
// guest (after one boot): OVS_QEMU_BENCH_MOVES, default 3.
func qemuBenchMoves(b *testing.B) int {
	n := 3
	if s := os.Getenv("OVS_QEMU_BENCH_MOVES"); s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
			b.Fatalf("OVS_QEMU_BENCH_MOVES=%q: want a count of at least 1", s)
		}
	}
	return n
}

// qemuBenchSizes are the guests the migration benchmarks move.
var qemuBenchSizes = []struct {
	name                string
	memMiB, memcheckMiB int
}{
	{"256MiB", 256, 64},
	{"1GiB", 1024, 256},
}

func brokenNote(why string) string {
	if why == "" {
		return ""
	}
	return ", guest broken: " + why
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// anchorMove is one migration of the QEMU anchor.
type anchorMove struct {
	what        string  // what ran, said on the scenario's line
	total       float64 // s: the target QEMU's start to its completed event
	qemuTotal   float64 // s: QEMU's own total-time (source)
	downtime    float64 // ms: QEMU's own downtime (source)
	transferred int64   // bytes QEMU says it sent
	srcCPU      float64 // s: the source QEMU's CPU time, its start included
	dstCPU      float64 // s: the target QEMU's
}

// anchorMemfd is a memfd of memMiB on backing as the qemu engine gives
// QEMU (vmm/qemu: hugetlb a hugetlbfs memfd, thp and 4k a plain one; QEMU
// maps it share=on, for thp with align=2M, and madvises it huge), the
// first dataMiB of it random data written through a mapping of this
// process (madvised huge for thp, so the data lies in 2 MiB pages as a
// thp guest's would).
func anchorMemfd(tb testing.TB, memMiB, dataMiB int, backing string, seed uint64) *os.File {
	tb.Helper()
	flags := unix.MFD_CLOEXEC
	if backing == "hugetlb" {
		flags |= unix.MFD_HUGETLB | unix.MFD_HUGE_2MB
	}
	fd, err := unix.MemfdCreate("ovs-bench-anchor", flags)
	if err != nil {
		tb.Fatalf("anchor memory (%s): memfd_create: %v", backing, err)
	}
	f := os.NewFile(uintptr(fd), "anchor-ram")
	tb.Cleanup(func() { f.Close() })
	if err := f.Truncate(int64(memMiB) << 20); err != nil {
		tb.Fatalf("anchor memory (%s): size %d MiB: %v", backing, memMiB, err)
	}
	if dataMiB == 0 {
		return f
	}
	mem, err := unix.Mmap(fd, 0, dataMiB<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		tb.Fatalf("anchor memory (%s): mmap: %v", backing, err)
	}
	defer unix.Munmap(mem)
	if backing == "thp" {
		if err := unix.Madvise(mem, unix.MADV_HUGEPAGE); err != nil {
			tb.Fatal(err)
		}
	}
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	rand.NewChaCha8(s).Read(mem)
	return f
}

// memfdCRC is the CRC-32C of the first n bytes of f (read through a
// mapping: a hugetlbfs memfd takes no read(2)).
func memfdCRC(tb testing.TB, f *os.File, n int) uint32 {
	tb.Helper()
	mem, err := unix.Mmap(int(f.Fd()), 0, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		tb.Fatalf("map the anchor's memory: %v", err)
	}
	defer unix.Munmap(mem)
	return crc32.Checksum(mem, crc32.MakeTable(crc32.Castagnoli))
}

// qemuAnchor is QEMU 7.2 migrating the scenario's guest shape over
// loopback TCP, as fairly as this machine allows: memMiB of RAM on
// backing, its first dataMiB random data and the rest never touched,
// machine pc and -cpu qemu64 as the qemu engine's guests, multifd with
// 2 channels (our default of 2 streams), max-bandwidth uncapped and
// downtime-limit 300 ms (our default max_downtime), into a fresh target
// QEMU on a fresh memfd of the same backing, the source QEMU placed on
// pl.src and the target on pl.dst. Its guest runs no code: both QEMUs
// are started with -S (the source is migrated paused, from prelaunch),
// on -accel tcg. This machine's /dev/kvm is PVM, under which QEMU with
// -accel kvm crawls (SeaBIOS alone takes 40 s), and an idle vCPU dirties
// nothing, so what is timed is QEMU's migration of that memory, which
// is what scenario a's idle guest asks of it. The data is checked on
// the target (CRC of the first dataMiB on both memfds) outside the
// timing. The total runs from the target QEMU's start (ours counts its
// target VMM's start too) to the target's MIGRATION completed event.
func qemuAnchor(b *testing.B, memMiB, dataMiB int, backing string, pl placement) anchorMove {
	srcMem := anchorMemfd(b, memMiB, dataMiB, backing, uint64(time.Now().UnixNano()))
	want := memfdCRC(b, srcMem, dataMiB<<20)
	dstMem := anchorMemfd(b, memMiB, 0, backing, 0)
	args := func() []string {
		align := ""
		if backing == "thp" {
			align = fmt.Sprintf(",align=%d", 2<<20)
		}
		return []string{"-nodefaults", "-no-user-config", "-no-reboot", "-msg", "timestamp=off",
			"-accel", "tcg",
			"-object", fmt.Sprintf("memory-backend-file,id=ram0,size=%dM,mem-path=/proc/self/fd/3,share=on%s", memMiB, align),
			"-machine", "pc,memory-backend=ram0", "-m", fmt.Sprintf("%dM", memMiB),
			"-cpu", "qemu64", "-smp", "1", "-display", "none", "-vga", "none", "-S"}
	}
	src := startPlainQEMUOn(b, pl.src, []*os.File{srcMem}, args()...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	port := freePort(b, "127.0.0.1")
	uri := fmt.Sprintf("tcp:127.0.0.1:%d", port)
	t0 := time.Now()
	dst := startPlainQEMUOn(b, pl.dst, []*os.File{dstMem}, append(args(), "-incoming", "defer")...)
	uncapped, downtime := int64(1)<<40, int64(300)
	for _, q := range []*plainQEMU{src, dst} {
		if err := q.qc.MigrateSetCapabilities(ctx, map[string]bool{"events": true, "multifd": true}); err != nil {
			b.Fatal(err)
		}
		if err := q.qc.Execute(ctx, "migrate-set-parameters", map[string]any{"multifd-channels": 2}, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := src.qc.MigrateSetParameters(ctx, qmp.MigrationParameters{MaxBandwidth: &uncapped, DowntimeLimit: &downtime}); err != nil {
		b.Fatal(err)
	}
	if err := dst.qc.MigrateIncoming(ctx, uri); err != nil {
		b.Fatal(err)
	}
	if err := src.qc.Migrate(ctx, uri); err != nil {
		b.Fatal(err)
	}
	dst.waitEvent(b, 0, "MIGRATION", qmp.MigrationCompleted, 5*time.Minute)
	total := time.Since(t0)
	info := completedInfo(b, src)
	m := anchorMove{total: total.Seconds(), qemuTotal: float64(info.TotalTime) / 1000, downtime: float64(info.Downtime),
		what: fmt.Sprintf("QEMU 7.2 anchor (accel tcg, guest paused -S: no guest code, %d MiB random data in %d MiB, multifd 2, %s, %s)", dataMiB, memMiB, backing, pl.name)}
	if info.RAM != nil {
		m.transferred = info.RAM.Transferred
	}
	m.srcCPU, m.dstCPU = procCPU(src.cmd.Process.Pid), procCPU(dst.cmd.Process.Pid)
	for _, q := range []*plainQEMU{src, dst} {
		if err := q.qc.Quit(ctx); err != nil {
			b.Fatal(err)
		}
		select {
		case <-q.exited:
		case <-time.After(time.Minute):
			b.Fatal("QEMU did not quit within a minute")
		}
	}
	if got := memfdCRC(b, dstMem, dataMiB<<20); got != want {
		b.Fatalf("QEMU anchor: the target's memory differs from the source's (CRC %08x, want %08x)", got, want)
	}
	srcMem.Close()
	dstMem.Close()
	return m
}
