package simengine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
)

// Config configures a sim engine.
type Config struct {
	// RAM is guest memory. For a new machine it must be zero (fresh); the
	// engine writes the parameter page. For a restored machine it holds the
	// memory of the saved one.
	RAM *guestmem.RAM
	// Params configures a new machine; ignored when State is set (the
	// parameter page in memory describes the workload then).
	Params workload.Params
	// Console receives the console output, one Write per line. May be nil.
	Console io.Writer
	// State, when set, is a SaveState result: the machine continues where
	// the saved one stopped.
	State []byte
}

// Machine is the sim engine: the workload run by a goroutine over guest RAM,
// with a software dirty log. It implements Machine. Time is the machine's
// own: it advances only while the machine runs (not while paused), like a
// guest TSC that is saved and restored.
type Machine struct {
	ram     *guestmem.RAM
	mem     []byte
	pp      workload.ParamPage
	layout  workload.Layout
	console io.Writer
	dirty   *guestmem.DirtyBitmap
	logging atomic.Bool
	reqs    atomic.Bool // pause or stop requested: the loop must look
	wake    chan struct{}
	done    chan struct{}
	thr     atomic.Int32

	mu       sync.Mutex
	cond     *sync.Cond
	phase    simPhase
	pauseReq bool
	stopReq  bool
	err      error

	st       simState  // owned by the loop goroutine while running
	runStart time.Time // wall clock at the start of the current run period
}

type simPhase int

const (
	simCreated simPhase = iota
	simRunning
	simPaused
	simStopped
)

var _ workload.Machine = (*Machine)(nil)

// Loop tuning, the same as the guest's.
const (
	writeBatch    = 64   // writes per iteration at most
	touchBatch    = 64   // touch-fill writes per iteration at most
	verifyChunk   = 32   // page verifications per iteration at most
	scanChunk     = 4096 // generation-table entries scanned per iteration at most
	corruptPrints = 8    // CORRUPT lines per verification round at most
	maxSleep      = 100 * time.Millisecond
)

// New prepares a sim machine over cfg.RAM; Start runs it.
func New(cfg Config) (*Machine, error) {
	if cfg.RAM == nil {
		return nil, errors.New("sim: no guest memory")
	}
	s := &Machine{
		ram:     cfg.RAM,
		mem:     cfg.RAM.Bytes(),
		console: cfg.Console,
		dirty:   guestmem.NewDirtyBitmap(cfg.RAM.Pages()),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	s.cond = sync.NewCond(&s.mu)
	if cfg.State != nil {
		if err := s.st.UnmarshalBinary(cfg.State); err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		pp, l, err := workload.DecodeParamPage(s.mem[workload.ParamPageAddr:workload.ParamPageAddr+workload.PageSize], cfg.RAM.Size())
		if err != nil {
			return nil, fmt.Errorf("sim: restore: %w", err)
		}
		if s.st.VPos > l.TablePages() || s.st.Cursor >= l.HotPages || s.st.TouchPos > l.TouchPages {
			return nil, fmt.Errorf("sim: restore: saved positions (verify %d, cursor %d, touch %d) outside the hot set of %d pages and touched region of %d",
				s.st.VPos, s.st.Cursor, s.st.TouchPos, l.HotPages, l.TouchPages)
		}
		if pp.VerifyUS == 0 || pp.HeartbeatUS == 0 {
			return nil, errors.New("sim: restore: parameter page has zero intervals")
		}
		s.pp, s.layout = pp, l
		return s, nil
	}
	l, err := workload.NewLayout(cfg.RAM.Size(), cfg.Params)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	s.layout = l
	s.pp = workload.NewParamPage(l, cfg.Params)
	s.pp.Encode(s.mem[workload.ParamPageAddr:])
	s.setStatus(workload.StatusMagicWord, workload.StatusMagic)
	s.setStatus(workload.StatusState, workload.StateBooting)
	s.st = simState{
		RNG:        cfg.Params.Seed*workload.Golden | 1,
		NextVerify: uint64(cfg.Params.VerifyInterval),
		NextHB:     uint64(cfg.Params.HeartbeatInterval),
	}
	return s, nil
}

// RAM returns guest memory.
func (s *Machine) RAM() *guestmem.RAM { return s.ram }

// Layout returns the workload layout.
func (s *Machine) Layout() workload.Layout { return s.layout }

// Start runs the machine.
func (s *Machine) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase != simCreated {
		return errors.New("sim: already started")
	}
	s.phase = simRunning
	s.runStart = time.Now()
	go s.loop()
	return nil
}

