package test

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/internal/limits"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem/hosttest"
)

// vmHWM is a process's peak resident memory, in bytes.
func vmHWM(pid int) int64 {
	return procStatus(pid)["VmHWM"]
}

type scenario struct {
	name     string
	memMiB   int
	workload string
	opts     map[string]any
	ready    func(domInfo) bool
	// anchorMiB, when set, is the random data a QEMU anchor of the
	// scenario writes into its guest before migrating it (the
	// scenario's guest has that much touched and the rest never
	// touched, its vCPU idle); 0: no anchor (see BenchmarkScenarios).
	anchorMiB int
}

// placement is where the two emulated hosts run: unpinned (the kernel
// spreads both sides over both cores, as before) or pinned, the source
// side (agent, the VMMs it starts, which inherit its affinity, and for
// the anchor the source QEMU) on CPU 0 and the target side on CPU 1.
type placement struct {
	name     string
	sub      string // in the sub-benchmark's name (short: the agents' state_dir is under a TempDir named for it, and the VMM's socket path in it must fit 107 bytes)
	src, dst string // taskset -c lists, "" for any CPU
}

var placements = []placement{{"unpinned", "any", "", ""}, {"pinned", "pin", "0", "1"}}

// limitsRun are the limits measured in the same run, the figures are
// read against.
type limitsRun struct {
	loopback, memcpy float64 // bytes/s
}

// ourMove is what one move of a scenario measured on our side.
type ourMove struct {
	total, stream, downtime float64 // s, s, ms
	srcCPU, dstCPU          float64 // s: the VMMs' CPU time
	missing                 bool    // the agent's status had no stream figures
	line                    string
}

