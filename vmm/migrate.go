package vmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
)

// How long the source VMM waits for its agent to decide after the target
// verified the image, and for the target's answers. A source whose agent
// never decides aborts: before Commit the source copy is authoritative.
var (
	decisionTimeout = 60 * time.Second
	verdictTimeout  = 5 * time.Minute
	resumedTimeout  = 30 * time.Second
	commitTimeout   = 2 * time.Minute  // target: waiting for Commit after Verified
	attachTimeout   = 30 * time.Second // target: waiting for the other streams of a parallel image
	finalTimeout    = 2 * time.Second  // source: waiting for the agent to read the completed status
)

// source adapts a machine and its RAM to pagexfer.Source.
type source struct {
	workload.Machine
	ram *guestmem.RAM
}

func (s source) Size() uint64                            { return s.ram.Size() }
func (s source) ReadAt(p []byte, off int64) (int, error) { return s.ram.ReadAt(p, off) }
func (s source) DataRanges() ([]pagexfer.Range, error) {
	rs, err := s.ram.DataRanges()
	out := make([]pagexfer.Range, len(rs))
	for i, r := range rs {
		out[i] = pagexfer.Range{Off: r.Off, Len: r.Len}
	}
	return out, err
}

// outgoing is a migration (or save) from this VMM.
type outgoing struct {
	mu     sync.Mutex
	st     control.MigrationStatus
	cancel context.CancelFunc
	decide chan string // "commit" or "abort: reason"
	where  chan bool   // after in-doubt: true = the target runs it
	// told is closed once the agent has read the completed status (with
	// the final downtime): the VMM ends only then, or after finalTimeout.
	told     chan struct{}
	tellOnce sync.Once
	// progress is the page-stream writes' progress timeout (0: none).
	progress time.Duration
}

func (o *outgoing) status() control.MigrationStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.st
}

func (o *outgoing) update(f func(*control.MigrationStatus)) {
	o.mu.Lock()
	f(&o.st)
	o.mu.Unlock()
}

func progressTo(st *control.MigrationStatus, p pagexfer.Progress) {
	switch p.Phase {
	case pagexfer.PhaseSetup:
		st.Phase = control.PhaseSetup
	case pagexfer.PhasePrecopy:
		st.Phase = control.PhasePrecopy
	case pagexfer.PhaseStopCopy:
		st.Phase = control.PhaseStopCopy
	case pagexfer.PhaseDone:
		st.Phase = control.PhaseSent
	}
	st.Round, st.BytesSent, st.BytesRemaining = p.Round, p.BytesSent, p.BytesRemaining
	st.DataPages, st.ZeroPages, st.SkippedPages = p.DataPages, p.ZeroPages, p.SkippedPages
	st.Throughput, st.DirtyRate, st.ExpectedDowntime, st.Throttle = p.Throughput, p.DirtyRate, p.ExpectedDowntime, p.Throttle
	st.Elapsed = p.Elapsed
	compressionTo(st, p.Compression)
	if p.Throttle > st.MaxThrottle {
		st.MaxThrottle = p.Throttle
	}
}

func resultTo(st *control.MigrationStatus, r pagexfer.Result) {
	st.Total, st.Downtime, st.DrainWait = r.Total, r.Downtime, r.DrainWait
	st.MaxThrottle, st.ThrottledFor = r.Throttle.Max, r.Throttle.Duration
	st.StopReason = r.Reason.String()
	st.BytesSent = r.BytesSent
	st.BytesRemaining = 0
	st.DataPages, st.ZeroPages = r.Totals.DataPages, r.Totals.ZeroPages
	st.Round = r.Rounds()
	if r.Streams > 0 {
		st.Streams = r.Streams
	}
	compressionTo(st, r.Compression)
}

func compressionTo(st *control.MigrationStatus, c pagexfer.CompressionStats) {
	st.Batches, st.CompressedBatches, st.BatchBytes, st.BatchWireBytes = c.Batches, c.Compressed, c.RawBytes, c.WireBytes
}

