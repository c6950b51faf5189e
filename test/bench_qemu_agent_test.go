package test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/qmp"
)

// The qemu engine measured against plain QEMU in the same run (make
// bench): the test guest moved live between two agents (127.0.0.2 and
// 127.0.0.3, back and forth) beside plain QEMU moving the same guest with
// the same machine and migration options over loopback; and the start
// and the ACPI shutdown of a domain beside plain QEMU's. Nothing here is
// a timed assert: the figures are reported (b.ReportMetric and a table
// on stdout), the ratios are what the issue reads.

// agentQEMUMig is migration.status of a qemu domain's move with the
// figures the bench reports.
type agentQEMUMig struct {
	Phase       string  `xmlrpc:"phase"`
	Round       int     `xmlrpc:"round"`
	BytesSent   int64   `xmlrpc:"bytes_sent"`
	Total       float64 `xmlrpc:"total_seconds"`
	Transfer    float64 `xmlrpc:"transfer_seconds"`
	DowntimeMs  float64 `xmlrpc:"downtime_ms"`
	StopCopyMs  float64 `xmlrpc:"stop_copy_ms"`
	VerifyMs    float64 `xmlrpc:"verify_ms"`
	ResumeMs    float64 `xmlrpc:"resume_ms"`
	RAMCheckMs  float64 `xmlrpc:"ram_check_ms"`
	MendedPages int     `xmlrpc:"mended_pages"`
	MaxThrottle int     `xmlrpc:"max_throttle_percent"`
	Error       string  `xmlrpc:"error"`
}

// agentMove is one move of the guest between the two agents, and what
// the memory checker said on the target after it.
type agentMove struct {
	agentQEMUMig
	Corrupt int
	// Failed is the error of a move that did not complete (the guest
	// stays on its source and runs on there).
	Failed string
	// Phases are the phases the bench saw the move in, and when.
	Phases []phaseSeen
}

// agentSide is the test guest as a qemu domain of two agents (127.0.0.2
// and 127.0.0.3) that BenchmarkQEMUMigration moves back and forth. After
// each move the target's checker must print two more OK lines (a guest
// that never does ends the bench: the RAM check exists so that it does);
// CORRUPT lines are counted.
type agentSide struct {
	b        *testing.B
	name     string
	from, to *Agent // where the guest runs, where it goes next
}

// newAgentSide starts the guest on the agent on 127.0.0.2 and waits for
// three OK lines of its memory checker, as plain QEMU's boot does.
func newAgentSide(b *testing.B, memMiB, memcheckMiB int) *agentSide {
	src, dst := qemuPair(b)
	a := &agentSide{b: b, name: "qbench", from: src, to: dst}
	startGuest(b, src, guestVM{Name: a.name, MemMiB: memMiB, MemcheckMiB: memcheckMiB})
	src.waitMemcheck(b, a.name, 1)
	return a
}

// pause pauses the guest while the other side moves its own.
func (a *agentSide) pause() {
	a.from.call(a.b, "domain.pause", nil, a.name)
	a.from.waitInfoWithin(a.b, a.name, "paused", time.Minute, func(i qemuInfo) bool { return i.State == "paused" })
}

// resume unpauses it and waits for two more OK lines of its checker.
func (a *agentSide) resume() {
	a.from.call(a.b, "domain.unpause", nil, a.name)
	seen := countFrom(a.from.consoleLines(a.b, a.name), "", "OK memcheck")
	waitConsoleOK(a.b, a.from, a.name, seen+2)
}

