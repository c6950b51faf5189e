package test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests of the qemu engine: the test guest (test/guest) as a
// domain of real agents, from the guide's vm.cfg keys, on real QEMU
// processes (tcg here; OVS_TESTGUEST_ACCEL=kvm on a host with hardware
// virtualization).

// qemuMig is migration.status with what a qemu domain's move reports.
type qemuMig struct {
	Phase       string  `xmlrpc:"phase"`
	Round       int     `xmlrpc:"round"`
	BytesSent   int64   `xmlrpc:"bytes_sent"`
	Remaining   int64   `xmlrpc:"bytes_remaining"`
	DataPages   int64   `xmlrpc:"data_pages"`
	DowntimeMs  float64 `xmlrpc:"downtime_ms"`
	Streams     int     `xmlrpc:"streams"`
	Error       string  `xmlrpc:"error"`
	Throughput  float64 `xmlrpc:"throughput"`
	TransferSec float64 `xmlrpc:"transfer_seconds"`
	TLS         bool    `xmlrpc:"tls_verified"`
	RAMCheckMs  float64 `xmlrpc:"ram_check_ms"`
	Mended      int     `xmlrpc:"mended_pages"`
}

// waitQEMUMigration polls migration.status until the move ends (bounded
// generously: tcg on two cores), checking that its figures never run
// backwards; stop, when not nil, is called once with the status each
// poll and may end the wait early by returning true.
func waitQEMUMigration(t *testing.T, a *Agent, id string, stop func(qemuMig) bool) qemuMig {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var last qemuMig
	for time.Now().Before(deadline) {
		var st qemuMig
		a.call(t, "migration.status", &st, id)
		if st.BytesSent < last.BytesSent || st.Round < last.Round {
			t.Fatalf("progress went backwards: %+v after %+v", st, last)
		}
		last = st
		switch st.Phase {
		case "completed", "failed", "cancelled":
			return st
		}
		if stop != nil && stop(st) {
			return st
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("migration %s did not end within 3 minutes: %+v", id, last)
	return last
}

// TestQEMUDomainLifecycle runs one test guest through what an operator
// does to a domain: start from the guide's kernel/ramdisk/extra keys, its
// console, domain.info, pause and unpause, the agent killed with SIGKILL
// and started again (the guest runs on and is re-attached), domain.reboot,
// and an ACPI shutdown that leaves its ext4 disk clean.
func TestQEMUDomainLifecycle(t *testing.T) {
	timed(t)
	a := qemuAgent(t, "127.0.0.2", false)
	disk := ext4Disk(t, 32, map[string]string{"hello": "from the host"})
	v := guestVM{Name: "q1", Disk: disk, VCPUs: 2, Lines: []string{"vfb = ['type=vnc,vnclisten=127.0.0.1,vncunused=1,vncpasswd=s3cret']"}}
	startGuest(t, a, v)

	in := a.qinfo(t, "q1")
	if in.Engine != "qemu" || in.Accel != testGuestAccel(t) || in.State != "running" || in.PID == 0 {
		t.Fatalf("domain.info of a running qemu domain: %+v", in)
	}
	lines := a.consoleLines(t, "q1")
	if countFrom(lines, "", "TESTGUEST READY") < 1 {
		t.Fatalf("no READY line on domain.console:\n%s", strings.Join(lines, "\n"))
	}
	var st struct {
		VCPUs     int     `xmlrpc:"vcpus"`
		CPU       float64 `xmlrpc:"cpu_time_seconds"`
		Resident  int64   `xmlrpc:"resident_bytes"`
		DiskRead  int64   `xmlrpc:"disk_read_bytes"`
		DiskReads int64   `xmlrpc:"disk_read_ops"`
		Version   string  `xmlrpc:"engine_version"`
		Machine   string  `xmlrpc:"machine"`
		MaxMemory int64   `xmlrpc:"max_memory_bytes"`
	}
	a.call(t, "domain.info", &st, "q1")
	if st.VCPUs != 2 || st.CPU <= 0 || st.Resident <= 0 || st.DiskRead <= 0 || st.DiskReads <= 0 || st.DiskReads > st.DiskRead/512 || !strings.HasPrefix(st.Version, "QEMU ") || !strings.HasPrefix(st.Machine, "pc-") || st.MaxMemory != 256<<20 {
		t.Errorf("domain.info figures of a running qemu domain: %+v", st)
	}
	// CloudStack's VM statistics call reads the same counters.
	var us struct {
		CPUTime string `xmlrpc:"cputime"`
		Uptime  string `xmlrpc:"uptime"`
		VCPUs   string `xmlrpc:"vcpus"`
		RdBytes string `xmlrpc:"rd_bytes"`
		RdOps   string `xmlrpc:"rd_ops"`
		WrOps   string `xmlrpc:"wr_ops"`
		RxBytes string `xmlrpc:"rx_bytes"`
	}
	a.call(t, "ovs_domU_stats", &us, "q1")
	if n, _ := strconv.ParseInt(us.RdBytes, 10, 64); us.VCPUs != "2" || n < st.DiskRead || us.RdOps == "0" || us.RdOps == "" || us.WrOps == "" || us.RxBytes == "" {
		t.Errorf("ovs_domU_stats of a running qemu domain: %+v (domain.info: %+v)", us, st)
	}
	if cpu, _ := strconv.ParseInt(us.CPUTime, 10, 64); float64(cpu) < st.CPU*1e9 {
		t.Errorf("ovs_domU_stats cputime %s ns, domain.info had %v s before", us.CPUTime, st.CPU)
	}
	if up, _ := strconv.ParseInt(us.Uptime, 10, 64); up <= 0 {
		t.Errorf("ovs_domU_stats uptime %q", us.Uptime)
	}

	// The VNC display answers where domain.info says, and asks for the
	// password (RFB security type 2, VNC authentication), which is
	// neither on QEMU's command line nor in the agent's log.
	if sec := rfbSecurity(t, in.VNC); len(sec) != 1 || sec[0] != 2 {
		t.Errorf("VNC at %q offers security types %v, want [2] (VNC authentication)", in.VNC, sec)
	}
	if strings.Contains(a.Log(), "s3cret") {
		t.Errorf("the VNC password is in the agent's log")
	}
	for _, pid := range childPIDs(t, in.PID) {
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(cmd), "s3cret") {
			t.Errorf("the VNC password is on the command line of pid %d", pid)
		}
	}

	// Pause: the memory checker stops printing; unpause: it goes on.
	a.call(t, "domain.pause", nil, "q1")
	a.waitInfoWithin(t, "q1", "paused", 30*time.Second, func(i qemuInfo) bool { return i.State == "paused" })
	n := countFrom(a.consoleLines(t, "q1"), "", "OK memcheck")
	time.Sleep(2 * time.Second) // the checker prints each second
	if m := countFrom(a.consoleLines(t, "q1"), "", "OK memcheck"); m > n+1 {
		t.Errorf("%d OK lines while paused", m-n)
	}
	a.call(t, "domain.unpause", nil, "q1")
	a.waitMemcheck(t, "q1", 2)

	// The agent dies with SIGKILL: the guest's VMM and QEMU do not.
	vmm := a.info(t, "q1").PID
	a.Signal(syscall.SIGKILL)
	for i := 0; i < 100 && !a.Exited(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(vmm, 0); err != nil {
		t.Fatalf("the VMM %d died with the agent: %v", vmm, err)
	}
	a.start()
	a.waitReady()
	if in := a.qinfo(t, "q1"); in.State != "running" || in.PID != vmm || in.Engine != "qemu" {
		t.Fatalf("after the agent's restart: %+v (VMM was %d)", in, vmm)
	}
	a.waitMemcheck(t, "q1", 2)

	// The dirty rate QEMU samples (every 10 s) shows the memory checker.
	a.waitInfoWithin(t, "q1", "a dirty rate", time.Minute, func(i qemuInfo) bool { return i.Dirty > 0 })

	// domain.reboot: the ACPI button, then a fresh start (a new VMM and
	// QEMU; the guest counts a second boot on its disk).
	a.call(t, "domain.reboot", nil, "q1")
	a.waitInfoWithin(t, "q1", "running after domain.reboot", 2*time.Minute, func(i qemuInfo) bool {
		return i.State == "running" && i.PID != vmm && i.PID != 0
	})
	a.waitConsoleLines(t, "q1", "the second boot's disk", qemuBoot, func(l []string) bool {
		return countFrom(l, "", "testguest: disk mounted dev=/dev/vda boots=2") > 0 && countFrom(l, "", "TESTGUEST READY") > 0
	})

	// Shutdown: the ACPI button; the guest unmounts and powers off.
	a.call(t, "domain.shutdown", nil, "q1")
	a.waitInfoWithin(t, "q1", "stopped after the ACPI shutdown", 2*time.Minute, func(i qemuInfo) bool { return i.State == "stopped" })
	if in := a.info(t, "q1"); in.LastExit == nil || in.LastExit.Reason != "shutdown" {
		t.Errorf("last exit after an ACPI shutdown: %+v", in.LastExit)
	}
	e2fsckClean(t, disk)
	if n := strings.TrimSpace(diskFile(t, disk, "testguest-boots")); n != "2" {
		t.Errorf("the guest counted %q boots on its disk, want 2", n)
	}
}

// TestQEMULiveMigration moves the running test guest between two agents
// (over the TLS relocation port, the target's certificate pinned) while
// its memory checker runs: no CORRUPT line, the console goes on on
// the target, the source forgets the domain; QEMU's figures show in
// migration.status and never run backwards. Then a cancelled move and one
// whose target VMM is killed leave the guest running on its source.
func TestQEMULiveMigration(t *testing.T) {
	timed(t)
	src := qemuAgent(t, "127.0.0.2", true)
	// The target also listens on the TLS relocation port; the first move
	// goes over it, pinning the target's certificate.
	sslPort := freePort(t, "127.0.0.3")
	dst := startAgent(t, agentConf{Listen: "127.0.0.3", RelocPort: freePort(t, "127.0.0.3"),
		FileDirs: []string{filepath.Dir(t.TempDir()), testGuestDir(t)},
		Extra: map[string][]string{
			"agent":      {"memory_reserve = 0"},
			"qemu":       {"accel = " + testGuestAccel(t)},
			"relocation": {"ssl_server = yes", "ssl_port = " + itoa(sslPort)},
		}})
	pin := certPin(t, dst)
	v := guestVM{Name: "mv", MemcheckMiB: 64}
	startGuest(t, src, v)

	tls := map[string]any{"ssl": true, "port": sslPort, "fingerprint": pin}
	var chk checkRes
	src.call(t, "migration.check", &chk, "mv", "127.0.0.3", migrateOpts(tls))
	if !chk.OK {
		t.Fatalf("dry run: %v", chk.Problems)
	}
	var id string
	tls["live"] = true
	src.call(t, "domain.migrate", &id, "mv", "127.0.0.3", migrateOpts(tls))
	st := waitQEMUMigration(t, src, id, nil)
	if st.Phase != "completed" {
		t.Fatalf("migration: %+v", st)
	}
	t.Logf("moved: %+v", st)
	if st.BytesSent < 16<<20 || st.Round < 1 || st.DowntimeMs <= 0 || st.Streams != 1 || !st.TLS || st.RAMCheckMs <= 0 || st.RAMCheckMs > st.DowntimeMs {
		t.Errorf("figures of a completed move: %+v", st)
	}
	dst.waitInfoWithin(t, "mv", "running on the target", time.Minute, func(i qemuInfo) bool { return i.State == "running" })
	if in := dst.qinfo(t, "mv"); in.Engine != "qemu" {
		t.Errorf("target's domain.info: %+v", in)
	}
	dst.waitMemcheck(t, "mv", 3)
	if f := src.fault(t, "domain.info", "mv"); f == nil || f.Code != 1002 {
		t.Fatalf("the source still knows mv: %v", f)
	}

	// A cancelled move (capped to 2 MiB/s, so it is still copying).
	var cid string
	dst.call(t, "domain.migrate", &cid, "mv", src.Reloc, migrateOpts(map[string]any{"live": true, "rate": 2}))
	waitQEMUMigration(t, dst, cid, func(s qemuMig) bool { return s.BytesSent > 1<<20 })
	dst.call(t, "migration.cancel", nil, cid)
	if st := waitQEMUMigration(t, dst, cid, nil); st.Phase != "cancelled" {
		t.Fatalf("cancelled move: %+v", st)
	}
	if in := dst.qinfo(t, "mv"); in.State != "running" {
		t.Fatalf("after a cancelled move the guest is %s on its host", in.State)
	}
	dst.waitMemcheck(t, "mv", 2)
	if src.known(t, "mv") {
		t.Fatalf("a cancelled move left the domain on the other agent")
	}

	// A move whose target VMM dies: the guest stays where it runs.
	var fid string
	dst.call(t, "domain.migrate", &fid, "mv", src.Reloc, migrateOpts(map[string]any{"live": true, "rate": 2}))
	waitQEMUMigration(t, dst, fid, func(s qemuMig) bool { return s.BytesSent > 1<<20 })
	killIncomingVMM(t, src, "mv")
	if st := waitQEMUMigration(t, dst, fid, nil); st.Phase != "failed" {
		t.Fatalf("move to a killed target: %+v", st)
	}
	dst.waitInfoWithin(t, "mv", "running after the failed move", time.Minute, func(i qemuInfo) bool { return i.State == "running" })
	dst.waitMemcheck(t, "mv", 2)
	// The guest's RAM is a file without a name: the killed VMM's QEMU
	// left nothing in /dev/shm, nor does the running one show there.
	if left, _ := filepath.Glob("/dev/shm/ovs-qemu-" + dst.info(t, "mv").UUID + "-*"); len(left) > 0 {
		t.Errorf("RAM files of mv in /dev/shm: %v", left)
	}
}

// rfbSecurity connects to the VNC server at addr, agrees on RFB 3.8 and
// returns the security types it offers.
func rfbSecurity(t *testing.T, addr string) []byte {
	t.Helper()
	if addr == "" {
		t.Fatal("domain.info reports no VNC address")
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("VNC at %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	ver := make([]byte, 12)
	if _, err := io.ReadFull(c, ver); err != nil || !strings.HasPrefix(string(ver), "RFB 003.") {
		t.Fatalf("VNC at %s greets %q: %v", addr, ver, err)
	}
	if _, err := c.Write([]byte("RFB 003.008\n")); err != nil {
		t.Fatal(err)
	}
	n := make([]byte, 1)
	if _, err := io.ReadFull(c, n); err != nil || n[0] == 0 {
		t.Fatalf("VNC at %s: %d security types, %v", addr, n[0], err)
	}
	types := make([]byte, n[0])
	if _, err := io.ReadFull(c, types); err != nil {
		t.Fatal(err)
	}
	return types
}

// childPIDs lists the children of pid (/proc/PID/task/*/children).
func childPIDs(t *testing.T, pid int) []int {
	t.Helper()
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, w := range strings.Fields(string(b)) {
			var p int
			fmt.Sscan(w, &p)
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatalf("the VMM %d has no child process (its QEMU)", pid)
	}
	return out
}

// certPin is the SHA-256 of a's TLS certificate, in hex.
func certPin(t *testing.T, a *Agent) string {
	t.Helper()
	pemData, err := os.ReadFile(filepath.Join(a.Dir, "state", "tls", "agent.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemData)
	if block == nil {
		t.Fatalf("%s/state/tls/agent.crt holds no PEM block", a.Dir)
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:])
}

// killIncomingVMM kills, by pid, the VMM a receives name in.
func killIncomingVMM(t *testing.T, a *Agent, name string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var in domInfo
		if err := a.Unix().Call(t.Context(), "domain.info", &in, name); err == nil && in.PID > 0 {
			if err := syscall.Kill(in.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no incoming VMM of %s on the target agent", name)
}

// TestQEMUSaveRestore saves the running test guest to a file (its vm.cfg
// and QEMU's state), and restores it: the memory checker goes on where it
// was, with no CORRUPT line; then saves it again and restores it on a
// second agent.
func TestQEMUSaveRestore(t *testing.T) {
	// Parallel: a TCG guest takes one core, and the test package runs
	// its sequential tests first; the parallel ones share the two cores.
	t.Parallel()
	timed(t)
	a := qemuAgent(t, "127.0.0.2", false)
	startGuest(t, a, guestVM{Name: "sv", MemcheckMiB: 32})
	img := filepath.Join(t.TempDir(), "sv.save")
	a.call(t, "domain.save", nil, "sv", img)
	a.waitInfoWithin(t, "sv", "suspended", 2*time.Minute, func(i qemuInfo) bool { return i.State == "suspended" || i.State == "stopped" })
	if st, err := os.Stat(img); err != nil || st.Size() < 1<<20 {
		t.Fatalf("save image: %v %v", st, err)
	}
	b, _ := os.ReadFile(img)
	if !strings.HasPrefix(string(b), "OVSQSAVE") {
		t.Fatalf("save image starts with %q", b[:min(len(b), 16)])
	}
	a.call(t, "domain.restore", nil, img)
	a.waitInfoWithin(t, "sv", "running after the restore", time.Minute, func(i qemuInfo) bool { return i.State == "running" })
	a.waitMemcheck(t, "sv", 2)

	// Saved again, and restored by another agent (another host with the
	// same files): the image carries the vm.cfg.
	img2 := filepath.Join(t.TempDir(), "sv2.save")
	a.call(t, "domain.save", nil, "sv", img2)
	a.waitInfoWithin(t, "sv", "suspended", 2*time.Minute, func(i qemuInfo) bool { return i.State == "suspended" })
	other := qemuAgent(t, "127.0.0.3", false)
	other.call(t, "domain.restore", nil, img2)
	other.waitInfoWithin(t, "sv", "running on the other agent", time.Minute, func(i qemuInfo) bool { return i.State == "running" && i.Engine == "qemu" })
	other.waitMemcheck(t, "sv", 2)
}

// TestQEMUBadInput: a vm.cfg naming a kernel that is not there, one
// whose bridge the host lacks, one whose disk is not the format its type
// declares, and an agent without its QEMU: each fails with the reason and
// leaves nothing running.
func TestQEMUBadInput(t *testing.T) {
	a := qemuAgent(t, "127.0.0.2", false)
	dir := t.TempDir()
	cfg := fmt.Sprintf("name = 'bad1'\nmemory = 128\nkernel = '%s'\n", filepath.Join(dir, "no-such-vmlinuz"))
	if f := a.fault(t, "domain.create", cfg); f == nil {
		a.call(t, "domain.start", nil, "bad1")
		t.Fatalf("a missing kernel started")
	} else if !strings.Contains(f.Message, "no-such-vmlinuz") {
		t.Errorf("missing kernel: %v", f)
	}
	v := guestVM{Name: "bad2", Bridge: "ovsnobr0"}
	a.call(t, "domain.create", nil, v.cfg(t))
	f := a.fault(t, "domain.start", "bad2")
	if f == nil || !strings.Contains(f.Message, "ovsnobr0") {
		t.Fatalf("a missing bridge: %v", f)
	}
	if in := a.info(t, "bad2"); in.State != "stopped" || in.PID != 0 {
		t.Fatalf("after a failed start: %+v", in)
	}

	// A raw file declared qcow2 (tap:qcow2:) is refused, saying what it is.
	raw := ext4Disk(t, 16, nil)
	v3 := guestVM{Name: "bad3", Disk: raw}
	if f := a.fault(t, "domain.create", strings.Replace(v3.cfg(t), "'file:", "'tap:qcow2:", 1)); f == nil || !strings.Contains(f.Message, "not qcow2") {
		t.Fatalf("a raw disk declared qcow2: %v", f)
	}
	if a.known(t, "bad3") {
		t.Fatalf("a refused vm.cfg was registered")
	}

	// An agent whose QEMU is missing refuses to start an operating
	// system, naming what to install or set, and runs nothing.
	noq := qemuAgent(t, "127.0.0.3", false, "binary = /nonexistent/qemu-system-x86_64")
	v4 := guestVM{Name: "bad4"}
	noq.call(t, "domain.create", nil, v4.cfg(t))
	if f := noq.fault(t, "domain.start", "bad4"); f == nil || !strings.Contains(f.Message, "/nonexistent/qemu-system-x86_64") {
		t.Fatalf("a missing QEMU: %v", f)
	}
	if in := noq.info(t, "bad4"); in.State != "stopped" || in.PID != 0 {
		t.Fatalf("after a missing QEMU: %+v", in)
	}
}

// TestQEMUStuckQMP: a QEMU that stops answering QMP (stopped with
// SIGSTOP here) is killed by its VMM after the command timeout, and the
// domain ends as crashed with that reason (on_crash = 'destroy': it stays
// stopped), instead of hanging the agent's calls.
func TestQEMUStuckQMP(t *testing.T) {
	timed(t)
	a := qemuAgent(t, "127.0.0.2", false)
	startGuest(t, a, guestVM{Name: "stuck", MemcheckMiB: -1, Lines: []string{"on_crash = 'destroy'"}})
	kids := childPIDs(t, a.info(t, "stuck").PID)
	for _, pid := range kids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, pid := range kids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	in := a.waitInfoWithin(t, "stuck", "stopped after QMP went silent", 2*time.Minute, func(i qemuInfo) bool { return i.State == "stopped" })
	if in.LastExit == nil || in.LastExit.Reason != "crashed" || !strings.Contains(in.LastExit.Detail, "QMP did not answer") {
		t.Fatalf("last exit of a domain whose QEMU went silent: %+v", in.LastExit)
	}
}

// TestQEMUSharedDiskMove moves a running guest whose disk is on a
// repository both agents have mounted (shared storage), there and back:
// the disk stays where it is, each target's QEMU takes it over through
// its own mount point of the repository (the two agents mount it at
// different places: the target names the disk by its own), and the
// guest's ACPI poweroff after the move back leaves its ext4 clean.
func TestQEMUSharedDiskMove(t *testing.T) {
	timed(t)
	src, dst := qemuPair(t)
	repo, repoSrc, mp := makeRepo(t, src)
	shareRepo(t, dst, repo, repoSrc)
	if err := os.MkdirAll(filepath.Join(mp, "sharedDisk"), 0o755); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(mp, "sharedDisk", "sd.img")
	if out, err := exec.Command("cp", "--sparse=always", ext4Disk(t, 32, nil), disk).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	startGuest(t, src, guestVM{Name: "sd", MemcheckMiB: 32, Disk: disk})
	var id string
	src.call(t, "domain.migrate", &id, "sd", dst.Reloc, migrateOpts(map[string]any{"live": true}))
	if st := waitQEMUMigration(t, src, id, nil); st.Phase != "completed" {
		t.Fatalf("move with a shared disk: %+v", st)
	}
	dst.waitInfoWithin(t, "sd", "running on the target", time.Minute, func(i qemuInfo) bool { return i.State == "running" })
	dst.waitMemcheck(t, "sd", 2)
	cfgBytes, err := os.ReadFile(filepath.Join(dst.Dir, "state", "domains", "sd", "vm.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if cfgText := string(cfgBytes); strings.Contains(cfgText, disk) {
		t.Errorf("the target's vm.cfg still names the source's mount point %s:\n%s", disk, cfgText)
	}
	dst.call(t, "domain.migrate", &id, "sd", src.Reloc, migrateOpts(map[string]any{"live": true}))
	if st := waitQEMUMigration(t, dst, id, nil); st.Phase != "completed" {
		t.Fatalf("move back with a shared disk: %+v", st)
	}
	src.waitInfoWithin(t, "sd", "running on the source again", time.Minute, func(i qemuInfo) bool { return i.State == "running" })
	src.waitMemcheck(t, "sd", 2)
	src.call(t, "domain.shutdown", nil, "sd")
	src.waitInfoWithin(t, "sd", "stopped after the ACPI shutdown", 2*time.Minute, func(i qemuInfo) bool { return i.State == "stopped" })
	e2fsckClean(t, disk)
	if n := strings.TrimSpace(diskFile(t, disk, "testguest-boots")); n != "1" {
		t.Errorf("boot counter %q on the shared disk, want 1", n)
	}
}