func (v *VMM) handleMigration(req control.Request, files []*os.File) control.Response {
	fail := func(format string, args ...any) control.Response {
		for _, f := range files {
			f.Close()
		}
		return control.Response{Error: fmt.Sprintf(format, args...)}
	}
	v.mu.Lock()
	out, in := v.out, v.in
	v.mu.Unlock()
	switch req.Op {
	case control.OpMigrateSend, control.OpSave:
		if out != nil {
			if s := out.status(); s.Phase != control.PhaseFailed && s.Phase != control.PhaseCancelled {
				return fail("a migration (%s) is already in progress", s.ID)
			}
		}
		if v.mach() == nil {
			return fail("the machine is not running")
		}
		if req.Op == control.OpSave {
			return v.startSave(req)
		}
		if len(files) < 1 || len(files) > pagexfer.MaxStreams {
			return fail("migrate-send needs 1 to %d connections, got %d", pagexfer.MaxStreams, len(files))
		}
		return v.startSend(req, files)
	case control.OpMigrateReceive:
		if v.opts.Mode != ModeIncoming || in != nil {
			return fail("this VMM is not waiting for an incoming migration")
		}
		if len(files) != 1 {
			return fail("migrate-receive needs exactly one connection, got %d", len(files))
		}
		return v.startReceive(req, files[0])
	case control.OpMigrateAttach:
		if len(files) != 1 {
			return fail("migrate-attach needs exactly one connection, got %d", len(files))
		}
		if in == nil {
			return fail("no incoming migration to attach a connection to")
		}
		return in.attach(req.Migration, files[0])
	}
	if out == nil && in != nil && req.Op == control.OpMigrateStatus {
		st := in.status()
		return control.Response{Migration: &st}
	}
	if out == nil {
		return fail("no migration in progress")
	}
	switch req.Op {
	case control.OpMigrateStatus:
		if st := out.status(); st.Phase == control.PhaseCompleted {
			return control.Response{Migration: &st, After: func() { out.tellOnce.Do(func() { close(out.told) }) }}
		}
	case control.OpMigrateCancel, control.OpMigrateAbort:
		reason := req.Reason
		if reason == "" {
			reason = "cancelled by the agent"
		}
		select {
		case out.decide <- "abort: " + reason:
		default:
		}
		out.cancel()
	case control.OpMigrateCommit:
		if s := out.status(); s.Phase != control.PhaseVerified {
			return fail("cannot commit migration %s in phase %s", s.ID, s.Phase)
		}
		select {
		case out.decide <- "commit":
		default:
			return fail("a decision was made already")
		}
	case control.OpMigrateResolve:
		if s := out.status(); s.Phase != control.PhaseInDoubt {
			return fail("migration %s is %s, not in doubt", s.ID, s.Phase)
		}
		select {
		case out.where <- req.OnTarget:
		default:
		}
	}
	st := out.status()
	return control.Response{Migration: &st}
}

func (v *VMM) newOutgoing(id string, live bool) (*outgoing, context.Context) {
	ctx, cancel := context.WithCancel(context.Background())
	o := &outgoing{cancel: cancel, decide: make(chan string, 1), where: make(chan bool, 1), told: make(chan struct{})}
	o.st = control.MigrationStatus{ID: id, Phase: control.PhaseSetup, Live: live}
	v.mu.Lock()
	v.out = o
	v.mu.Unlock()
	return o, ctx
}

func (v *VMM) sendOptions(req control.Request) (pagexfer.Options, error) {
	o := pagexfer.Options{
		Live: req.Live, Engine: v.opts.Engine, VCPUs: v.opts.VCPUs, Config: req.Config,
		MaxDowntime: req.MaxDowntime, RateLimit: float64(req.RateLimit),
	}
	c, err := pagexfer.ParseCompression(req.Compress)
	if err != nil {
		return o, err
	}
	o.Compression = c
	if req.Migration != "" {
		id, err := pagexfer.ParseID(req.Migration)
		if err != nil {
			return o, err
		}
		o.ID = id
	}
	v.mu.Lock()
	o.AlreadyPaused = v.state == control.StatePaused
	v.mu.Unlock()
	if o.AlreadyPaused {
		o.Live = false
	}
	return o, nil
}

// startSend runs a migration to the target on the other end of files:
// one connection per stream, the first one also carrying the commit.
func (v *VMM) startSend(req control.Request, files []*os.File) control.Response {
	closeFiles := func() {
		for _, f := range files {
			f.Close()
		}
	}
	opts, err := v.sendOptions(req)
	if err != nil {
		closeFiles()
		return control.Response{Error: err.Error()}
	}
	conns := make([]net.Conn, 0, len(files))
	for i, f := range files {
		c, err := net.FileConn(f)
		if err != nil {
			closeFiles()
			for _, c := range conns {
				c.Close()
			}
			return control.Response{Error: fmt.Sprintf("migration connection %d: %v", i, err)}
		}
		conns = append(conns, c)
	}
	closeFiles()
	o, ctx := v.newOutgoing(req.Migration, opts.Live)
	o.st.Target = req.Target
	o.progress = req.ProgressTimeout
	o.st.Streams, o.st.Compression = len(conns), opts.Compression.String()
	go v.send(ctx, o, conns, opts, req.Target, req.AutoCommit)
	st := o.status()
	return control.Response{Migration: &st}
}

