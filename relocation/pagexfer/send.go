package pagexfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"time"
)

// Range is a byte range [Off, Off+Len) of guest memory.
type Range struct {
	Off, Len uint64
}

// Source is the running guest as the sender sees it. The VMM's engines
// implement it (guest RAM plus the machine; see the package tests for the
// few lines that adapt vmm/workload).
type Source interface {
	// Size returns the bytes of guest memory, a multiple of PageSize.
	Size() uint64
	// ReadAt reads guest memory without faulting untouched pages in
	// (the mapping for pages that hold data, pread for holes).
	ReadAt(p []byte, off int64) (int, error)
	// DataRanges returns the ranges of memory that hold data; everything
	// else is zero and is never read or sent. Huge-page memory may name
	// whole 2 MiB pages: their zero 4 KiB pages go as zero pages.
	DataRanges() ([]Range, error)
	// SetDirtyLogging turns dirty-page tracking on (from a clean log) or off.
	SetDirtyLogging(on bool) error
	// DirtyLog fetches and clears the dirty log into dst: bit i of word
	// i/64 is set when page i was written since the previous call.
	DirtyLog(dst []uint64) error
	// Pause stops the vCPUs at a consistent point (idempotent); Resume
	// continues them.
	Pause() error
	Resume() error
	// SaveState returns the vCPU/engine state of the paused guest.
	SaveState() ([]byte, error)
	// SetThrottle makes the vCPUs sleep percent% of the time (0..99).
	SetThrottle(percent int) error
}

// Options configure Send.
type Options struct {
	// Live selects pre-copy: the guest runs while its memory is copied and
	// is paused only for the last dirty pages. Otherwise Send pauses
	// first and makes one pass.
	Live bool
	// AlreadyPaused says the caller paused the source (a paused domain):
	// Send makes one pass and never pauses or resumes it.
	AlreadyPaused bool

	// ID names the migration; a random one is made when zero.
	ID ID
	// Engine, VCPUs and Config go into the header for the receiver.
	Engine string
	VCPUs  int
	Config string

	// MaxDowntime is the downtime the stop rule aims for
	// (DefaultMaxDowntime when 0).
	MaxDowntime time.Duration
	// MaxRounds caps the rounds, the stop-and-copy round included
	// (DefaultMaxRounds when 0; at least 2 for a live transfer).
	MaxRounds int
	// MaxFactor caps the page data sent by pre-copy rounds at this
	// multiple of the memory size (DefaultMaxFactor when 0).
	MaxFactor float64
	// RateLimit caps the stream at this many bytes per second (0: no cap);
	// with several streams it caps their sum.
	RateLimit float64
	// Compression compresses page batches (CompressNone when 0). A batch
	// goes compressed only when that makes it smaller than 7/8 of its size.
	Compression Compression

	// DisableAutoConverge turns guest throttling off.
	DisableAutoConverge bool
	// ThrottleTrigger: a round counts as outrun when the guest dirtied
	// memory faster than this fraction of the measured bandwidth
	// (DefaultThrottleTrigger when 0, QEMU's threshold).
	ThrottleTrigger float64
	// ThrottleAfter consecutive outrun rounds move the throttle one step
	// up (DefaultThrottleAfter when 0).
	ThrottleAfter int
	// ThrottleSteps are the throttle percentages, strictly increasing in
	// 1..99 (DefaultThrottleSteps when nil).
	ThrottleSteps []int

	// ProgressInterval is the most time between two progress reports
	// within a round (DefaultProgressInterval when 0).
	ProgressInterval time.Duration
}

// Defaults.
const (
	DefaultMaxDowntime      = 300 * time.Millisecond
	DefaultMaxRounds        = 30
	DefaultMaxFactor        = 3
	DefaultThrottleTrigger  = 0.5
	DefaultThrottleAfter    = 2
	DefaultProgressInterval = 100 * time.Millisecond
)

// DefaultThrottleSteps are the auto-converge steps.
var DefaultThrottleSteps = []int{20, 40, 60, 80, 99}

