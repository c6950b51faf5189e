package vmm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
	"github.com/ovs-agent/ovs-agent/vmm/qemu"
	"github.com/ovs-agent/ovs-agent/vmm/ramcheck"
)

// The qemu engine's image is QEMU's own migration stream, framed by ours.
// A live migration over the first connection the agent handed over
// (source → target, unless marked ←):
//
//	source                                          target
//	  |--- image header (qemu.SaveHeader: ID, ------->|  read exactly, before
//	  |    vm.cfg, memory, QEMU version, machine)      |  QEMU gets the socket
//	  |--- QEMU's stream (migrate fd:) -------------->|  migrate-incoming fd:
//	  |    (source paused at its end: postmigrate)     |  (loaded, paused)
//	  |<-- RAM check (ramcheck: the target first) -----|
//	  |--- chunks that differ ----------------------->|  written into its RAM
//	  |<-- verdict ------------------------------------|
//	  then the runtime's two-phase commit (pagexfer's Verified, Commit,
//	  Resumed) on the same connection.
//
// A RAM check that fails (too many differences, a chunk still different,
// the source's RAM moving) fails the send and the receive: the target is
// discarded and the source resumed. The image's Totals, which the commit
// messages carry and compare, name the RAM the check compared (its bytes
// and 4 KiB pages, one round): both sides know them once the check
// passed.
//
// A save image is the header followed by QEMU's stream (qemu.Save) with
// the guest stopped: no RAM check, since a stopped copy has not been seen
// to lose pages.

// sendState is what a send left for ResumeSource.
type sendState struct {
	sent bool
}

// qemuTotals are the Totals of an image whose RAM check compared ram
// bytes.
func qemuTotals(ram uint64) pagexfer.Totals {
	return pagexfer.Totals{Rounds: 1, DataPages: ram / ramcheck.PageSize, Bytes: ram}
}

// CheckSend: QEMU's stream goes as QEMU writes it, on one connection.
func (e *qemuEngine) CheckSend(o SendOptions) (SendOptions, error) {
	switch o.Compress {
	case "", "none", "auto":
		o.Compress = "none"
		return o, nil
	}
	return o, fmt.Errorf("compression %q: the qemu engine sends QEMU's own migration stream uncompressed; ask for none or auto", o.Compress)
}

// header is the image header of this engine's guest.
func (e *qemuEngine) header(m *qemu.Machine, id pagexfer.ID, config string) qemu.SaveHeader {
	e.mu.Lock()
	v := e.version
	e.mu.Unlock()
	h := qemu.SaveHeader{Config: config, MemoryBytes: e.ram, QEMUVersion: fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro), Machine: m.Facts().Machine}
	if !id.IsZero() {
		h.ID = id.String()
	}
	return h
}

// figuresTo writes QEMU's figures into a status.
func figuresTo(st *control.MigrationStatus, f qemu.Figures) {
	st.Round, st.BytesSent, st.BytesRemaining = f.Rounds, f.Transferred, f.Remaining
	st.DataPages, st.ZeroPages = f.DataPages, f.ZeroPages
	st.Throughput, st.DirtyRate, st.ExpectedDowntime = f.Throughput, f.DirtyRate, f.ExpectedDowntime
	st.Throttle = f.Throttle
	if f.MaxThrottle > st.MaxThrottle {
		st.MaxThrottle = f.MaxThrottle
	}
	st.Elapsed = f.TotalTime
	st.Compression = "none"
	st.Streams = 1
}

// phaseOfQEMU maps QEMU's migration status onto the runtime's phases.
func phaseOfQEMU(f qemu.Figures) control.Phase {
	switch f.Status {
	case "active":
		if f.Rounds > 1 && f.Remaining < 1<<20 {
			return control.PhaseStopCopy
		}
		return control.PhasePrecopy
	case "device", "pre-switchover":
		return control.PhaseStopCopy
	case "completed":
		return control.PhaseSent
	}
	return control.PhaseSetup
}

// connFile is a descriptor of c's socket for QEMU (a dup: closing it
// leaves c open).
func connFile(c net.Conn) (*os.File, error) {
	fc, ok := c.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, fmt.Errorf("the migration connection (%T) has no descriptor to hand QEMU", c)
	}
	return fc.File()
}