func (v *VMM) send(ctx context.Context, o *outgoing, conns []net.Conn, opts pagexfer.Options, target string, auto bool) {
	conn := conns[0] // the commit follows the image on the first stream
	defer conn.Close()
	m := v.mach()
	src := source{Machine: m, ram: v.ram}
	wasPaused := opts.AlreadyPaused
	var res pagexfer.Result
	failed := func(phase control.Phase, err error) {
		if !wasPaused {
			_ = pagexfer.ResumeSource(src, res)
		}
		o.update(func(st *control.MigrationStatus) {
			st.Phase, st.Error = phase, err.Error()
			st.BytesRemaining = 0
		})
	}
	ws := make([]io.Writer, len(conns))
	for i, c := range conns {
		ws[i] = pagexfer.ProgressWriter(c, o.progress)
	}
	var err error
	res, err = pagexfer.SendStreams(ctx, src, ws, opts, func(p pagexfer.Progress) {
		o.update(func(st *control.MigrationStatus) { progressTo(st, p) })
	})
	// The commit exchange that follows sets its own bounds: the progress
	// deadline of the last page write must not linger on the connection.
	_ = conn.SetWriteDeadline(time.Time{})
	// The other streams end with the image: closing them after the last
	// write is an orderly end of stream for the target, and after a
	// failure it stops the target's readers.
	for _, c := range conns[1:] {
		c.Close()
	}
	o.update(func(st *control.MigrationStatus) { resultTo(st, res) })
	if err != nil {
		// Send resumed the source itself.
		phase := control.PhaseFailed
		if ctx.Err() != nil {
			phase = control.PhaseCancelled
		}
		o.update(func(st *control.MigrationStatus) { st.Phase, st.Error = phase, err.Error() })
		return
	}
	sentAt := time.Now()
	pausedAt := sentAt.Add(-res.Downtime)
	o.update(func(st *control.MigrationStatus) { st.Phase, st.StopCopy = control.PhaseSent, res.Downtime })

	// The guest is paused until the target says verified: a target that
	// stalls gets progress_timeout, then the guest resumes here.
	verdict := verdictTimeout
	if o.progress > 0 && o.progress < verdict {
		verdict = o.progress
	}
	conn.SetReadDeadline(time.Now().Add(verdict))
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	err = pagexfer.AwaitVerified(conn, res)
	stop()
	if err != nil && ctx.Err() == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("peer made no progress for %s (the target did not say verified; resumed here): %w", verdict, err)
	}
	if err != nil {
		_ = pagexfer.WriteAbort(conn, res.ID, "source: "+err.Error())
		phase := control.PhaseFailed
		if ctx.Err() != nil {
			phase = control.PhaseCancelled
		}
		failed(phase, err)
		return
	}
	o.update(func(st *control.MigrationStatus) { st.Phase, st.Verify = control.PhaseVerified, time.Since(sentAt) })

	var decision string
	if auto {
		// The agent decided up front: commit unless it cancelled
		// meanwhile. Every millisecond here is downtime.
		select {
		case decision = <-o.decide:
		default:
			decision = "commit"
		}
	} else {
		select {
		case decision = <-o.decide:
		case <-time.After(decisionTimeout):
			decision = fmt.Sprintf("abort: no decision from the agent within %s", decisionTimeout)
		}
	}
	if decision != "commit" {
		reason := decision[len("abort: "):]
		_ = pagexfer.WriteAbort(conn, res.ID, reason)
		phase := control.PhaseFailed
		if ctx.Err() != nil {
			phase = control.PhaseCancelled
		}
		failed(phase, errors.New(reason))
		return
	}
	o.update(func(st *control.MigrationStatus) { st.Phase = control.PhaseCommitting })
	conn.SetDeadline(time.Now().Add(resumedTimeout))
	committedAt := time.Now()

	if err := pagexfer.WriteCommit(conn, res.ID); err == nil {
		err = pagexfer.AwaitResumed(conn, res.ID)
		var re *pagexfer.RemoteError
		switch {
		case err == nil:
			o.update(func(st *control.MigrationStatus) { st.Resume = time.Since(committedAt) })
			v.migrated(o, pausedAt, target)
			return
		case errors.As(err, &re):
			// The target destroyed its copy: the guest is ours again.
			failed(control.PhaseFailed, err)
			return
		}
	}
	// In doubt: the target may or may not run the guest. Stay paused
	// until the agent finds out from the target's agent.
	o.update(func(st *control.MigrationStatus) {
		st.Phase, st.Error = control.PhaseInDoubt, "the target's answer to commit was lost; asking its agent"
	})
	if <-o.where {
		v.migrated(o, pausedAt, target)
		return
	}
	failed(control.PhaseFailed, errors.New("the target did not take the domain; resumed here"))
}