// move moves the guest live to the other agent.
func (a *agentSide) move(i int) agentMove {
	b := a.b
	var id string
	t0 := time.Now()
	a.from.call(b, "domain.migrate", &id, a.name, a.to.Reloc, migrateOpts(map[string]any{"live": true}))
	st, seen := waitAgentQEMUMigration(b, a.from, id, t0)
	if st.Phase != "completed" {
		// Counted, not fatal: a failed move is one of the figures. The
		// guest must run on where it was.
		b.Logf("qemu engine move %d of %s (%s to %s) %s: %s", i+1, a.name, a.from.Reloc, a.to.Reloc, st.Phase, st.Error)
		a.from.waitInfoWithin(b, a.name, "running on its source after the failed move", time.Minute, func(i qemuInfo) bool { return i.State == "running" })
		ok := countFrom(a.from.consoleLines(b, a.name), "", "OK memcheck")
		return agentMove{agentQEMUMig: st, Phases: seen, Failed: st.Phase + ": " + st.Error, Corrupt: waitConsoleOK(b, a.from, a.name, ok+2)}
	}
	a.to.waitInfoWithin(b, a.name, "running on the target", time.Minute, func(i qemuInfo) bool { return i.State == "running" })
	m := agentMove{agentQEMUMig: st, Phases: seen, Corrupt: waitConsoleOK(b, a.to, a.name, 2)}
	if m.Corrupt > 0 {
		b.Logf("qemu engine move %d: %d CORRUPT lines on the target\n%s", i+1, m.Corrupt, strings.Join(a.to.consoleLines(b, a.name), "\n"))
	}
	a.from, a.to = a.to, a.from
	return m
}

// close destroys the guest.
func (a *agentSide) close() { a.from.call(a.b, "domain.destroy", nil, a.name) }

// phaseSeen is when the bench first saw a migration in a phase, in
// seconds after its domain.migrate call.
type phaseSeen struct {
	phase string
	at    float64
}