func (e *qemuEngine) Send(ctx context.Context, streams []net.Conn, o SendOptions, progress func(Progress)) (Sent, error) {
	sent := Sent{Figures: func(*control.MigrationStatus) {}}
	m := e.machine()
	if m == nil {
		return sent, errNoMachine("send")
	}
	if len(streams) == 0 {
		return sent, errors.New("send: no connection")
	}
	conn := streams[0]
	e.exclusive() // no dirty-rate sampling during the move
	defer e.measuring.Unlock()
	id := o.ID
	if id.IsZero() {
		var err error
		if id, err = pagexfer.NewID(); err != nil {
			return sent, err
		}
	}
	sent.ID = id
	f, err := connFile(conn)
	if err != nil {
		return sent, err
	}
	defer f.Close()
	wasRunning := !o.AlreadyPaused
	fail := func(err error) (Sent, error) {
		if wasRunning {
			if rerr := qemu.Resume(m.QMP()); rerr != nil {
				err = errors.Join(err, fmt.Errorf("resume the guest: %w", rerr))
			}
		}
		return sent, err
	}
	if o.ProgressTimeout > 0 {
		conn.SetWriteDeadline(time.Now().Add(o.ProgressTimeout))
	}
	if err := qemu.WriteSaveHeader(conn, e.header(m, id, o.Config)); err != nil {
		return fail(fmt.Errorf("send the image header: %w", err))
	}
	conn.SetWriteDeadline(time.Time{})
	if !o.Live && !o.AlreadyPaused {
		if err := m.Pause(); err != nil {
			return fail(fmt.Errorf("pause the guest: %w", err))
		}
	}
	mo := qemu.MigrateOptions{RateLimit: o.RateLimit, MaxDowntime: o.MaxDowntime, AutoConverge: true}
	var fig qemu.Figures
	report := func(f qemu.Figures) {
		fig = f
		progress(Progress{Phase: phaseOfQEMU(f), Figures: func(st *control.MigrationStatus) { figuresTo(st, f) }})
	}
	fig, err = qemu.MigrateOut(ctx, m.QMP(), f, mo, report)
	sent.Downtime = fig.Downtime
	final := fig
	sent.Figures = func(st *control.MigrationStatus) {
		figuresTo(st, final)
		st.Total, st.Downtime = final.TotalTime, final.Downtime
	}
	if err != nil {
		// MigrateOut gave the guest back if it ran; a paused one stays.
		if !o.Live && wasRunning {
			return fail(err)
		}
		return sent, err
	}
	res, err := e.checkSource(ctx, m, conn)
	sent.Figures = func(st *control.MigrationStatus) {
		figuresTo(st, final)
		st.Total, st.Downtime = final.TotalTime+res.Duration, final.Downtime+res.Duration
		st.RAMCheck, st.MendedPages = res.Duration, res.DifferentPages
	}
	sent.Downtime += res.Duration
	if err != nil {
		return fail(fmt.Errorf("RAM check: %w", err))
	}
	sent.Totals = qemuTotals(e.ram)
	e.mu.Lock()
	e.last = &sendState{sent: true}
	e.mu.Unlock()
	return sent, nil
}

// checkSource runs the source's side of the RAM check over conn.
func (e *qemuEngine) checkSource(ctx context.Context, m *qemu.Machine, conn net.Conn) (ramcheck.Result, error) {
	ram, err := ramcheck.Map(m.MemoryFile(), e.ram, false)
	if err != nil {
		return ramcheck.Result{}, err
	}
	defer ram.Close()
	return ramcheck.Source(ctx, conn, ram.Bytes(), ramcheck.Options{})
}

func (e *qemuEngine) Save(ctx context.Context, f *os.File, o SendOptions, progress func(Progress)) (Sent, error) {
	sent := Sent{Figures: func(*control.MigrationStatus) {}}
	m := e.machine()
	if m == nil {
		return sent, errNoMachine("save")
	}
	fig, err := qemu.Save(ctx, m.QMP(), f, e.header(m, o.ID, o.Config), func(f qemu.Figures) {
		progress(Progress{Phase: phaseOfQEMU(f), Figures: func(st *control.MigrationStatus) { figuresTo(st, f) }})
	})
	sent.ID, sent.Downtime = o.ID, fig.Downtime
	sent.Figures = func(st *control.MigrationStatus) {
		figuresTo(st, fig)
		st.Total, st.Downtime = fig.TotalTime, fig.Downtime
	}
	if err != nil {
		return sent, err
	}
	sent.Totals = qemuTotals(e.ram)
	e.mu.Lock()
	e.last = &sendState{sent: true}
	e.mu.Unlock()
	return sent, nil
}

func (e *qemuEngine) ResumeSource() error {
	m := e.machine()
	if m == nil {
		return errNoMachine("resume")
	}
	return qemu.Resume(m.QMP())
}

// checkHeader refuses an image that is not this domain's guest.
func (e *qemuEngine) checkHeader(h qemu.SaveHeader) error {
	if h.MemoryBytes != e.ram {
		return fmt.Errorf("the image holds %d MiB of RAM; the domain has %d MiB (its maxmem)", h.MemoryBytes>>20, e.ram>>20)
	}
	return nil
}