// migrated ends this VMM after the target resumed the guest.
func (v *VMM) migrated(o *outgoing, pausedAt time.Time, target string) {
	o.update(func(st *control.MigrationStatus) {
		st.Phase, st.Error = control.PhaseCompleted, ""
		st.Downtime = time.Since(pausedAt)
	})
	// Stay until the agent has the final figures: once this VMM is gone
	// it cannot ask. The guest runs on the target already.
	select {
	case <-o.told:
	case <-time.After(finalTimeout):
	}
	v.setState(control.StateStopping)
	v.end(control.Exit{Reason: control.ExitMigrated, Detail: target})
}

// startSave writes a save image to req.Path and ends the VMM.
func (v *VMM) startSave(req control.Request) control.Response {
	opts, err := v.sendOptions(req)
	if err != nil {
		return control.Response{Error: err.Error()}
	}
	opts.Live = false
	f, err := os.OpenFile(req.Path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return control.Response{Error: "save image: " + err.Error()}
	}
	o, ctx := v.newOutgoing(req.Migration, false)
	go func() {
		m := v.mach()
		res, err := pagexfer.SaveTo(ctx, source{Machine: m, ram: v.ram}, f, opts, func(p pagexfer.Progress) {
			o.update(func(st *control.MigrationStatus) { progressTo(st, p) })
		})
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		o.update(func(st *control.MigrationStatus) { resultTo(st, res) })
		if err != nil {
			os.Remove(req.Path)
			if !opts.AlreadyPaused {
				_ = m.Resume()
			}
			o.update(func(st *control.MigrationStatus) { st.Phase, st.Error = control.PhaseFailed, err.Error() })
			return
		}
		o.update(func(st *control.MigrationStatus) { st.Phase = control.PhaseCompleted })
		v.setState(control.StateStopping)
		v.end(control.Exit{Reason: control.ExitSaved, Detail: req.Path})
	}()
	st := o.status()
	return control.Response{Migration: &st}
}

// incoming is a migration into this VMM.
type incoming struct {
	mu sync.Mutex
	st control.MigrationStatus
	// extra receives the other connections of a parallel image
	// (OpMigrateAttach) until the receiver has them all.
	extra chan net.Conn
	// progress is the page-stream reads' progress timeout (0: none).
	progress time.Duration
}

// attach takes one more connection of migration id.
func (in *incoming) attach(id string, f *os.File) control.Response {
	defer f.Close()
	if s := in.status(); s.ID != id || s.Phase != control.PhaseReceiving {
		return control.Response{Error: fmt.Sprintf("no incoming migration %s is receiving here (this VMM has %s, %s)", id, s.ID, s.Phase)}
	}
	c, err := net.FileConn(f)
	if err != nil {
		return control.Response{Error: "migration connection: " + err.Error()}
	}
	select {
	case in.extra <- c:
	default:
		c.Close()
		return control.Response{Error: fmt.Sprintf("migration %s has all the connections it can take", id)}
	}
	st := in.status()
	return control.Response{Migration: &st}
}

// more hands the receiver the next attached connection.
func (in *incoming) more(used *[]net.Conn) func(ctx context.Context) (io.Reader, error) {
	return func(ctx context.Context) (io.Reader, error) {
		t := time.NewTimer(attachTimeout)
		defer t.Stop()
		select {
		case c := <-in.extra:
			*used = append(*used, c)
			return pagexfer.ProgressConn(c, in.progress), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			return nil, fmt.Errorf("no connection attached within %s", attachTimeout)
		}
	}
}

func (in *incoming) status() control.MigrationStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.st
}

func (in *incoming) set(phase control.Phase, errText string) {
	in.mu.Lock()
	in.st.Phase, in.st.Error = phase, errText
	in.mu.Unlock()
}

// open creates guest memory for an image whose header says h.
func (v *VMM) open(h pagexfer.Header) (*guestmem.RAM, error) {
	if h.Engine != v.opts.Engine {
		return nil, fmt.Errorf("the image is for the %s engine; this VMM runs %s", h.Engine, v.opts.Engine)
	}
	if h.MemSize != v.opts.MemoryBytes {
		return nil, fmt.Errorf("the image holds %d MiB of memory; the domain has %d MiB", h.MemSize>>20, v.opts.MemoryBytes>>20)
	}
	return guestmem.NewRAM("ovs-vmm:"+v.opts.Name, h.MemSize)
}