func (o Options) withDefaults() (Options, error) {
	if o.MaxDowntime == 0 {
		o.MaxDowntime = DefaultMaxDowntime
	}
	if o.MaxRounds == 0 {
		o.MaxRounds = DefaultMaxRounds
	}
	if o.MaxFactor == 0 {
		o.MaxFactor = DefaultMaxFactor
	}
	if o.ThrottleTrigger == 0 {
		o.ThrottleTrigger = DefaultThrottleTrigger
	}
	if o.ThrottleAfter == 0 {
		o.ThrottleAfter = DefaultThrottleAfter
	}
	if o.ThrottleSteps == nil {
		o.ThrottleSteps = DefaultThrottleSteps
	}
	if o.ProgressInterval == 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	switch {
	case o.MaxDowntime < 0:
		return o, fmt.Errorf("max downtime %v is negative", o.MaxDowntime)
	case o.MaxRounds < 1 || o.Live && o.MaxRounds < 2:
		return o, fmt.Errorf("max rounds %d: a live transfer needs at least 2", o.MaxRounds)
	case o.MaxFactor < 0 || o.MaxFactor != o.MaxFactor:
		return o, fmt.Errorf("max factor %v is not a positive number", o.MaxFactor)
	case o.RateLimit < 0 || o.RateLimit != o.RateLimit:
		return o, fmt.Errorf("rate limit %v bytes/s is not a positive number", o.RateLimit)
	case o.RateLimit > 0 && o.RateLimit < 1024:
		return o, fmt.Errorf("rate limit %v bytes/s is below 1 KiB/s", o.RateLimit)
	case !(o.ThrottleTrigger > 0):
		return o, fmt.Errorf("throttle trigger %v is not a positive number", o.ThrottleTrigger)
	case o.ThrottleAfter < 0:
		return o, fmt.Errorf("throttle after %d rounds is negative", o.ThrottleAfter)
	case o.ProgressInterval < 0:
		return o, fmt.Errorf("progress interval %v is negative", o.ProgressInterval)
	case o.VCPUs < 1 || o.VCPUs > MaxVCPUs:
		return o, fmt.Errorf("%d vCPUs (1..%d)", o.VCPUs, MaxVCPUs)
	case len(o.Config) > MaxConfigSize:
		return o, fmt.Errorf("domain configuration of %d bytes is above %d", len(o.Config), MaxConfigSize)
	case o.Compression < CompressNone || o.Compression > CompressAuto:
		return o, fmt.Errorf("unknown compression %v", o.Compression)
	}
	if err := checkEngine(o.Engine); err != nil {
		return o, err
	}
	prev := 0
	for _, s := range o.ThrottleSteps {
		if s <= prev || s > 99 {
			return o, fmt.Errorf("throttle steps %v are not strictly increasing within 1..99", o.ThrottleSteps)
		}
		prev = s
	}
	return o, nil
}

// Phase is where a transfer is.
type Phase int

const (
	PhaseSetup    Phase = iota // writing the header, turning dirty logging on
	PhasePrecopy               // live rounds, the guest running
	PhaseStopCopy              // the guest paused: last dirty pages and state
	PhaseDone                  // the image is written
)