// Pause stops the machine between two loop iterations (memory consistent).
func (s *Machine) Pause() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.phase {
	case simCreated:
		return errors.New("sim: pause: not started")
	case simStopped:
		return errors.New("sim: pause: stopped")
	}
	s.pauseReq = true
	s.reqs.Store(true)
	s.kick()
	for s.phase == simRunning {
		s.cond.Wait()
	}
	if s.phase == simStopped {
		return errors.New("sim: pause: machine stopped")
	}
	return nil
}

// Resume continues a paused machine.
func (s *Machine) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.phase {
	case simCreated:
		return errors.New("sim: resume: not started")
	case simStopped:
		return errors.New("sim: resume: stopped")
	}
	s.pauseReq = false
	s.reqs.Store(s.stopReq)
	s.cond.Broadcast()
	for s.phase == simPaused {
		s.cond.Wait()
	}
	return nil
}

// Stop ends the machine and waits for its goroutine.
func (s *Machine) Stop() error {
	s.mu.Lock()
	if s.phase == simCreated {
		s.phase = simStopped
		close(s.done)
		s.mu.Unlock()
		return nil
	}
	s.stopReq = true
	s.reqs.Store(true)
	s.kick()
	s.cond.Broadcast()
	s.mu.Unlock()
	<-s.done
	return nil
}

// Done is closed when the machine has stopped.
func (s *Machine) Done() <-chan struct{} { return s.done }

// Err says why the machine stopped (nil after Stop).
func (s *Machine) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// SetDirtyLogging turns the software dirty log on (clean) or off.
func (s *Machine) SetDirtyLogging(on bool) error {
	if on { // from a clean log, also when it was on already
		scratch := make([]uint64, guestmem.BitmapWords(s.dirty.Pages()))
		s.dirty.GetAndClear(scratch)
	}
	s.logging.Store(on)
	return nil
}

// DirtyLog fetches and clears the dirty log.
func (s *Machine) DirtyLog(dst []uint64) error {
	if !s.logging.Load() {
		return errors.New("sim: dirty log: dirty logging is off")
	}
	return s.dirty.GetAndClear(dst)
}

// SaveState returns the engine state of a paused machine.
func (s *Machine) SaveState() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase != simPaused {
		return nil, errors.New("sim: save state: machine is not paused")
	}
	return s.st.MarshalBinary()
}

// Stats returns the counters from the status page.
func (s *Machine) Stats() workload.Stats { return workload.ReadStats(s.ram) }

// SetThrottle makes the machine sleep percent% of its time.
func (s *Machine) SetThrottle(percent int) error {
	if percent < 0 || percent > 99 {
		return fmt.Errorf("sim: throttle %d%% outside 0..99", percent)
	}
	s.thr.Store(int32(percent))
	return nil
}

func (s *Machine) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Machine) word(off uint64) *uint64 { return (*uint64)(unsafe.Pointer(&s.mem[off])) }

func (s *Machine) setStatus(i int, v uint64) {
	atomic.StoreUint64(s.word(workload.StatusPageAddr+8*uint64(i)), v)
	s.markDirty(workload.StatusPageAddr / workload.PageSize)
}

func (s *Machine) status(i int) uint64 {
	return atomic.LoadUint64(s.word(workload.StatusPageAddr + 8*uint64(i)))
}

func (s *Machine) addStatus(i int, d uint64) { s.setStatus(i, s.status(i)+d) }