func (v *VMM) startReceive(req control.Request, f *os.File) control.Response {
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return control.Response{Error: "migration connection: " + err.Error()}
	}
	in := &incoming{st: control.MigrationStatus{ID: req.Migration, Phase: control.PhaseReceiving, Live: req.Live},
		extra: make(chan net.Conn, pagexfer.MaxStreams), progress: req.ProgressTimeout}
	v.mu.Lock()
	v.in = in
	v.mu.Unlock()
	go v.receive(in, conn)
	st := in.status()
	return control.Response{Migration: &st}
}

func (v *VMM) receive(in *incoming, conn net.Conn) {
	defer conn.Close()
	defer func() { // connections attached too late or too many
		for {
			select {
			case c := <-in.extra:
				c.Close()
			default:
				return
			}
		}
	}()
	var ram *guestmem.RAM
	var pre *prepared // the machine, made while the pages arrive
	abort := func(err error) {
		in.set(control.PhaseFailed, err.Error())
		pre.discard()
		if ram != nil && v.mach() == nil {
			ram.Close()
		}
		v.end(control.Exit{Reason: control.ExitIncomingAborted, Detail: err.Error(), Code: 3})
	}
	var extra []net.Conn
	// A source that stops sending fails the image after the progress
	// timeout; the commit exchange after it keeps its own bounds.
	h, state, st, err := pagexfer.ReceiveStreams(context.Background(), pagexfer.ProgressConn(conn, in.progress), in.more(&extra), func(h pagexfer.Header) (pagexfer.Sink, error) {
		r, err := v.open(h)
		if err != nil {
			return nil, err
		}
		ram = r
		pre = v.prepare(r)
		return pagexfer.NewFdSink(r.Fd(), r.Size()), nil
	})
	// The other streams carry nothing after the image.
	for _, c := range extra {
		c.Close()
	}
	in.mu.Lock()
	in.st.Streams, in.st.CompressedBatches = st.Streams, st.CompressedBatches
	in.mu.Unlock()
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		_ = pagexfer.WriteFailed(conn, h.ID, err.Error())
		abort(err)
		return
	}
	in.mu.Lock()
	in.st.DataPages, in.st.ZeroPages, in.st.Round, in.st.BytesSent = st.DataPages, st.ZeroPages, int(st.Rounds), st.Bytes
	in.mu.Unlock()
	// Finish the machine (made while the pages arrived) before saying
	// verified, so that after the commit only its start stands between
	// the source's pause and our resume; a machine that cannot be built
	// fails the image while the source can still resume.
	m, err := v.buildOn(pre, ram, state)
	pre = nil // the machine is m now, or was stopped
	if err != nil {
		ram = nil // buildOn closed it
		_ = pagexfer.WriteFailed(conn, h.ID, err.Error())
		abort(err)
		return
	}
	stopBuilt := func(err error) {
		_ = m.Stop()
		abort(err)
	}
	if err := pagexfer.WriteVerified(conn, h.ID, st); err != nil {
		stopBuilt(err)
		return
	}
	in.set(control.PhaseVerified, "")
	conn.SetReadDeadline(time.Now().Add(commitTimeout))
	if err := pagexfer.AwaitCommit(conn, h.ID); err != nil {
		stopBuilt(err)
		return
	}
	conn.SetReadDeadline(time.Time{})
	if err := v.start(ram, m); err != nil {
		_ = pagexfer.WriteResumeFailed(conn, h.ID, err.Error())
		in.set(control.PhaseFailed, err.Error())
		v.end(control.Exit{Reason: control.ExitFailedToStart, Detail: "after migration: " + err.Error(), Code: 1})
		return
	}
	if err := pagexfer.WriteResumed(conn, h.ID); err != nil {
		// The guest runs here now whatever the source heard: its agent
		// will ask ours.
		in.set(control.PhaseRunning, "the source did not get our answer: "+err.Error())
		return
	}
	in.set(control.PhaseRunning, "")
}

// restore reads a save image and starts the machine from it.
func (v *VMM) restore(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	var ram *guestmem.RAM
	_, state, _, err := pagexfer.Restore(context.Background(), f, func(h pagexfer.Header) (pagexfer.Sink, error) {
		r, err := v.open(h)
		if err != nil {
			return nil, err
		}
		ram = r
		return pagexfer.NewFdSink(r.Fd(), r.Size()), nil
	})
	if err != nil {
		if ram != nil {
			ram.Close()
		}
		return fmt.Errorf("restore %s: %w", path, err)
	}
	return v.run(ram, state)
}