func (p Phase) String() string {
	switch p {
	case PhaseSetup:
		return "setup"
	case PhasePrecopy:
		return "precopy"
	case PhaseStopCopy:
		return "stop-copy"
	case PhaseDone:
		return "done"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// Progress is a snapshot of a running Send. BytesSent, pages and Round
// never decrease from one report to the next.
type Progress struct {
	Phase            Phase
	Round            int           // current round (0 is the first pass)
	Elapsed          time.Duration // since Send started
	BytesSent        uint64        // stream bytes written to the connection
	BytesRemaining   uint64        // page bytes still to send, as currently estimated
	DataPages        uint64        // pages sent with data
	ZeroPages        uint64        // pages sent as zero flags
	SkippedPages     uint64        // pages skipped because the guest dirtied them again
	Throughput       float64       // bytes per second on the wire (current round, else last)
	DirtyRate        float64       // bytes per second the guest dirtied in the last round
	ExpectedDowntime time.Duration // predicted downtime of stopping now
	Throttle         int           // current guest throttle, percent
	// Compression counts the page batches and what compression saved.
	Compression CompressionStats
}

// ThrottleStep is one change of the guest throttle.
type ThrottleStep struct {
	Percent int
	At      time.Duration // since Send started
}

// ThrottleReport says how much auto-converge slowed the guest.
type ThrottleReport struct {
	Max      int            // highest throttle applied, percent (0: never throttled)
	Steps    []ThrottleStep // every change, the final release to 0 included
	Duration time.Duration  // time the guest ran throttled
	// CPUTaken is the vCPU time the throttle took from each vCPU: the
	// integral of the throttle percentage over Duration.
	CPUTaken time.Duration
}

// Result describes a finished Send.
type Result struct {
	ID     ID
	Live   bool
	Reason StopReason // why pre-copy stopped
	Totals Totals     // what the end record says (the receiver echoes it in Verified)
	// BytesSent counts every byte written, the end record included.
	BytesSent    uint64
	SkippedPages uint64
	// BytesRead counts the guest memory read (untouched memory is never read).
	BytesRead uint64
	Total     time.Duration
	// Downtime runs from the call that paused the guest to the moment the
	// last byte of the image was written (the caller adds the wait for the
	// target's resume). For a source paused by the caller it is Total.
	Downtime time.Duration
	// PauseTook is how long the Pause call took (part of Downtime).
	PauseTook time.Duration
	// ExpectedDowntime is what the stop rule predicted.
	ExpectedDowntime time.Duration
	// Bandwidth is the last measured throughput of a pre-copy round, in
	// bytes per second (0 for a non-live transfer).
	Bandwidth float64
	Throttle  ThrottleReport
	// Streams is the number of connections the image went over.
	Streams int
	// Compression counts the page batches and what compression saved.
	Compression CompressionStats
	// DrainWait is how long the source waited, the guest running, for the
	// target to apply the pre-copy rounds before the pause (FeatureDrain).
	DrainWait time.Duration
	// DirtyLogging says the source's dirty logging is still on: a live
	// Send leaves it on so as not to spend the guest's pause turning it
	// off. The caller must call SetDirtyLogging(false) before it resumes
	// the source (after an abort); a migrated source is simply ended.
	// After a failed Send it is false: Send cleaned up itself.
	DirtyLogging bool
}

// Rounds returns the number of rounds, the stop-and-copy round included.
func (r Result) Rounds() int { return int(r.Totals.Rounds) }

// sender runtime tunables (variables so tests and benchmarks can shrink them).
var (
	// drainTimeout bounds the wait for the target's Drained answers
	// before the pause (a target that slow fails the migration, and the
	// source goes on running).
	drainTimeout = 60 * time.Second
	sendBuffers  = 4                     // batch buffers in flight
	fetchEvery   = 50 * time.Millisecond // dirty-log fetches within a round, for the skip rule
)

type sender struct {
	ctx      context.Context
	src      Source
	o        Options
	progress func(Progress)
	ps       uint64
	pages    uint64

	streams []*outStream
	drained time.Duration // the wait for the target before the pause

	cur, next, scratch []uint64
	nextCount          uint64
	tail               uint64 // mask of valid bits in the last bitmap word

	logging, paused bool
	throttle        int
	thr             ThrottleReport
	thrSince        time.Time

	start    time.Time
	phase    Phase
	round    int
	totals   Totals // rounds and pages; Bytes is summed from the streams at the end
	skipped  uint64
	read     uint64
	dataSent uint64 // page data bytes of pre-copy rounds

	roundData        uint64
	roundZero        uint64
	roundTotal       uint64
	roundDone        uint64
	roundStart       time.Time
	roundWritten     uint64
	pendStart        uint64
	pendLen          uint64
	skipping         bool
	lastFetch        time.Time
	lastProgress     time.Time
	bw, dirtyRate    float64
	expectedDowntime time.Duration
}

// outStream is one connection of an image: its writer and the batch
// being built for it.
type outStream struct {
	sw *streamWriter
	bb *batchBuilder
}

// Send writes src's memory and state to w as one image. See the package
// documentation and README.md for the stream and the live algorithm.
//
// On success a source paused by Send stays paused, with dirty logging
// still on after a live Send (Result.DirtyLogging): the caller turns the
// logging off and resumes it (ResumeSource) when the target fails or
// aborts, and destroys it once the target has resumed. On any error (ctx
// cancelled, write failed, source failed) Send releases the throttle,
// turns dirty logging off and resumes the source if it paused it, and
// returns the Result so far with the error. Cancelling ctx interrupts a
// blocked write when w has SetWriteDeadline (a net.Conn); for other
// writers the caller must close w.
//
// progress, when not nil, is called from Send's goroutine at least every
// Options.ProgressInterval and at every round end; it must not block.
func Send(ctx context.Context, src Source, w io.Writer, opts Options, progress func(Progress)) (res Result, err error) {
	return SendStreams(ctx, src, []io.Writer{w}, opts, progress)
}

// SendStreams is Send over several connections at once (the
// parallel-streams feature): page p goes on ws[(p/StripePages)%len(ws)],
// each stream with its own header, rounds, checksums and end record; the
// state goes on ws[0], and the commit that follows belongs to ws[0] too.
// One writer is Send exactly.
func SendStreams(ctx context.Context, src Source, ws []io.Writer, opts Options, progress func(Progress)) (res Result, err error) {
	if len(ws) == 0 || len(ws) > MaxStreams {
		return Result{}, fmt.Errorf("send: %d streams (1..%d)", len(ws), MaxStreams)
	}
	o, err := opts.withDefaults()
	if err != nil {
		return Result{}, fmt.Errorf("send: options: %w", err)
	}
	size := src.Size()
	if size == 0 || size%PageSize != 0 || size > MaxMemSize {
		return Result{}, fmt.Errorf("send: guest memory of %d bytes is not a positive multiple of %d up to %d", size, PageSize, uint64(MaxMemSize))
	}
	if o.ID.IsZero() {
		if o.ID, err = NewID(); err != nil {
			return Result{}, fmt.Errorf("send: %w", err)
		}
	}
	if o.AlreadyPaused {
		o.Live = false
	}
	s := &sender{
		ctx: ctx, src: src, o: o, progress: progress,
		ps: PageSize, pages: size / PageSize,
		start: time.Now(),
	}
	if r := s.pages % 64; r != 0 {
		s.tail = 1<<r - 1
	} else {
		s.tail = ^uint64(0)
	}
	lim := newLimiter(o.RateLimit)
	for _, w := range ws {
		if d, ok := w.(interface{ SetWriteDeadline(time.Time) error }); ok {
			stop := context.AfterFunc(ctx, func() { d.SetWriteDeadline(time.Unix(1, 0)) })
			defer stop()
		}
		var comp *compressor
		if o.Compression != CompressNone {
			comp = newCompressor(o.Compression)
		}
		s.streams = append(s.streams, &outStream{sw: newStreamWriter(ctx, w, lim, comp, sendBuffers, batchReserve+sendBatchData)})
	}
	defer func() {
		for _, st := range s.streams {
			st.sw.close(err == nil)
		}
		if err != nil {
			err = errors.Join(fmt.Errorf("send %s: %w", o.ID, err), s.cleanup())
		}
		res = s.result(res)
	}()
	return s.run()
}

// ResumeSource gives the guest back its source after a Send that succeeded
// but whose migration did not complete (the target failed or the caller
// aborted): it turns off the dirty logging Send left on, then resumes it.
func ResumeSource(src Source, res Result) error {
	var errs []error
	if res.DirtyLogging {
		if err := src.SetDirtyLogging(false); err != nil {
			errs = append(errs, fmt.Errorf("turn dirty logging off: %w", err))
		}
	}
	if err := src.Resume(); err != nil {
		errs = append(errs, fmt.Errorf("resume source: %w", err))
	}
	return errors.Join(errs...)
}

// written returns the bytes written on all streams.
func (s *sender) written() uint64 {
	var n uint64
	for _, st := range s.streams {
		n += st.sw.written.Load()
	}
	return n
}

// compression sums the streams' compression counters.
func (s *sender) compression() CompressionStats {
	var c CompressionStats
	for _, st := range s.streams {
		c.add(st.sw.compression())
	}
	return c
}

// flush waits until every stream has written everything queued.
func (s *sender) flush() error {
	for _, st := range s.streams {
		if err := st.sw.flush(); err != nil {
			return err
		}
	}
	return nil
}

// queueAll queues job on every stream.
func (s *sender) queueAll(j writeJob) error {
	for _, st := range s.streams {
		if err := st.sw.queue(j); err != nil {
			return err
		}
	}
	return nil
}

// cleanup undoes what Send did to the source after a failure.
func (s *sender) cleanup() error {
	var errs []error
	if s.throttle > 0 {
		if err := s.setThrottle(0); err != nil {
			errs = append(errs, fmt.Errorf("release throttle: %w", err))
		}
	}
	if s.logging {
		if err := s.src.SetDirtyLogging(false); err != nil {
			errs = append(errs, fmt.Errorf("turn dirty logging off: %w", err))
		}
		s.logging = false
	}
	if s.paused {
		if err := s.src.Resume(); err != nil {
			errs = append(errs, fmt.Errorf("resume source: %w", err))
		} else {
			s.paused = false
		}
	}
	return errors.Join(errs...)
}

func (s *sender) result(r Result) Result {
	r.ID = s.o.ID
	r.Live = s.o.Live
	r.Totals = s.totals
	r.BytesSent = s.written()
	r.Streams = len(s.streams)
	r.DrainWait = s.drained
	r.Compression = s.compression()
	r.SkippedPages = s.skipped
	r.BytesRead = s.read
	r.Total = time.Since(s.start)
	s.accountThrottle(time.Now())
	r.Throttle = s.thr
	r.Throttle.Steps = append([]ThrottleStep(nil), s.thr.Steps...)
	return r
}

// run is the whole send: the headers, the pre-copy rounds of a live send,
// the pause, the stop-and-copy round, the state and the end records.
func (s *sender) run() (Result, error) {
	var res Result
	s.phase = PhaseSetup
	features, err := s.writeHeaders()
	if err != nil {
		return res, err
	}
	s.cur = make([]uint64, bitmapWords(s.pages))
	var pauseAt time.Time
	if s.o.Live {
		if err := s.precopy(&res, features); err != nil {
			return res, err
		}
		pauseAt, err = s.pauseLive(&res)
	} else {
		pauseAt, err = s.pauseNotLive(&res)
	}
	if err != nil {
		return res, err
	}
	if err := s.stopCopy(&res, pauseAt); err != nil {
		return res, err
	}
	s.phase = PhaseDone
	s.report(true)
	res.DirtyLogging, s.logging = s.logging, false
	return res, nil
}

// writeHeaders puts each stream's header and gives each stream its first
// batch buffer; it returns the image's features.
func (s *sender) writeHeaders() (Feature, error) {
	h := Header{Version: Version, StreamCount: uint16(len(s.streams)), PageSize: PageSize, MemSize: s.pages * s.ps,
		VCPUs: uint32(s.o.VCPUs), Engine: s.o.Engine, ID: s.o.ID, Config: s.o.Config}
	if s.o.Compression != CompressNone {
		h.Features |= FeatureCompression
	}
	if len(s.streams) > 1 {
		h.Features |= FeatureParallel
	}
	if s.drainable() {
		h.Features |= FeatureDrain
	}
	for i, st := range s.streams {
		h.StreamID = uint16(i)
		if err := h.validate(); err != nil {
			return 0, err
		}
		if err := st.sw.put(appendHeader(nil, h), nil); err != nil {
			return 0, err
		}
		buf, err := st.sw.get()
		if err != nil {
			return 0, err
		}
		st.bb = newBatchBuilder(int(s.ps), buf)
	}
	return h.Features, nil
}

// precopy runs the pre-copy rounds of a live send, with the guest running,
// until the policy says stop.
func (s *sender) precopy(res *Result, features Feature) error {
	words := len(s.cur)
	s.next = make([]uint64, words)
	s.scratch = make([]uint64, words)
	if err := s.src.SetDirtyLogging(true); err != nil {
		return fmt.Errorf("turn dirty logging on: %w", err)
	}
	s.logging = true
	s.lastFetch = time.Now()
	window := s.lastFetch // dirty pages in s.next accumulate from here
	if err := s.populated(s.cur); err != nil {
		return err
	}
	pol := newPolicy(s.o, s.pages*s.ps)
	s.phase = PhasePrecopy
	for {
		stop, err := s.precopyRound(res, pol, &window, features&FeatureDrain != 0)
		if err != nil || stop {
			return err
		}
		s.cur, s.next = s.next, s.cur
		clear(s.next)
		s.nextCount = 0
		s.round++
	}
}

// precopyRound sends one pre-copy round and asks the policy whether to
// stop; window is where the dirty pages of s.next accumulate from.
func (s *sender) precopyRound(res *Result, pol *policy, window *time.Time, drain bool) (bool, error) {
	if err := s.sendRound(false); err != nil {
		return false, err
	}
	// Wait until the round is on the wire (so its bandwidth is
	// measured), then take the dirty log: pages the guest wrote
	// meanwhile belong to the next round's set, not to pages it
	// would skip as "dirtied during the round".
	if err := s.flush(); err != nil {
		return false, err
	}
	written := s.written()
	if err := s.fetchDirty(); err != nil {
		return false, err
	}
	fetched := s.lastFetch
	v := pol.next(roundReport{Round: s.round, Duration: time.Since(s.roundStart),
		Bytes: written - s.roundWritten, Dirty: s.nextCount * s.ps, SentTotal: s.dataSent,
		Window: fetched.Sub(*window)})
	*window = fetched
	s.bw, s.dirtyRate, s.expectedDowntime = v.Bandwidth, v.DirtyRate, v.Expected
	res.Bandwidth, res.ExpectedDowntime, res.Reason = v.Bandwidth, v.Expected, v.Reason
	if v.Throttle > s.throttle {
		if err := s.setThrottle(v.Throttle); err != nil {
			return false, fmt.Errorf("throttle source: %w", err)
		}
	}
	s.report(true)
	if v.Stop && drain {
		return s.drainBeforePause(v)
	}
	return v.Stop, nil
}

// drainBeforePause waits, with the guest running, until the target has
// applied everything sent so far: what it still had queued would
// otherwise be applied while the guest is paused. It says whether the
// pause may follow.
func (s *sender) drainBeforePause(v verdict) (bool, error) {
	if err := s.drain(); err != nil {
		return false, err
	}
	// The guest dirtied pages meanwhile. When they no longer fit the
	// downtime target, one more round goes first.
	if v.Reason == StopDowntime {
		if err := s.fetchDirty(); err != nil {
			return false, err
		}
		if e := expected(s.nextCount*s.ps, s.bw); e > s.o.MaxDowntime {
			s.expectedDowntime = e
			return false, nil
		}
	}
	return true, nil
}

// pauseLive pauses the source after the pre-copy rounds, releases the
// throttle and takes the last dirty log as the stop-and-copy set; it
// returns when the pause began.
func (s *sender) pauseLive(res *Result) (time.Time, error) {
	s.round++
	s.phase = PhaseStopCopy
	pauseAt := time.Now()
	if err := s.src.Pause(); err != nil {
		return pauseAt, fmt.Errorf("pause source: %w", err)
	}
	s.paused = true
	res.PauseTook = time.Since(pauseAt)
	if s.throttle > 0 {
		if err := s.setThrottle(0); err != nil {
			return pauseAt, fmt.Errorf("release throttle: %w", err)
		}
	}
	if err := s.fetchDirty(); err != nil {
		return pauseAt, err
	}
	// Dirty logging stays on: turning it off rebuilds the memory
	// slot's mappings (18-27 ms for 2 GiB on kvm), time the guest
	// would spend paused. A migrated source never runs again; the
	// caller turns it off before resuming one (Result.DirtyLogging).
	s.cur, s.next = s.next, nil
	s.nextCount = 0
	return pauseAt, nil
}

// pauseNotLive pauses the source of a non-live send (unless it already
// is) and takes every populated page as the one round's set; it returns
// when the pause began.
func (s *sender) pauseNotLive(res *Result) (time.Time, error) {
	res.Reason = StopNotLive
	pauseAt := s.start
	if !s.o.AlreadyPaused {
		pauseAt = time.Now()
		if err := s.src.Pause(); err != nil {
			return pauseAt, fmt.Errorf("pause source: %w", err)
		}
		s.paused = true
		res.PauseTook = time.Since(pauseAt)
	}
	s.phase = PhaseStopCopy
	return pauseAt, s.populated(s.cur)
}

// stopCopy sends the last round, the state and the end records with the
// source paused, and checks every stream's rounds.
func (s *sender) stopCopy(res *Result, pauseAt time.Time) error {
	if err := s.sendRound(true); err != nil {
		return err
	}
	state, err := s.src.SaveState()
	if err != nil {
		return fmt.Errorf("save source state: %w", err)
	}
	if len(state) > MaxStateSize {
		return fmt.Errorf("source state of %d bytes is above the %d the stream carries", len(state), MaxStateSize)
	}
	if err := s.streams[0].sw.put(appendState(nil, state), nil); err != nil {
		return err
	}
	if err := s.queueAll(writeJob{kind: recEnd}); err != nil {
		return err
	}
	if err := s.flush(); err != nil {
		return err
	}
	res.Downtime = time.Since(pauseAt)
	for i, st := range s.streams {
		t := st.sw.totals
		if t.Rounds != s.totals.Rounds {
			return fmt.Errorf("stream %d ended after %d rounds, the image has %d", i, t.Rounds, s.totals.Rounds)
		}
		s.totals.Bytes += t.Bytes
	}
	return s.ctx.Err()
}

// answerConn is a stream writer the receiver's answers come back on (a
// net.Conn); a file or a buffer is not one.
type answerConn interface {
	io.Reader
	SetReadDeadline(time.Time) error
}

// drainable says whether the receiver can answer drain records: a live
// migration whose every stream is a connection the answer can come back on.
func (s *sender) drainable() bool {
	if !s.o.Live {
		return false
	}
	for _, st := range s.streams {
		if _, ok := st.sw.w.(answerConn); !ok {
			return false
		}
	}
	return true
}

// drain sends a drain record on every stream and waits for each stream's
// Drained answer (at most drainTimeout).
func (s *sender) drain() error {
	start := time.Now()
	if err := s.queueAll(writeJob{kind: recDrain}); err != nil {
		return err
	}
	if err := s.flush(); err != nil {
		return err
	}
	// One stream failing ends the wait on the others.
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	errs := make(chan error, len(s.streams))
	for i, st := range s.streams {
		r := st.sw.w.(answerConn)
		r.SetReadDeadline(time.Now().Add(drainTimeout))
		stop := context.AfterFunc(ctx, func() { r.SetReadDeadline(time.Unix(1, 0)) })
		defer func() {
			stop()
			r.SetReadDeadline(time.Time{})
		}()
		go func() {
			m, err := expect(r, s.o.ID, MsgDrained, MsgFailed)
			switch {
			case err != nil:
				err = fmt.Errorf("stream %d: wait for the target to apply the pre-copy rounds: %w", i, err)
			case m.Kind == MsgFailed:
				err = &RemoteError{Kind: m.Kind, Reason: m.Reason}
			}
			errs <- err
		}()
	}
	var first error
	for range s.streams {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	if first != nil {
		if s.ctx.Err() != nil {
			return s.ctx.Err()
		}
		return first
	}
	s.drained = time.Since(start)
	return nil
}

// populated fills set with the pages that hold data.
func (s *sender) populated(set []uint64) error {
	rs, err := s.src.DataRanges()
	if err != nil {
		return fmt.Errorf("populated ranges of guest memory: %w", err)
	}
	size := s.pages * s.ps
	for _, r := range rs {
		if r.Len == 0 {
			continue
		}
		if r.Off >= size || r.Len > size-r.Off {
			return fmt.Errorf("populated range %d+%d outside guest memory of %d bytes", r.Off, r.Len, size)
		}
		first := r.Off / s.ps
		end := (r.Off + r.Len + s.ps - 1) / s.ps
		setRange(set, first, end-first)
	}
	return nil
}

// fetchDirty merges the source's dirty log into next.
func (s *sender) fetchDirty() error {
	if err := s.src.DirtyLog(s.scratch); err != nil {
		return fmt.Errorf("fetch dirty log: %w", err)
	}
	s.lastFetch = time.Now()
	s.scratch[len(s.scratch)-1] &= s.tail
	for i, x := range s.scratch {
		if x == 0 {
			continue
		}
		if n := x &^ s.next[i]; n != 0 {
			s.nextCount += uint64(bits.OnesCount64(n))
			s.next[i] |= n
		}
	}
	return nil
}

func (s *sender) setThrottle(p int) error {
	if err := s.src.SetThrottle(p); err != nil {
		return err
	}
	now := time.Now()
	s.accountThrottle(now)
	s.throttle = p
	s.thr.Max = max(s.thr.Max, p)
	s.thr.Steps = append(s.thr.Steps, ThrottleStep{Percent: p, At: now.Sub(s.start)})
	return nil
}

func (s *sender) accountThrottle(now time.Time) {
	if s.throttle > 0 {
		d := now.Sub(s.thrSince)
		s.thr.Duration += d
		s.thr.CPUTaken += d * time.Duration(s.throttle) / 100
	}
	s.thrSince = now
}

// sendRound sends the pages of s.cur as one round. Pre-copy rounds skip
// the pages the guest dirtied again since the round began (they are in
// s.next and go in a later round anyway).
func (s *sender) sendRound(final bool) error {
	s.roundData, s.roundZero = 0, 0
	s.roundStart = time.Now()
	s.roundWritten = s.written()
	s.roundTotal, s.roundDone = countBits(s.cur), 0
	s.skipping = !final
	flags := uint32(0)
	if final {
		flags = roundFinal
	}
	if err := s.queueAll(writeJob{kind: recRoundStart, round: uint32(s.round), flags: flags}); err != nil {
		return err
	}
	s.report(true)
	for wi, w := range s.cur {
		if w == 0 {
			continue
		}
		if s.skipping {
			if time.Since(s.lastFetch) >= fetchEvery {
				if err := s.fetchDirty(); err != nil {
					return err
				}
			}
			if sk := w & s.next[wi]; sk != 0 {
				n := uint64(bits.OnesCount64(sk))
				s.skipped += n
				s.roundDone += n
				w &^= sk
			}
		}
		for w != 0 {
			b := uint64(bits.TrailingZeros64(w))
			l := uint64(bits.TrailingZeros64(^(w >> b)))
			if err := s.addPending(uint64(wi)*64+b, l); err != nil {
				return err
			}
			if b+l >= 64 {
				break
			}
			w &^= mask(b, l)
		}
	}
	if err := s.readPending(); err != nil {
		return err
	}
	for _, st := range s.streams {
		if err := s.flushBatch(st); err != nil {
			return err
		}
	}
	if err := s.queueAll(writeJob{kind: recRoundEnd, round: uint32(s.round)}); err != nil {
		return err
	}
	s.totals.Rounds++
	if !final {
		s.dataSent += s.roundData * s.ps
	}
	return nil
}

// addPending extends the pending read by pages [p, p+n), reading the
// pending pages first when they are not adjacent. With several streams a
// pending read never crosses a stripe boundary: it goes to one stream.
func (s *sender) addPending(p, n uint64) error {
	if len(s.streams) == 1 {
		return s.addPending1(p, n)
	}
	for n > 0 {
		k := min(n, StripePages-p%StripePages)
		if err := s.addPending1(p, k); err != nil {
			return err
		}
		p, n = p+k, n-k
	}
	return nil
}

func (s *sender) addPending1(p, n uint64) error {
	if s.pendLen > 0 && s.pendStart+s.pendLen == p && (len(s.streams) == 1 || p%StripePages != 0) {
		s.pendLen += n
		if s.pendLen < sendBatchPages {
			return nil
		}
		return s.readPending()
	}
	if err := s.readPending(); err != nil {
		return err
	}
	s.pendStart, s.pendLen = p, n
	return nil
}

// streamOf returns the stream that carries page p.
func (s *sender) streamOf(p uint64) *outStream {
	if len(s.streams) == 1 {
		return s.streams[0]
	}
	return s.streams[(p/StripePages)%uint64(len(s.streams))]
}

// readPending reads the pending pages into batches.
func (s *sender) readPending() error {
	for s.pendLen > 0 {
		st := s.streamOf(s.pendStart)
		room := uint64(st.bb.room())
		if room == 0 {
			if err := s.flushBatch(st); err != nil {
				return err
			}
			continue
		}
		// At most readPages per read, so the zero check and the
		// checksum in addRead find the pages still in the cache.
		k := min(s.pendLen, room, readPages)
		if _, err := s.src.ReadAt(st.bb.space(int(k)), int64(s.pendStart*s.ps)); err != nil {
			return fmt.Errorf("read guest memory pages %d+%d: %w", s.pendStart, k, err)
		}
		s.read += k * s.ps
		st.bb.addRead(s.pendStart, int(k))
		s.pendStart += k
		s.pendLen -= k
		s.roundDone += k
	}
	return nil
}

// flushBatch queues the batch being built for st and starts a new one.
func (s *sender) flushBatch(st *outStream) error {
	bb := st.bb
	if bb.empty() {
		return nil
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	rec := bb.finish()
	s.roundData += bb.data
	s.roundZero += bb.zero
	s.totals.DataPages += bb.data
	s.totals.ZeroPages += bb.zero
	if err := st.sw.queue(writeJob{kind: recBatch, rec: rec, buf: bb.buf, data: bb.data, zero: bb.zero, sum: bb.sum, summed: true}); err != nil {
		return err
	}
	buf, err := st.sw.get()
	if err != nil {
		return err
	}
	bb.reset(buf)
	s.report(false)
	return nil
}

// report calls the progress callback when it is due (or when forced).
func (s *sender) report(force bool) {
	if s.progress == nil {
		return
	}
	now := time.Now()
	if !force && now.Sub(s.lastProgress) < s.o.ProgressInterval {
		return
	}
	s.lastProgress = now
	p := Progress{
		Phase:            s.phase,
		Round:            s.round,
		Elapsed:          now.Sub(s.start),
		BytesSent:        s.written(),
		Compression:      s.compression(),
		DataPages:        s.totals.DataPages,
		ZeroPages:        s.totals.ZeroPages,
		SkippedPages:     s.skipped,
		Throughput:       s.bw,
		DirtyRate:        s.dirtyRate,
		ExpectedDowntime: s.expectedDowntime,
		Throttle:         s.throttle,
	}
	if s.phase != PhaseDone {
		left := s.roundTotal - min(s.roundDone, s.roundTotal) + s.nextCount
		p.BytesRemaining = left * s.ps
		if d := now.Sub(s.roundStart); d >= 100*time.Millisecond && !s.roundStart.IsZero() {
			p.Throughput = float64(p.BytesSent-s.roundWritten) / d.Seconds()
		}
		if p.Throughput > 0 {
			p.ExpectedDowntime = expected(p.BytesRemaining, p.Throughput)
		}
	}
	s.progress(p)
}