func (s *Machine) markDirty(page uint64) {
	if s.logging.Load() {
		s.dirty.Mark(page)
	}
}

func (s *Machine) print(line string) {
	if s.console != nil {
		s.console.Write([]byte(line + "\n"))
	}
}

// now returns the machine's time in nanoseconds.
func (s *Machine) now() uint64 { return s.st.Virtual + uint64(time.Since(s.runStart)) }

// control handles pause and stop requests; it returns false to end the loop.
func (s *Machine) control() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pauseReq && !s.stopReq {
		s.st.Virtual = s.now()
		s.phase = simPaused
		s.cond.Broadcast()
		for s.pauseReq && !s.stopReq {
			s.cond.Wait()
		}
		s.phase = simRunning
		s.runStart = time.Now()
		s.cond.Broadcast()
	}
	if s.stopReq {
		s.st.Virtual = s.now()
		s.phase = simStopped
		s.cond.Broadcast()
		return false
	}
	s.reqs.Store(false)
	return true
}

func (s *Machine) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-s.wake:
		t.Stop()
	}
}

// pace is the loop's timing, from the parameter page, in nanoseconds of
// machine time.
type pace struct {
	wi, wf     uint64 // interval between two writes: whole and 16-bit fraction
	verify, hb uint64
	maxLag     uint64
	minSleep   uint64
}

func newPace(pp workload.ParamPage) pace {
	hz := uint64(time.Second)
	p := pace{verify: pp.VerifyUS * 1000, hb: pp.HeartbeatUS * 1000, maxLag: pp.MaxLagUS * 1000, minSleep: pp.MinSleepUS * 1000}
	if pp.PagesPerSec > 0 {
		p.wi = hz / pp.PagesPerSec
		p.wf = ((hz % pp.PagesPerSec) << 16) / pp.PagesPerSec
	}
	return p
}

func (s *Machine) loop() {
	defer close(s.done)
	pc := newPace(s.pp)
	s.boot()
	st := &s.st
	for {
		if s.reqs.Load() && !s.control() {
			return
		}
		iterStart := time.Now()
		now := s.now()
		filling := st.TouchPos < s.pp.TouchPages
		if filling {
			// The touch fill comes first: no dirtying or verification
			// rounds until it is done.
			now = s.fill(now, pc)
		}
		if !filling && s.pp.PagesPerSec > 0 {
			s.writeDue(now, pc)
		}
		if !filling && st.Verifying == 0 && now >= st.NextVerify {
			st.Verifying, st.VPos, st.Printed = 1, 0, 0
			st.NextVerify = now + pc.verify
		}
		if st.Verifying != 0 {
			s.verifyChunk()
		}
		if now >= st.NextHB {
			s.heartbeat(now, pc)
		}
		if p := s.thr.Load(); p > 0 {
			busy := time.Since(iterStart)
			s.sleep(busy * time.Duration(p) / time.Duration(100-p))
		}
		if st.Verifying == 0 && st.TouchPos >= s.pp.TouchPages {
			s.idle(pc)
		}
	}
}

// boot prints the banner of a machine that was not running before.
func (s *Machine) boot() {
	pp := s.pp
	if s.status(workload.StatusState) != workload.StateBooting {
		return
	}
	banner := fmt.Sprintf("WORKLOAD start engine=sim ram=%d hot=%d+%d", pp.RAMPages, pp.HotFirst, pp.HotPages)
	if pp.TouchPages > 0 {
		banner += fmt.Sprintf(" touch=%d+%d", pp.HotFirst+pp.HotPages, pp.TouchPages)
	}
	s.print(banner + fmt.Sprintf(" rate=%d pattern=%s verify=%d seed=%d",
		pp.PagesPerSec, workload.Pattern(pp.Pattern), pp.VerifyUS/1000, pp.Seed))
	s.setStatus(workload.StatusState, workload.StateRunning)
}