// waitAgentQEMUMigration polls migration.status every 50 ms until the
// move ends (at most 5 minutes) and notes when it first saw each phase,
// t0 being the domain.migrate call. The figures it returns are the
// agent's own: the poll times nothing but the phases (to within a poll).
func waitAgentQEMUMigration(b *testing.B, a *Agent, id string, t0 time.Time) (agentQEMUMig, []phaseSeen) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	var seen []phaseSeen
	for {
		var st agentQEMUMig
		a.call(b, "migration.status", &st, id)
		if len(seen) == 0 || seen[len(seen)-1].phase != st.Phase {
			seen = append(seen, phaseSeen{st.Phase, time.Since(t0).Seconds()})
		}
		switch st.Phase {
		case "completed", "failed", "cancelled":
			return st, seen
		}
		if time.Now().After(deadline) {
			b.Fatalf("migration %s did not end within 5 minutes: %+v", id, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitConsoleOK waits until the domain's console shows n OK lines of the
// memory checker (a VMM's console starts empty: on a move's target every
// line is from after the move) and counts its CORRUPT lines; a kernel
// oops or panic ends the bench at once (the RAM check is there so that
// none happens).
func waitConsoleOK(b *testing.B, a *Agent, name string, n int) int {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		lines := a.consoleLines(b, name)
		corrupt := 0
		for _, l := range lines {
			switch {
			case strings.HasPrefix(l, "CORRUPT memcheck"):
				corrupt++
			case strings.Contains(l, "Kernel panic") || strings.Contains(l, "BUG:") || strings.Contains(l, "Oops"):
				b.Fatalf("%s: the guest broke on the target after the move: %s; console:\n%s", name, strings.TrimSpace(l), strings.Join(lines, "\n"))
			}
		}
		if countFrom(lines, "", "OK memcheck") >= n {
			return corrupt
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: not %d OK lines of the memory checker within 2 minutes; console:\n%s", name, n, strings.Join(lines, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// migrationComparison is the means of both sides of one size.
type migrationComparison struct {
	size                                  string
	moves, plainMoves                     int
	total, transfer, down, ramcheck       float64 // s, s, ms, ms
	stopCopy, verify, resume              float64 // ms
	plainTotal, plainQEMUTotal, plainDown float64 // s, s, ms
	plainQEMUDown                         float64 // ms
	mendedMoves, mendedPages, maxMended   int
	corruptMoves, plainBad, failedMoves   int
	load                                  string // the load average before and after, as /proc/loadavg says
	// Medians of the totals and downtimes (s, ms): one move slowed by
	// another process weighs less on them than on the means.
	medTotal, medPlainTotal, medDown, medPlainDown float64
}

// median is the middle value of xs (the mean of the two middle ones for
// an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func compareMigrations(size string, agent []agentMove, plain []plainMove) migrationComparison {
	c := migrationComparison{size: size, plainMoves: len(plain)}
	var done []agentMove
	for _, m := range agent {
		if m.Failed != "" {
			c.failedMoves++
			continue
		}
		done = append(done, m)
	}
	agent = done
	c.moves = len(agent)
	for _, m := range agent {
		c.total += m.Total
		c.transfer += m.Transfer
		c.down += m.DowntimeMs
		c.ramcheck += m.RAMCheckMs
		c.stopCopy += m.StopCopyMs
		c.verify += m.VerifyMs
		c.resume += m.ResumeMs
		if m.MendedPages > 0 {
			c.mendedMoves++
		}
		c.mendedPages += m.MendedPages
		c.maxMended = max(c.maxMended, m.MendedPages)
		if m.Corrupt > 0 {
			c.corruptMoves++
		}
	}
	var tot, down, ptot, pdown []float64
	for _, m := range agent {
		tot, down = append(tot, m.Total), append(down, m.DowntimeMs)
	}
	for _, m := range plain {
		ptot, pdown = append(ptot, m.Total.Seconds()), append(pdown, ms(m.GuestDown))
	}
	c.medTotal, c.medDown, c.medPlainTotal, c.medPlainDown = median(tot), median(down), median(ptot), median(pdown)
	n := float64(len(agent))
	c.total, c.transfer, c.down, c.ramcheck = c.total/n, c.transfer/n, c.down/n, c.ramcheck/n
	c.stopCopy, c.verify, c.resume = c.stopCopy/n, c.verify/n, c.resume/n
	for _, m := range plain {
		c.plainTotal += m.Total.Seconds()
		c.plainQEMUTotal += m.QEMUTotal.Seconds()
		c.plainDown += ms(m.GuestDown)
		c.plainQEMUDown += ms(m.QEMUDown)
		if m.Corrupt > 0 || m.Broken != "" {
			c.plainBad++
		}
	}
	p := float64(len(plain))
	c.plainTotal, c.plainQEMUTotal, c.plainDown, c.plainQEMUDown = c.plainTotal/p, c.plainQEMUTotal/p, c.plainDown/p, c.plainQEMUDown/p
	return c
}

func (c migrationComparison) report(b *testing.B) {
	b.ReportMetric(c.total, "s-total")
	b.ReportMetric(c.plainTotal, "plain-s-total")
	b.ReportMetric(c.total/c.plainTotal, "total-ratio")
	b.ReportMetric(c.transfer, "s-transfer")
	b.ReportMetric(c.plainQEMUTotal, "plain-s-qemu-total")
	b.ReportMetric(c.down, "downtime-ms")
	b.ReportMetric(c.plainDown, "plain-downtime-ms")
	b.ReportMetric(c.down/c.plainDown, "downtime-ratio")
	b.ReportMetric(c.medTotal/c.medPlainTotal, "total-ratio-median")
	b.ReportMetric(c.medDown/c.medPlainDown, "downtime-ratio-median")
	b.ReportMetric(c.ramcheck, "ramcheck-ms")
	b.ReportMetric(c.down-c.ramcheck, "downtime-sans-ramcheck-ms")
	b.ReportMetric(float64(c.mendedMoves), "mended-moves")
	b.ReportMetric(float64(c.mendedPages), "mended-pages")
	b.ReportMetric(float64(c.corruptMoves), "corrupt-moves")
	b.ReportMetric(float64(c.failedMoves), "failed-moves")
	b.ReportMetric(float64(c.plainBad), "plain-bad-moves")
}

// printMigrationTable prints each move of both sides and the comparison
// (on stdout: the testing package keeps only ten lines of a benchmark's
// log).
func printMigrationTable(c migrationComparison, agent []agentMove, plain []plainMove) {
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "move\tside\ttotal s\tstream s\tdowntime ms\tQEMU downtime ms\tRAM check ms\tmended pages\tverify ms\tresume ms\trounds\tMiB sent\tCORRUPT lines\t guest after")
	for i, m := range agent {
		if m.Failed != "" {
			fmt.Fprintf(w, "%d\tengine\t%.3f\t-\t-\t-\t%.1f\t%d\t-\t-\t%d\t%.1f\t%d\t %s\n", i+1, m.Total, m.RAMCheckMs, m.MendedPages, m.Round, float64(m.BytesSent)/(1<<20), m.Corrupt, m.Failed)
			continue
		}
		fmt.Fprintf(w, "%d\tengine\t%.3f\t%.3f\t%.1f\t%.1f\t%.1f\t%d\t%.1f\t%.1f\t%d\t%.1f\t%d\t %s\n", i+1, m.Total, m.Transfer, m.DowntimeMs,
			m.StopCopyMs-m.RAMCheckMs, m.RAMCheckMs, m.MendedPages, m.VerifyMs, m.ResumeMs, m.Round, float64(m.BytesSent)/(1<<20), m.Corrupt, guestAfter(m.Corrupt, ""))
	}
	for i, m := range plain {
		fmt.Fprintf(w, "%d\tplain\t%.3f\t%.3f\t%.1f\t%.1f\t-\t-\t-\t-\t%d\t%.1f\t%d\t %s\n", i+1, m.Total.Seconds(), m.QEMUTotal.Seconds(), ms(m.GuestDown),
			ms(m.QEMUDown), m.Rounds, float64(m.Transferred)/(1<<20), m.Corrupt, guestAfter(m.Corrupt, m.Broken))
	}
	w.Flush()
	sb.WriteString("  engine phases first seen, seconds after the domain.migrate call (polled every 50 ms):\n")
	for i, m := range agent {
		fmt.Fprintf(&sb, "    move %d:", i+1)
		for _, p := range m.Phases {
			fmt.Fprintf(&sb, " %s %.2f", p.phase, p.at)
		}
		sb.WriteString("\n")
	}
	fmt.Printf("qemu engine vs plain QEMU, %s guest, live moves with the memory checker running (load average %s; engine: total from the domain.migrate call, stream and downtime as migration.status says, the RAM check part of both; plain: total from the target QEMU's start to its cont, stream QEMU's total-time, downtime from the source's STOP to the target's RESUME event):\n%s"+
		"means: total %.3f s vs %.3f s (ratio %.3f), downtime %.1f ms vs %.1f ms (ratio %.2f); medians: total %.3f s vs %.3f s (ratio %.3f), downtime %.1f ms vs %.1f ms (ratio %.2f);\nRAM check %.1f ms of the engine's downtime (%.0f%%), downtime without it %.1f ms;\n"+
		"pages mended in %d of %d moves (%d pages, at most %d in one); engine moves with CORRUPT lines: %d; engine moves that failed (left out of the means): %d; plain moves that left the guest corrupt or broken: %d of %d\n",
		c.size, c.load, sb.String(), c.total, c.plainTotal, c.total/c.plainTotal, c.down, c.plainDown, c.down/c.plainDown,
		c.medTotal, c.medPlainTotal, c.medTotal/c.medPlainTotal, c.medDown, c.medPlainDown, c.medDown/c.medPlainDown,
		c.ramcheck, 100*c.ramcheck/c.down, c.down-c.ramcheck, c.mendedMoves, c.moves, c.mendedPages, c.maxMended, c.corruptMoves, c.failedMoves, c.plainBad, c.plainMoves)
}

// guestAfter says what became of the guest on a move's target.
func guestAfter(corrupt int, broken string) string {
	switch {
	case broken != "":
		return "broken: " + broken
	case corrupt > 0:
		return "corrupt"
	}
	return "ok"
}

// loadAverage is the host's 1, 5 and 15 minute load averages: the bench
// shares two cores with whatever else runs, and its figures are read
// against that.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// BenchmarkQEMUMigration moves the test guest live, 256 MiB and 1 GiB,
// memory checker running, OVS_QEMU_BENCH_MOVES times (default 3) on plain
// QEMU and as often between two agents, and reports both and their
// ratios. The two guests run side by side and their moves take turns
// (the one first in a turn alternates), the other guest paused meanwhile:
// this host's cores are shared, and a load that comes and goes then
// weighs on both sides alike.
func BenchmarkQEMUMigration(b *testing.B) {
	for _, sz := range qemuBenchSizes {
		b.Run(sz.name, func(b *testing.B) {
			var agent []agentMove
			var plain []plainMove
			before := loadAverage()
			for i := 0; i < b.N; i++ {
				p := newPlainSide(b, sz.memMiB, sz.memcheckMiB)
				p.pause()
				e := newAgentSide(b, sz.memMiB, sz.memcheckMiB)
				e.pause()
				plainTurn := func(j int) {
					p.resume()
					p.move(j)
					p.pause()
				}
				engineTurn := func(j int) {
					e.resume()
					agent = append(agent, e.move(j))
					e.pause()
				}
				for j := 0; j < qemuBenchMoves(b); j++ {
					if j%2 == 0 {
						plainTurn(j)
						engineTurn(j)
					} else {
						engineTurn(j)
						plainTurn(j)
					}
				}
				p.resume() // what became of the guest after its last move
				plain = append(plain, p.moves...)
				p.close()
				e.close()
			}
			c := compareMigrations(sz.name, agent, plain)
			c.load = before + " before, " + loadAverage() + " after"
			printMigrationTable(c, agent, plain)
			c.report(b)
		})
	}
}

// bootFigures are one boot of the test guest and its ACPI shutdown.
type bootFigures struct {
	first, ready, shutdown time.Duration
}

// bootPlain boots the test guest on plain QEMU to its READY line and
// presses the power button over QMP: QEMU's start to its first console
// line and to READY, and the button to QEMU's exit.
func bootPlain(b *testing.B) bootFigures {
	var f bootFigures
	q := startPlainQEMU(b, plainArgs(b, 256, 32)...)
	q.waitFor(b, "TESTGUEST READY", qemuBoot, func(l []string, _ []qmp.Event) bool {
		return countFrom(l, "TESTGUEST READY", "") >= 0
	})
	f.ready = time.Since(q.start)
	q.mu.Lock()
	f.first = q.first.Sub(q.start)
	q.mu.Unlock()
	pressed := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := q.qc.SystemPowerdown(ctx); err != nil {
		b.Fatal(err)
	}
	select {
	case <-q.exited:
	case <-time.After(2 * time.Minute):
		b.Fatal("QEMU still running 2 minutes after the power button")
	}
	f.shutdown = time.Since(pressed)
	if !q.cmd.ProcessState.Success() {
		b.Fatalf("QEMU after the guest powered off: %v", q.cmd.ProcessState)
	}
	return f
}

// bootEngine creates the test guest as the domain name on a (a new one
// each boot: a stopped domain's console shows its last run), starts it
// and polls domain.console every 50 ms: domain.start's call to the first
// console line and to READY; then domain.shutdown's call to domain.info
// saying stopped (polled every 50 ms). The domain is deleted after.
func bootEngine(b *testing.B, a *Agent, name string) bootFigures {
	var f bootFigures
	a.call(b, "domain.create", nil, guestVM{Name: name}.cfg(b))
	defer a.call(b, "domain.delete", nil, name)
	t0 := time.Now()
	a.call(b, "domain.start", nil, name)
	deadline := t0.Add(qemuBoot)
	for {
		lines := a.consoleLines(b, name)
		if f.first == 0 && strings.TrimSpace(strings.Join(lines, "")) != "" {
			f.first = time.Since(t0)
		}
		if countFrom(lines, "TESTGUEST READY", "") >= 0 {
			f.ready = time.Since(t0)
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: no READY line within %v of domain.start; console:\n%s", name, qemuBoot, strings.Join(lines, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t1 := time.Now()
	a.call(b, "domain.shutdown", nil, name)
	deadline = t1.Add(2 * time.Minute)
	for {
		in := a.info(b, name)
		if in.State == "stopped" {
			f.shutdown = time.Since(t1)
			if in.LastExit == nil || in.LastExit.Reason != "shutdown" {
				b.Fatalf("%s stopped after domain.shutdown with last exit %+v, want shutdown", name, in.LastExit)
			}
			return f
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s still %s 2 minutes after domain.shutdown", name, in.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkQEMUBoot boots the test guest (256 MiB, memory checker on
// 32 MiB) and shuts it down by ACPI, OVS_QEMU_BENCH_MOVES times on plain
// QEMU and as often as a qemu domain of an agent, in turns.
func BenchmarkQEMUBoot(b *testing.B) {
	a := qemuAgent(b, "127.0.0.2", false)
	var plain, engine []bootFigures
	before := loadAverage()
	for i := 0; i < b.N; i++ {
		for j := 0; j < qemuBenchMoves(b); j++ {
			plain = append(plain, bootPlain(b))
			engine = append(engine, bootEngine(b, a, fmt.Sprintf("qboot%d-%d", i, j)))
		}
	}
	mean := func(fs []bootFigures) bootFigures {
		var m bootFigures
		for _, f := range fs {
			m.first += f.first
			m.ready += f.ready
			m.shutdown += f.shutdown
		}
		n := time.Duration(len(fs))
		return bootFigures{m.first / n, m.ready / n, m.shutdown / n}
	}
	p, e := mean(plain), mean(engine)
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "boot\tside\tfirst line s\tREADY s\tACPI shutdown s\t")
	for i := range plain {
		fmt.Fprintf(w, "%d\tplain\t%.3f\t%.3f\t%.3f\t\n", i+1, plain[i].first.Seconds(), plain[i].ready.Seconds(), plain[i].shutdown.Seconds())
		fmt.Fprintf(w, "%d\tengine\t%.3f\t%.3f\t%.3f\t\n", i+1, engine[i].first.Seconds(), engine[i].ready.Seconds(), engine[i].shutdown.Seconds())
	}
	w.Flush()
	fmt.Printf("qemu engine vs plain QEMU, boot of the test guest (plain: QEMU's start; engine: the domain.start call) and ACPI shutdown (plain: the button over QMP to QEMU's exit; engine: the domain.shutdown call to state stopped); load average %s:\n%s"+
		"means: READY %.3f s vs %.3f s (ratio %.3f), ACPI shutdown %.3f s vs %.3f s\n",
		before+" before, "+loadAverage()+" after", sb.String(), e.ready.Seconds(), p.ready.Seconds(), e.ready.Seconds()/p.ready.Seconds(), e.shutdown.Seconds(), p.shutdown.Seconds())
	b.ReportMetric(e.first.Seconds(), "s-first-line")
	b.ReportMetric(e.ready.Seconds(), "s-ready")
	b.ReportMetric(e.shutdown.Seconds(), "s-acpi-shutdown")
	b.ReportMetric(p.first.Seconds(), "plain-s-first-line")
	b.ReportMetric(p.ready.Seconds(), "plain-s-ready")
	b.ReportMetric(p.shutdown.Seconds(), "plain-s-acpi-shutdown")
	b.ReportMetric(e.ready.Seconds()/p.ready.Seconds(), "ready-ratio")
}