// runScenario migrates one domain between two agents on backing, placed
// as pl, checks the guest on the target and returns the figures and the
// scenario's line (next to the limits measured in the same run).
func runScenario(b *testing.B, engine string, sc scenario, backing string, pl placement, lim limitsRun) ourMove {
	src, dst := pairB(b, engine, backing, pl)
	defer func() {
		src.Stop()
		dst.Stop()
	}()
	src.call(b, "domain.create", nil, vmcfgText("bench", sc.memMiB, sc.workload))
	src.call(b, "domain.start", nil, "bench")
	deadline := time.Now().Add(5 * time.Minute)
	for !sc.ready(src.info(b, "bench")) || !strings.Contains(src.console(b, "bench"), "HB ") {
		if time.Now().After(deadline) {
			b.Fatalf("scenario %s: the guest never got ready: %+v", sc.name, src.info(b, "bench"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := benchBacking(b, src, "bench"); got != backing {
		b.Fatalf("scenario %s: the guest runs on memory backing %q, want %s", sc.name, got, backing)
	}
	srcPID := src.info(b, "bench").PID
	if pl.src != "" {
		if got := cpusAllowed(srcPID); got != pl.src {
			b.Fatalf("scenario %s: the source VMM %d may run on CPUs %q, want %s (its agent's affinity)", sc.name, srcPID, got, pl.src)
		}
	}
	opts := migrateOpts(sc.opts)
	opts["live"] = true
	// The dry run's prediction first, to print next to what happened.
	var chk estimateRes
	src.call(b, "migration.check", &chk, "bench", dst.Reloc, opts)
	predicted := chk.NoEstimate
	if e := chk.Estimate; e != nil {
		predicted = fmt.Sprintf("predicted %.3f s, %.1f ms, %d rounds, throttle %d%% (dirty %.0f MB/s, link %.0f MB/s)",
			e.TotalSeconds, e.DowntimeMs, e.Rounds, e.MaxThrottle, e.DirtyRate/1e6, e.Bandwidth/1e6)
	}
	var id string
	srcCPU := sampleCPU(srcPID)
	src.call(b, "domain.migrate", &id, "bench", dst.Reloc, opts)
	deadline = time.Now().Add(10 * time.Minute)
	var st benchStatus
	var srcPeak int64
	for {
		st = benchStatus{}
		src.call(b, "migration.status", &st, id)
		if h := vmHWM(srcPID); h > srcPeak {
			srcPeak = h
		}
		if st.Phase == "completed" || st.Phase == "failed" || st.Phase == "cancelled" {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("scenario %s: the migration did not end: %+v", sc.name, st)
		}
		// Not faster: the polling itself (API, agent, VMM) took 8% of the
		// CPU at 20 ms. VmHWM is a high-water mark, so reading it now and
		// then loses nothing.
		time.Sleep(200 * time.Millisecond)
	}
	if st.Phase != "completed" {
		b.Fatalf("scenario %s: %+v", sc.name, st)
	}
	dstPID := dst.info(b, "bench").PID
	dstCPU := procCPU(dstPID)
	srcUsed := srcCPU()
	dstPeak := vmHWM(dstPID)
	if pl.dst != "" {
		if got := cpusAllowed(dstPID); got != pl.dst {
			b.Fatalf("scenario %s: the target VMM %d may run on CPUs %q, want %s", sc.name, dstPID, got, pl.dst)
		}
	}
	if got := benchBacking(b, dst, "bench"); got != backing {
		b.Fatalf("scenario %s: the guest landed on memory backing %q, want %s", sc.name, got, backing)
	}
	// One full verification round on the target, with no corruption.
	after := dst.info(b, "bench")
	deadline = time.Now().Add(2 * time.Minute)
	for dst.info(b, "bench").Rounds <= after.Rounds {
		if time.Now().After(deadline) {
			b.Fatalf("scenario %s: no verification round on the target", sc.name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if in := dst.info(b, "bench"); in.Corrupt != 0 || strings.Contains(dst.console(b, "bench"), "CORRUPT") {
		b.Fatalf("scenario %s: corruption after the move: %+v", sc.name, in)
	}
	// The target's memory goes back before the next move (the anchor's
	// QEMU, or the next run's guest, needs the huge pages).
	dst.call(b, "domain.destroy", nil, "bench")
	rate := float64(st.BytesSent) / st.Transfer
	line := fmt.Sprintf("total %.3f s (stream %.3f s), downtime %.1f ms (stop-copy %.1f, verify %.1f, resume %.1f; drained %.1f ms before the pause), %d rounds, %.1f MiB sent, %d zero pages, %.0f MB/s = %.2f of loopback %.0f MB/s (memcpy %.0f MB/s), max throttle %d%% for %.2f s, peak RSS source %.0f MiB target %.0f MiB, CPU source VMM %.2f s target VMM %.2f s (its start included); %s",
		st.Total, st.Transfer, st.DowntimeMs, st.StopCopyMs, st.VerifyMs, st.ResumeMs, st.DrainMs, st.Round, float64(st.BytesSent)/(1<<20), st.ZeroPages,
		rate/1e6, rate/lim.loopback, lim.loopback/1e6, lim.memcpy/1e6, st.MaxThrottle, st.Throttled, float64(srcPeak)/(1<<20), float64(dstPeak)/(1<<20), srcUsed, dstCPU, predicted)
	m := ourMove{total: st.Total, stream: st.Transfer, downtime: st.DowntimeMs, line: line, srcCPU: srcUsed, dstCPU: dstCPU}
	if st.Transfer == 0 {
		// Seen now and then: the source VMM ended before its agent read
		// the final figures; the agent says completed with zeros. The
		// move happened (the target verified), its stream and downtime
		// are unknown and left out of the medians.
		m.missing = true
		m.line += " (the move's stream figures are missing: the source VMM ended before its agent read them)"
	}
	return m
}

// procCPU is the CPU time a process has used (user and system, all its
// threads: /proc/PID/stat utime and stime), in seconds; 0 when it is gone.
func procCPU(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command (which may hold spaces) in parentheses.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(ut+st) / 100 // USER_HZ
}

// sampleCPU follows the CPU time of pid from now on, reading it every
// 20 ms (a file read, no API call) until the returned function is
// called, which returns the CPU time used since: a source VMM ends soon
// after its migration, and its last reading stands for it.
func sampleCPU(pid int) func() float64 {
	start := procCPU(pid)
	last := start
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			if c := procCPU(pid); c > 0 {
				last = c
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() float64 {
		close(stop)
		<-done
		return last - start
	}
}

// benchBacking is the memory backing domain.info says the domain runs on.
func benchBacking(b *testing.B, a *Agent, name string) string {
	var in struct {
		Backing string `xmlrpc:"memory_backing"`
	}
	a.call(b, "domain.info", &in, name)
	return in.Backing
}

// cpusAllowed is the CPU list a process may run on (its main thread's:
// /proc/PID/status Cpus_allowed_list), "" when it cannot be read.
func cpusAllowed(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == "Cpus_allowed_list" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// benchStatus is migration.status with the figures the scenarios print
// (kolo/xmlrpc does not fill embedded structs, so it is flat).
type benchStatus struct {
	Phase       string  `xmlrpc:"phase"`
	Round       int     `xmlrpc:"round"`
	BytesSent   int64   `xmlrpc:"bytes_sent"`
	ZeroPages   int64   `xmlrpc:"zero_pages"`
	Total       float64 `xmlrpc:"total_seconds"`
	Transfer    float64 `xmlrpc:"transfer_seconds"`
	DowntimeMs  float64 `xmlrpc:"downtime_ms"`
	StopCopyMs  float64 `xmlrpc:"stop_copy_ms"`
	VerifyMs    float64 `xmlrpc:"verify_ms"`
	ResumeMs    float64 `xmlrpc:"resume_ms"`
	DrainMs     float64 `xmlrpc:"drain_ms"`
	MaxThrottle int     `xmlrpc:"max_throttle_percent"`
	Throttled   float64 `xmlrpc:"throttled_seconds"`
}

func pairB(b *testing.B, engine, backing string, pl placement) (*Agent, *Agent) {
	extra := func() map[string][]string {
		return map[string][]string{"agent": {"hypervisor = " + engine, "memory_reserve = 0", "memory_backing = " + backing}}
	}
	src := startAgent(b, agentConf{Listen: "127.0.0.2", RelocPort: freePort(b, "127.0.0.2"), CPUs: pl.src, Extra: extra()})
	dst := startAgent(b, agentConf{Listen: "127.0.0.3", RelocPort: freePort(b, "127.0.0.3"), CPUs: pl.dst, Extra: extra()})
	return src, dst
}

// scenarioBackings are the memory backings the scenarios run on; the
// host is set up for each (hosttest: huge pages reserved, shmem THP
// allowed) and put back after it.
var scenarioBackings = []string{"4k", "thp", "hugetlb"}

// prepareBacking makes the host give backing to guests of memMiB on
// both sides of a move (and to the anchor's two QEMUs, which run when
// ours have gone), until b ends.
func prepareBacking(b *testing.B, backing string, memMiB int) {
	switch backing {
	case "thp":
		hosttest.ShmemTHP(b, "advise")
	case "hugetlb":
		// Source and target at once, a few pages spare.
		pages := 2*guestmem.HugePagesFor(uint64(memMiB)<<20) + 8
		hosttest.ReserveHugePages(b, pages)
		warmHugePages(b, pages)
	}
}

// warmHugePages faults in pages huge pages of the pool and lets them go
// again. Pages the pool just took from the kernel may be memory this
// virtual machine's host has taken back (free page reporting): the first
// touch of each then costs a host fault, 4-5 s per GiB measured here,
// which whichever side of the comparison ran first would pay alone. A
// host that runs hugetlb guests has its pool in use; so do the runs
// after this.
func warmHugePages(b *testing.B, pages uint64) {
	h, err := guestmem.ReadHost()
	if err != nil {
		b.Fatal(err)
	}
	pages = min(pages, h.HugeFree)
	ram, err := guestmem.NewBackedRAM("bench-warm", pages*guestmem.HugePageSize, guestmem.BackingHugeTLB)
	if err != nil {
		b.Fatal(err)
	}
	defer ram.Close()
	if err := unix.Madvise(ram.Bytes(), unix.MADV_POPULATE_WRITE); err != nil {
		b.Fatalf("fault in %d huge pages: %v", pages, err)
	}
}

// BenchmarkScenarios are the scenarios a-d (make bench):
// on the kvm engine on each memory backing, unpinned and with the two
// emulated hosts pinned to a core each, and on the sim engine on 4k
// unpinned. Each move prints one "scenario X (engine, backing,
// placement): ..." line; scenario a's lines also time the QEMU anchor,
// run in turn with ours in the same invocation (which goes first
// alternates), with the ratio. b.N moves each (-benchtime Nx); a summary
// line gives medians and the spread. Sub-benchmarks are named
// scenario/engine/backing/any|pin, for -bench to pick.
//
// The anchor is QEMU 7.2 on this machine (qemuAnchor): the scenario's
// guest shape and backing, multifd 2, placed as ours, but with no guest
// code running. Scenarios b and c need a guest that dirties memory at
// hundreds of MB/s, which QEMU cannot run here (PVM's /dev/kvm makes
// QEMU crawl, TCG is too slow to dirty at that rate), and d's anchor
// would have QEMU allocate 8 GiB on each side (it reads every page of
// the source and zeroes every page of the target): they have none.
func BenchmarkScenarios(b *testing.B) {
	if testing.Short() {
		b.Skip("long: run with make bench")
	}
	loopback, err := limits.LoopbackTCP(2 << 30)
	if err != nil {
		b.Fatal(err)
	}
	lim := limitsRun{loopback: loopback, memcpy: memcpyBandwidth()}
	touched := func(i domInfo) bool { return i.Written >= (1<<30)/4096 }
	scenarios := []scenario{
		{name: "a", memMiB: 2048, workload: "touch=1G,hot=4K,dirty=0,verify=5s", ready: touched, anchorMiB: 1024},
		{name: "b", memMiB: 2048, workload: "touch=1G,hot=256M,dirty=200M/s,verify=5s", opts: map[string]any{"max_downtime": 20}, ready: touched},
		{name: "c", memMiB: 2048, workload: "touch=512M,hot=256M,dirty=1G/s,verify=5s", opts: map[string]any{"rate": 200}, ready: func(i domInfo) bool { return i.Written >= (512<<20)/4096 }},
		{name: "d", memMiB: 8192, workload: "touch=64M,hot=4K,dirty=0,verify=5s", ready: func(i domInfo) bool { return i.Written >= (64<<20)/4096 }},
	}
	type run struct {
		engine, backing string
		pl              placement
	}
	var runs []run
	for _, backing := range scenarioBackings {
		for _, pl := range placements {
			runs = append(runs, run{"kvm", backing, pl})
		}
	}
	runs = append(runs, run{"sim", "4k", placements[0]})
	for _, sc := range scenarios {
		for _, r := range runs {
			b.Run(sc.name+"/"+r.engine+"/"+r.backing+"/"+r.pl.sub, func(b *testing.B) {
				prepareBacking(b, r.backing, sc.memMiB)
				var ours, anchor []float64
				var downs []float64
				label := fmt.Sprintf("%s, %s, %s", r.engine, r.backing, r.pl.name)
				for i := 0; i < b.N; i++ {
					var m ourMove
					var q anchorMove
					ourTurn := func() { m = runScenario(b, r.engine, sc, r.backing, r.pl, lim) }
					anchorTurn := func() { q = qemuAnchor(b, sc.memMiB, sc.anchorMiB, r.backing, r.pl) }
					switch {
					case sc.anchorMiB == 0:
						ourTurn()
					case i%2 == 0:
						ourTurn()
						anchorTurn()
					default:
						anchorTurn()
						ourTurn()
					}
					ours = append(ours, m.total)
					if !m.missing {
						downs = append(downs, m.downtime)
					}
					line := fmt.Sprintf("scenario %s (%s): %s", sc.name, label, m.line)
					if sc.anchorMiB == 0 {
						line += "; no QEMU anchor for this scenario (its guest must run: see BenchmarkScenarios)"
					} else {
						anchor = append(anchor, q.total)
						line += fmt.Sprintf("; %s: total %.3f s (QEMU's total-time %.3f s, downtime %.0f ms, %.1f MiB sent, CPU source %.2f s target %.2f s), QEMU/ours %.2fx",
							q.what, q.total, q.qemuTotal, q.downtime, float64(q.transferred)/(1<<20), q.srcCPU, q.dstCPU, q.total/m.total)
					}
					fmt.Println(line + ", load " + loadAverage())
				}
				b.ReportMetric(median(ours), "s-total")
				b.ReportMetric(median(downs), "ms-downtime")
				sum := fmt.Sprintf("scenario %s (%s) summary of %d: total median %.3f s (%s), downtime median %.1f ms (%s)",
					sc.name, label, b.N, median(ours), spread(ours, "s"), median(downs), spread(downs, "ms"))
				if len(anchor) > 0 {
					var ratios []float64
					for i := range anchor {
						ratios = append(ratios, anchor[i]/ours[i])
					}
					sum += fmt.Sprintf("; QEMU anchor median %.3f s (%s); QEMU/ours median %.2fx (%s)", median(anchor), spread(anchor, "s"), median(ratios), spread(ratios, "x"))
					b.ReportMetric(median(anchor), "qemu-s-total")
					b.ReportMetric(median(ratios), "qemu/ours")
				}
				fmt.Println(sum)
			})
		}
	}
}

// spread is the range of xs, "min-max unit".
func spread(xs []float64, unit string) string {
	if len(xs) == 0 {
		return "none"
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return fmt.Sprintf("%.3g-%.3g %s", lo, hi, unit)
}