// fill continues the touch fill; when it is done, the writes and the
// verification rounds start from now. It returns the machine time.
func (s *Machine) fill(now uint64, pc pace) uint64 {
	st := &s.st
	s.touchChunk()
	if st.TouchPos == s.pp.TouchPages {
		now = s.now()
		s.print(workload.Touch{Done: true, Pages: st.TouchPos, Total: s.pp.TouchPages, MS: now / uint64(time.Millisecond)}.String())
		st.Due, st.DueFrac = now, 0
		st.NextVerify = now + pc.verify
	}
	return now
}

// writeDue makes the writes that are due by now (a batch at most), and
// drops a backlog longer than the allowed lag.
func (s *Machine) writeDue(now uint64, pc pace) {
	st := &s.st
	for n := 0; now >= st.Due && n < writeBatch; n++ {
		s.writeNext()
		st.Due += pc.wi
		st.DueFrac += pc.wf
		if st.DueFrac >= 1<<16 {
			st.DueFrac -= 1 << 16
			st.Due++
		}
	}
	if now > st.Due && now-st.Due > pc.maxLag {
		st.Due = now
		s.addStatus(workload.StatusLagResets, 1)
	}
}

// heartbeat prints the HB line (and the touch progress while filling).
func (s *Machine) heartbeat(now uint64, pc pace) {
	st := &s.st
	hz := uint64(time.Second)
	w := s.status(workload.StatusWrites)
	s.addStatus(workload.StatusHeartbeats, 1)
	s.print(workload.Heartbeat{T: now / hz, Writes: w, Verified: s.status(workload.StatusVerified),
		Rounds: s.status(workload.StatusRounds), Corrupt: s.status(workload.StatusCorrupt),
		WPS: (w - st.LastHBWrites) * 1_000_000 / s.pp.HeartbeatUS}.String())
	st.LastHBWrites = w
	if st.TouchPos < s.pp.TouchPages {
		s.print(workload.Touch{Pages: st.TouchPos, Total: s.pp.TouchPages, MS: now / uint64(time.Millisecond)}.String())
	}
	st.NextHB += pc.hb
	if st.NextHB <= now {
		st.NextHB = now + pc.hb
	}
}

// idle sleeps until the next thing is due, when that is far enough.
func (s *Machine) idle(pc pace) {
	st := &s.st
	now := s.now()
	next := st.NextHB
	if st.NextVerify < next {
		next = st.NextVerify
	}
	if s.pp.PagesPerSec > 0 && st.Due < next {
		next = st.Due
	}
	if next > now && next-now >= pc.minSleep {
		s.sleep(min(time.Duration(next-now), maxSleep))
	}
}

func (s *Machine) pick() uint64 {
	st := &s.st
	hot := s.pp.HotPages
	if workload.Pattern(s.pp.Pattern) == workload.PatternSequential {
		i := st.Cursor
		st.Cursor++
		if st.Cursor >= hot {
			st.Cursor = 0
		}
		return i
	}
	x := st.RNG
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	st.RNG = x
	return (x * 0x2545f4914f6cdd1d) % hot
}

// writePage writes the next generation of tracked page idx (hot set, then
// touched region).
func (s *Machine) writePage(idx uint64) {
	pg := s.pp.HotFirst + idx
	ent := workload.GenTableAddr + 8*idx
	s.setStatus(workload.StatusInFlight, pg+1)
	gen := atomic.LoadUint64(s.word(ent)) + 1
	workload.FillPage(s.mem[pg*workload.PageSize:], s.pp.Seed, pg, gen)
	s.markDirty(pg)
	atomic.StoreUint64(s.word(ent), gen)
	s.markDirty(ent / workload.PageSize)
	s.setStatus(workload.StatusInFlight, 0)
	s.addStatus(workload.StatusWrites, 1)
}

func (s *Machine) writeNext() { s.writePage(s.pick()) }