func (e *qemuEngine) Receive(ctx context.Context, first net.Conn, more func(context.Context) (net.Conn, error), o ReceiveOptions) (Received, error) {
	rec := Received{Figures: func(*control.MigrationStatus) {}}
	if o.ProgressTimeout > 0 {
		first.SetReadDeadline(time.Now().Add(o.ProgressTimeout))
	}
	h, err := qemu.ReadSaveHeader(first)
	first.SetReadDeadline(time.Time{})
	if err != nil {
		return rec, fmt.Errorf("receive: %w", err)
	}
	if h.ID != "" {
		if rec.ID, err = pagexfer.ParseID(h.ID); err != nil {
			return rec, fmt.Errorf("receive: image header: %w", err)
		}
	}
	if err := e.checkHeader(h); err != nil {
		return rec, fmt.Errorf("receive: %w", err)
	}
	m, err := e.launch(launchAs{incoming: true, machine: h.Machine, tapID: e.cfg.UUID + "/" + h.ID})
	if err != nil {
		return rec, err
	}
	fail := func(err error) (Received, error) {
		_ = m.Kill()
		e.removeTaps()
		return rec, err
	}
	f, err := connFile(first)
	if err != nil {
		return fail(err)
	}
	wctx, stopWatch := watchReceived(ctx, first, o.ProgressTimeout)
	err = qemu.MigrateIn(wctx, m.QMP(), f)
	stopWatch()
	f.Close()
	if err != nil {
		if cause := context.Cause(wctx); errors.As(cause, new(errNoProgress)) {
			err = cause
		}
		return fail(fmt.Errorf("receive: %w", err))
	}
	ram, err := ramcheck.Map(m.MemoryFile(), e.ram, true)
	if err != nil {
		return fail(fmt.Errorf("receive: RAM check: %w", err))
	}
	res, err := ramcheck.Target(ctx, first, ram.Bytes(), ramcheck.Options{})
	ram.Close()
	rec.Figures = func(st *control.MigrationStatus) {
		st.Streams, st.Compression = 1, "none"
		st.RAMCheck, st.MendedPages = res.Duration, res.DifferentPages
	}
	if err != nil {
		return fail(fmt.Errorf("receive: RAM check: %w", err))
	}
	rec.Totals = qemuTotals(e.ram)
	return rec, nil
}

func (e *qemuEngine) Restore(ctx context.Context, f *os.File) error {
	h, err := qemu.ReadSaveHeader(f)
	if err != nil {
		return fmt.Errorf("restore %s: %w", f.Name(), err)
	}
	if err := e.checkHeader(h); err != nil {
		return fmt.Errorf("restore %s: %w", f.Name(), err)
	}
	m, err := e.launch(launchAs{incoming: true, machine: h.Machine})
	if err != nil {
		return err
	}
	if err := qemu.Restore(ctx, m.QMP(), f); err != nil {
		_ = m.Kill()
		e.removeTaps()
		return err
	}
	return nil
}

// MeasureDirty asks QEMU (calc-dirty-rate, page sampling) for the guest's
// dirty rate over one-second periods until window or ctx ends. QEMU
// samples pages and gives a rate, not the pages themselves: Dirtied sums
// rate × period, and Distinct, which a sampled rate cannot tell apart, is
// the same sum bounded by the guest's RAM.
func (e *qemuEngine) MeasureDirty(ctx context.Context, window time.Duration, sample func(DirtySample)) error {
	m := e.machine()
	if m == nil {
		return errNoMachine("measure dirty memory")
	}
	e.exclusive()
	defer e.measuring.Unlock()
	const period = time.Second
	start := time.Now()
	var dirtied uint64
	for time.Since(start) < window {
		rate, err := e.dirtyRate(ctx, m, period)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		dirtied += uint64(rate * period.Seconds())
		sample(DirtySample{At: time.Since(start), Distinct: min(dirtied, e.ram), Dirtied: dirtied})
	}
	return nil
}

// dirtyRate runs one calc-dirty-rate of period and returns bytes/s.
func (e *qemuEngine) dirtyRate(ctx context.Context, m *qemu.Machine, period time.Duration) (float64, error) {
	c := m.QMP()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Execute(cctx, "calc-dirty-rate", map[string]any{"calc-time": int(period.Seconds())}, nil); err != nil {
		return 0, fmt.Errorf("calc-dirty-rate: %w", err)
	}
	t := time.NewTimer(period)
	defer t.Stop()
	for range 50 { // bounded: 1 s, then 49 polls of 100 ms
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-t.C:
		}
		var r struct {
			Status    string `json:"status"`
			DirtyRate int64  `json:"dirty-rate"` // MiB/s
		}
		if err := c.Execute(cctx, "query-dirty-rate", nil, &r); err != nil {
			return 0, fmt.Errorf("query-dirty-rate: %w", err)
		}
		if r.Status == "measured" {
			return float64(max(r.DirtyRate, 0)) * (1 << 20), nil
		}
		t.Reset(100 * time.Millisecond)
	}
	return 0, errors.New("query-dirty-rate: QEMU did not finish measuring")
}

// fileBlocks is the allocated size of the file at path.
func fileBlocks(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return uint64(st.Blocks) * 512, nil
}