// touchChunk fills the next pages of the touched region (generation 1).
func (s *Machine) touchChunk() {
	st := &s.st
	for n := 0; n < touchBatch && st.TouchPos < s.pp.TouchPages; n++ {
		s.writePage(s.pp.HotPages + st.TouchPos)
		st.TouchPos++
	}
	s.setStatus(workload.StatusTouched, st.TouchPos)
}

// verifyChunk continues a verification round over the tracked pages (hot
// set and touched region).
func (s *Machine) verifyChunk() {
	st := &s.st
	tracked := s.pp.HotPages + s.pp.TouchPages
	checked, scanned := 0, 0
	for st.VPos < tracked && checked < verifyChunk && scanned < scanChunk {
		idx := st.VPos
		st.VPos++
		scanned++
		gen := atomic.LoadUint64(s.word(workload.GenTableAddr + 8*idx))
		if gen == 0 {
			continue
		}
		checked++
		pg := s.pp.HotFirst + idx
		m, ok := workload.CheckPage(s.mem[pg*workload.PageSize:], s.pp.Seed, pg, gen)
		s.addStatus(workload.StatusVerified, 1)
		if !ok {
			s.addStatus(workload.StatusCorrupt, 1)
			s.setStatus(workload.StatusLastCorrupt, pg+1)
			if st.Printed < corruptPrints {
				st.Printed++
				s.print(workload.FormatCorrupt(m))
			}
			s.writePage(idx) // repair, so the page is reported once
		}
	}
	if st.VPos >= tracked {
		st.Verifying = 0
		s.addStatus(workload.StatusRounds, 1)
	}
}

// simState is the sim engine's "vCPU state": everything the loop keeps
// outside guest memory. Times are nanoseconds of machine time.
type simState struct {
	Virtual      uint64
	RNG          uint64
	Cursor       uint64
	Due          uint64
	DueFrac      uint64
	NextVerify   uint64
	NextHB       uint64
	Verifying    uint64
	VPos         uint64
	LastHBWrites uint64
	Printed      uint64
	TouchPos     uint64 // pages of the touched region filled
}

var simStateMagic = [8]byte{'O', 'V', 'S', 'S', 'I', 'M', 'S', 'T'}

const (
	simStateVersion = 2
	simStateWords   = 12
)

func (st *simState) words() []*uint64 {
	return []*uint64{&st.Virtual, &st.RNG, &st.Cursor, &st.Due, &st.DueFrac,
		&st.NextVerify, &st.NextHB, &st.Verifying, &st.VPos, &st.LastHBWrites, &st.Printed, &st.TouchPos}
}

// MarshalBinary encodes the state: magic, version, word count, words.
func (st *simState) MarshalBinary() ([]byte, error) {
	b := make([]byte, 16+8*simStateWords)
	copy(b, simStateMagic[:])
	binary.LittleEndian.PutUint32(b[8:], simStateVersion)
	binary.LittleEndian.PutUint32(b[12:], simStateWords)
	for i, w := range st.words() {
		binary.LittleEndian.PutUint64(b[16+8*i:], *w)
	}
	return b, nil
}

// UnmarshalBinary decodes an untrusted state record.
func (st *simState) UnmarshalBinary(b []byte) error {
	if len(b) < 16 {
		return fmt.Errorf("sim state: %d bytes, too short", len(b))
	}
	if [8]byte(b[:8]) != simStateMagic {
		return errors.New("sim state: bad magic (not a sim engine state)")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != simStateVersion {
		return fmt.Errorf("sim state: version %d, want %d", v, simStateVersion)
	}
	if n := binary.LittleEndian.Uint32(b[12:]); n != simStateWords || len(b) != 16+8*simStateWords {
		return fmt.Errorf("sim state: %d words in %d bytes, want %d words", n, len(b), simStateWords)
	}
	var out simState
	for i, w := range out.words() {
		*w = binary.LittleEndian.Uint64(b[16+8*i:])
	}
	if out.Verifying > 1 || out.DueFrac >= 1<<16 || out.RNG == 0 {
		return errors.New("sim state: inconsistent fields")
	}
	*st = out
	return nil
}
