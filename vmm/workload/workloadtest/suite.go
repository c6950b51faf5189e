package workloadtest

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
)

// Factory builds a machine over ram: a new one from params, or a restored
// one from state (a SaveState result). The suite stops every machine it
// builds; the factory may register further cleanup on t.
type Factory func(t testing.TB, ram *guestmem.RAM, params workload.Params, state []byte, console io.Writer) (workload.Machine, error)

// Timeout bounds every wait for a console line.
const Timeout = 10 * time.Second

func newRAM(t testing.TB, size uint64) *guestmem.RAM {
	t.Helper()
	return newBackedRAM(t, size, guestmem.Backing4K)
}

func newBackedRAM(t testing.TB, size uint64, b guestmem.Backing) *guestmem.RAM {
	t.Helper()
	r, err := guestmem.NewBackedRAM(t.Name(), size, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Params parses a vm.cfg workload spec (config/vmcfg.ParseWorkload, the
// one grammar) and turns it into the parameters of a guest with ramSize
// bytes of RAM (workload.ParamsFromSpec); it fails t on an error.
func Params(t testing.TB, spec string, ramSize uint64) workload.Params {
	t.Helper()
	w, err := vmcfg.ParseWorkload(spec)
	if err != nil {
		t.Fatalf("workload spec %q: %v", spec, err)
	}
	p, err := workload.ParamsFromSpec(w, ramSize)
	if err != nil {
		t.Fatalf("workload spec %q in %d MiB: %v", spec, ramSize>>20, err)
	}
	return p
}

func start(t testing.TB, f Factory, ram *guestmem.RAM, p workload.Params, state []byte, con io.Writer) workload.Machine {
	t.Helper()
	m, err := f(t, ram, p, state, con)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		m.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop() })
	return m
}

func mustPause(t testing.TB, m workload.Machine) {
	t.Helper()
	if err := m.Pause(); err != nil {
		t.Fatal(err)
	}
}

func mustResume(t testing.TB, m workload.Machine) {
	t.Helper()
	if err := m.Resume(); err != nil {
		t.Fatal(err)
	}
}

func heartbeat(t testing.TB, l *workload.Lines, from int) (workload.Heartbeat, int) {
	t.Helper()
	h, i, err := l.WaitHeartbeat(from, Timeout)
	if err != nil {
		t.Fatalf("%v; console:\n%v", err, l.All())
	}
	return h, i
}

func checkClean(t testing.TB, ram *guestmem.RAM) *workload.Report {
	t.Helper()
	rep, err := workload.Check(ram)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatalf("memory check: %v", err)
	}
	return rep
}

func noCorrupt(t testing.TB, l *workload.Lines) {
	t.Helper()
	for _, s := range l.All() {
		if len(s) >= 7 && s[:7] == "CORRUPT" {
			t.Fatalf("guest reported corruption: %s", s)
		}
	}
}

// Heartbeats: the machine boots, prints the start banner and heartbeats
// whose counters advance, reports no corruption, and its memory passes the
// checker when paused.
func Heartbeats(t *testing.T, f Factory) {
	ram := newRAM(t, 64<<20)
	con := &workload.Lines{}
	m := start(t, f, ram, Params(t, "dirty=4M/s,hot=16M,verify=200ms,hb=200ms", ram.Size()), nil, con)
	if _, _, err := con.Wait(0, Timeout, func(s string) bool { return len(s) > 14 && s[:14] == "WORKLOAD start" }); err != nil {
		t.Fatalf("no start banner: %v; console %v", err, con.All())
	}
	h1, i := heartbeat(t, con, 0)
	h2, _ := heartbeat(t, con, i+1)
	if h2.Writes <= h1.Writes || h2.Verified <= h1.Verified || h2.Corrupt != 0 {
		t.Fatalf("heartbeats do not advance: %+v then %+v", h1, h2)
	}
	mustPause(t, m)
	st := m.Stats()
	if st.State != workload.StateRunning || st.InFlight != 0 || st.Writes < h2.Writes {
		t.Fatalf("status page after pause: %+v", st)
	}
	rep := checkClean(t, ram)
	if rep.Written == 0 || rep.Written > st.Writes {
		t.Fatalf("checker saw %d written pages after %d writes", rep.Written, st.Writes)
	}
	if _, err := m.SaveState(); err != nil {
		t.Fatalf("SaveState of a paused machine: %v", err)
	}
	mustResume(t, m)
	if _, err := m.SaveState(); err == nil {
		t.Fatal("SaveState succeeded on a running machine")
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Done():
	case <-time.After(Timeout):
		t.Fatal("Done not closed after Stop")
	}
	if err := m.Err(); err != nil {
		t.Fatalf("Err after Stop: %v", err)
	}
	noCorrupt(t, con)
}

// DirtyLog: with logging on, the log names exactly the pages the workload
// wrote (explained against the generation table), a second fetch with the
// machine paused is empty, and logging off makes DirtyLog fail.
func DirtyLog(t *testing.T, f Factory) { DirtyLogOn(t, f, guestmem.Backing4K) }

// DirtyLogOn is DirtyLog over memory of backing b (hugetlb, thp: the
// caller has made the host offer it): the log names 4 KiB pages inside
// the 2 MiB ones, exactly those written.
func DirtyLogOn(t *testing.T, f Factory, b guestmem.Backing) {
	ram := newBackedRAM(t, 64<<20, b)
	con := &workload.Lines{}
	m := start(t, f, ram, Params(t, "dirty=8M/s,hot=8M,verify=100ms,hb=200ms", ram.Size()), nil, con)
	heartbeat(t, con, 0)
	words := guestmem.BitmapWords(ram.Pages())
	if err := m.DirtyLog(make([]uint64, words)); err == nil {
		t.Fatal("DirtyLog succeeded with logging off")
	}
	mustPause(t, m)
	l := checkClean(t, ram).Layout
	mustResume(t, m)
	rounds := 3
	if b != guestmem.Backing4K {
		rounds = 4
	}
	for round := 0; round < rounds; round++ {
		mustPause(t, m)
		before, err := workload.GenTable(ram, l)
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			if err := m.SetDirtyLogging(true); err != nil {
				t.Fatal(err)
			}
		} else if err := m.DirtyLog(make([]uint64, words)); err != nil { // clear
			t.Fatal(err)
		}
		// The guest runs 150 ms at a time until it wrote a page (a
		// loaded host may not run its vCPU in one such slice); the log
		// holds what it wrote in all of them.
		after, changed := before, 0
		for slice := 1; changed == 0; slice++ {
			if slice > 20 {
				t.Fatalf("round %d: no page written in 20 runs of 150 ms", round)
			}
			mustResume(t, m)
			time.Sleep(150 * time.Millisecond)
			mustPause(t, m)
			if after, err = workload.GenTable(ram, l); err != nil {
				t.Fatal(err)
			}
			for i := range before {
				if before[i] != after[i] {
					changed++
				}
			}
		}
		dirty := make([]uint64, words)
		for i := range dirty {
			dirty[i] = ^uint64(0) // must be overwritten
		}
		if err := m.DirtyLog(dirty); err != nil {
			t.Fatal(err)
		}
		check := workload.CheckDirtyLog
		if round == 0 && b != guestmem.Backing4K {
			// KVM's first log after logging is turned on over memory it
			// mapped with 2 MiB pages names some pages more than were
			// written (seen here: about as many again, on hugetlb and
			// thp alike; harmless, they are sent once more); none may be
			// missing, and the later logs must be exact.
			check = workload.CheckNoLostWrites
		}
		if err := check(l, before, after, dirty); err != nil {
			t.Fatalf("round %d (%d pages changed, %d dirty): %v", round, changed, guestmem.CountBits(dirty), err)
		}
		if b != guestmem.Backing4K && guestmem.CountBits(dirty) >= changed+int(guestmem.HugePageSize/guestmem.PageSize) {
			t.Fatalf("round %d: %d pages changed, %d dirty: the log is not of 4 KiB pages", round, changed, guestmem.CountBits(dirty))
		}
		again := make([]uint64, words)
		if err := m.DirtyLog(again); err != nil {
			t.Fatal(err)
		}
		if n := guestmem.CountBits(again); n != 0 {
			t.Fatalf("round %d: %d pages dirty again while paused: %v", round, n, guestmem.BitPages(again))
		}
		t.Logf("round %d: %d hot pages written, %d pages dirty", round, changed, guestmem.CountBits(dirty))
		mustResume(t, m)
	}
	if err := m.SetDirtyLogging(false); err != nil {
		t.Fatal(err)
	}
	if err := m.DirtyLog(make([]uint64, words)); err == nil {
		t.Fatal("DirtyLog succeeded after logging was turned off")
	}
	noCorrupt(t, con)
}

// Corrupt: a byte flipped by the host in a written page makes the guest
// print CORRUPT for that page within a verify interval or two, and the
// corrupt counter moves.
func Corrupt(t *testing.T, f Factory) {
	ram := newRAM(t, 64<<20)
	con := &workload.Lines{}
	// Sequential writes: a page well behind the cursor is not rewritten
	// for seconds, so only the verifier can notice the flip.
	m := start(t, f, ram, Params(t, "dirty=4M/s,hot=16M,pattern=sequential,verify=100ms,hb=500ms", ram.Size()), nil, con)
	time.Sleep(300 * time.Millisecond)
	mustPause(t, m)
	rep := checkClean(t, ram)
	l := rep.Layout
	gens, err := workload.GenTable(ram, l)
	if err != nil {
		t.Fatal(err)
	}
	written := uint64(0)
	for _, g := range gens {
		if g != 0 {
			written++
		}
	}
	if written < 4 {
		t.Fatalf("only %d pages written", written)
	}
	idx := written / 2
	page := l.HotFirst + idx
	off := page*workload.PageSize + 1000
	from := con.Len()
	ram.Bytes()[off] ^= 0x5a
	if rep, _ := workload.Check(ram); rep == nil || rep.Corrupt != 1 || rep.Mismatches[0].Page != page {
		t.Fatalf("checker does not see the flip: %+v", rep)
	}
	flipped := time.Now()
	mustResume(t, m)
	got, _, err := con.WaitCorrupt(from, Timeout)
	if err != nil {
		t.Fatalf("%v; console:\n%v", err, con.All())
	}
	if got.Page != page || got.Word != 1000/8 || got.Gen != gens[idx] || got.Want^got.Got != 0x5a<<(8*(1000%8)) {
		t.Fatalf("CORRUPT report %+v, want page %d word %d gen %d", got, page, 1000/8, gens[idx])
	}
	t.Logf("CORRUPT reported %v after the flip: %s", time.Since(flipped).Round(time.Millisecond), workload.FormatCorrupt(got))
	h, _ := heartbeat(t, con, con.Len())
	if h.Corrupt == 0 || m.Stats().Corrupt == 0 {
		t.Fatalf("corrupt counter not raised: %+v, stats %+v", h, m.Stats())
	}
	// The guest repaired the page (rewrote it): memory checks clean again.
	mustPause(t, m)
	checkClean(t, ram)
}

// SaveRestore: a paused machine's state plus a sparse copy of its memory
// continue in a new machine: heartbeats resume with time and counters
// carried over, no CORRUPT, memory checks clean; the copy stays sparse.
func SaveRestore(t *testing.T, f Factory) {
	ram := newRAM(t, 256<<20)
	con := &workload.Lines{}
	m := start(t, f, ram, Params(t, "dirty=8M/s,hot=32M,verify=100ms,hb=200ms", ram.Size()), nil, con)
	h1, i := heartbeat(t, con, 0)
	heartbeat(t, con, i+1)
	mustPause(t, m)
	state, err := m.SaveState()
	if err != nil {
		t.Fatal(err)
	}
	before := m.Stats()
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	// Copy only the pages that hold data, as a migration would.
	dst := newRAM(t, ram.Size())
	copied := CopyData(t, ram, dst)
	if n, _ := dst.DataPages(); n*workload.PageSize != copied {
		t.Fatalf("copy has %d data pages, copied %d bytes", n, copied)
	}
	checkClean(t, dst)

	con2 := &workload.Lines{}
	m2 := start(t, f, dst, workload.Params{}, state, con2)
	h2, j := heartbeat(t, con2, 0)
	h3, _ := heartbeat(t, con2, j+1)
	if h2.Writes < before.Writes || h3.Writes <= h2.Writes || h3.Verified <= h2.Verified || h3.Rounds <= h2.Rounds {
		t.Fatalf("restored machine does not continue: saved %+v, then %+v, %+v", before, h2, h3)
	}
	if h2.T < h1.T {
		t.Fatalf("guest time went backwards across restore: %d then %d", h1.T, h2.T)
	}
	noCorrupt(t, con2)
	mustPause(t, m2)
	rep := checkClean(t, dst)
	if rep.Written == 0 {
		t.Fatal("nothing written")
	}
	if st := m2.Stats(); st.Corrupt != 0 || st.Writes <= before.Writes {
		t.Fatalf("stats after restore %+v (before %+v)", st, before)
	}
	if _, err := f(t, dst, workload.Params{}, []byte("garbage"), nil); err == nil {
		t.Fatal("factory accepted a garbage state")
	}
}

// CopyData copies the pages of from that hold data into to, as a
// migration would, and returns the bytes copied.
func CopyData(t testing.TB, from, to *guestmem.RAM) uint64 {
	t.Helper()
	ranges, err := from.DataRanges()
	if err != nil {
		t.Fatal(err)
	}
	var copied uint64
	for _, r := range ranges {
		if _, err := from.ReadAt(to.Bytes()[r.Off:r.Off+r.Len], int64(r.Off)); err != nil {
			t.Fatal(err)
		}
		copied += r.Len
	}
	return copied
}

// Rate measures the achieved write rate against the configured one and
// returns both (pages per second); it does not assert timing.
func Rate(t *testing.T, f Factory, dirty string, period time.Duration) (want, got float64) {
	ram := newRAM(t, 256<<20)
	con := &workload.Lines{}
	p := Params(t, fmt.Sprintf("dirty=%s,hot=64M,verify=1s,hb=1s", dirty), ram.Size())
	m := start(t, f, ram, p, nil, con)
	time.Sleep(200 * time.Millisecond) // past the first-touch faults of boot
	w0, t0 := m.Stats().Writes, time.Now()
	time.Sleep(period)
	w1, t1 := m.Stats().Writes, time.Now()
	want = float64(p.PagesPerSecond())
	got = float64(w1-w0) / t1.Sub(t0).Seconds()
	t.Logf("write rate: configured %.0f pages/s (%s), achieved %.0f pages/s (%.1f%%), lag resets %d",
		want, dirty, got, 100*got/want, m.Stats().LagResets)
	noCorrupt(t, con)
	return want, got
}

// Sparse: an 8 GiB guest with a small hot set only allocates the pages it
// writes (counted with SEEK_DATA), and the checker does not fault the rest
// in either.
func Sparse(t *testing.T, f Factory) {
	ram := newRAM(t, 8<<30)
	con := &workload.Lines{}
	m := start(t, f, ram, Params(t, "dirty=8M/s,hot=16M,verify=100ms,hb=200ms", ram.Size()), nil, con)
	heartbeat(t, con, 0)
	mustPause(t, m)
	rep := checkClean(t, ram)
	data, err := ram.DataPages()
	if err != nil {
		t.Fatal(err)
	}
	// Written hot pages, plus the guest's own pages: parameters, status,
	// GDT/TSS, stack, page tables, code and the generation table.
	own := uint64(2 + 2 + (workload.StackTop-workload.StackBottom)/workload.PageSize +
		2 + uint64(rep.Layout.PageDirectories()) + workload.CodeMaxSize/workload.PageSize + rep.Layout.GenTableSize/workload.PageSize)
	t.Logf("8 GiB guest: %d pages hold data (%d hot pages written, %d guest-internal pages at most), of %d",
		data, rep.Written, own, ram.Pages())
	if data < rep.Written || data > rep.Written+own {
		t.Fatalf("%d data pages for %d written hot pages (allowing %d guest-internal)", data, rep.Written, own)
	}
	if after, _ := ram.DataPages(); after != data {
		t.Fatalf("checking memory allocated %d pages", after-data)
	}
}

// Throttle: a vCPU throttled to a fifth of its time writes markedly less
// when the guest is CPU bound (rate set beyond what it can do).
func Throttle(t *testing.T, f Factory) {
	ram := newRAM(t, 128<<20)
	con := &workload.Lines{}
	m := start(t, f, ram, Params(t, "dirty=64G/s,hot=32M,verify=1s,hb=1s", ram.Size()), nil, con)
	if err := m.SetThrottle(100); err == nil {
		t.Fatal("throttle of 100% accepted")
	}
	measure := func() float64 {
		w0, t0 := m.Stats().Writes, time.Now()
		time.Sleep(300 * time.Millisecond)
		return float64(m.Stats().Writes-w0) / time.Since(t0).Seconds()
	}
	time.Sleep(100 * time.Millisecond)
	// Free and throttled windows take turns, three of each, so that a
	// load from elsewhere on the host (other tests' guests) weighs on both
	// alike instead of on one window.
	var free, throttled float64
	for range 3 {
		free += measure()
		if err := m.SetThrottle(80); err != nil {
			t.Fatal(err)
		}
		throttled += measure()
		if err := m.SetThrottle(0); err != nil {
			t.Fatal(err)
		}
	}
	free, throttled = free/3, throttled/3
	t.Logf("CPU-bound write rate: %.0f pages/s free, %.0f pages/s throttled 80%% (%.0f%%)", free, throttled, 100*throttled/free)
	if throttled > 0.6*free {
		t.Fatalf("throttling to 20%% left the rate at %.0f%% of the unthrottled one", 100*throttled/free)
	}
	noCorrupt(t, con)
}

// TouchTimeout bounds the wait for a touch fill of 1 GiB.
const TouchTimeout = 60 * time.Second

// Touch: a 2 GiB guest with touch=1G,dirty=0 fills exactly the touched
// region, once (generation 1, every page checked in full), and nothing of
// the hot set, which stays a hole: about 1 GiB of data pages, the rest
// holes (SEEK_DATA). TOUCH done reports the pages. A byte flipped in a
// touched page is found by the checker and reported CORRUPT by the guest,
// which repairs it.
func Touch(t *testing.T, f Factory) {
	ram := newRAM(t, 2<<30)
	con := &workload.Lines{}
	const touchPages = 1 << 30 / workload.PageSize
	t0 := time.Now()
	m := start(t, f, ram, Params(t, "touch=1G,dirty=0,verify=200ms,hb=200ms", ram.Size()), nil, con)
	done, _, err := con.WaitTouchDone(0, TouchTimeout)
	if err != nil {
		t.Fatalf("%v; console:\n%v", err, con.All())
	}
	fill := time.Since(t0)
	if !done.Done || done.Pages != touchPages || done.Total != touchPages {
		t.Fatalf("TOUCH done line %+v, want %d pages", done, touchPages)
	}
	mustPause(t, m)
	st := m.Stats()
	if st.Touched != touchPages || st.Writes != touchPages || st.InFlight != 0 {
		t.Fatalf("status after the fill: %+v, want %d pages touched and written", st, touchPages)
	}
	rep := checkClean(t, ram)
	l := rep.Layout
	if l.TouchPages != touchPages || rep.Written != touchPages || rep.Unwritten != l.HotPages {
		t.Fatalf("checker: %d written, %d unwritten; layout %+v", rep.Written, rep.Unwritten, l)
	}
	gens, err := workload.GenTable(ram, l)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range gens {
		if want := uint64(i) / l.HotPages; g != min(want, 1) {
			t.Fatalf("tracked page %d (RAM page %d) has generation %d after the fill", i, l.HotFirst+uint64(i), g)
		}
	}
	data := touchedData(t, ram, l)
	t.Logf("2 GiB guest, touch=1G: filled in %v (TOUCH done at %d ms guest time); %d data pages = %d touched + %d guest-internal; %d of %d pages are holes",
		fill.Round(time.Millisecond), done.MS, data, touchPages, data-touchPages, ram.Pages()-data, ram.Pages())

	idx := l.HotPages + touchPages/2
	page := l.HotFirst + idx
	from := con.Len()
	ram.Bytes()[page*workload.PageSize+2000] ^= 0x81
	if rep, err := workload.Check(ram); err != nil || rep.Corrupt != 1 || rep.Mismatches[0].Page != page || rep.Mismatches[0].Gen != 1 {
		t.Fatalf("checker does not see the flip in touched page %d: %+v %v", page, rep, err)
	}
	mustResume(t, m)
	got, _, err := con.WaitCorrupt(from, Timeout)
	if err != nil {
		t.Fatalf("%v; console:\n%v", err, con.All())
	}
	if got.Page != page || got.Gen != 1 || got.Word != 2000/8 || got.Want^got.Got != 0x81<<(8*(2000%8)) {
		t.Fatalf("CORRUPT report %+v, want page %d gen 1 word %d", got, page, 2000/8)
	}
	mustPause(t, m)
	rep = checkClean(t, ram)
	if rep.Written != touchPages {
		t.Fatalf("after the repair %d pages written, want %d", rep.Written, touchPages)
	}
	if gens, _ := workload.GenTable(ram, l); gens[idx] != 2 {
		t.Fatalf("repaired page has generation %d, want 2", gens[idx])
	}
	noCorruptExcept(t, con, page)
}

// touchedData checks that memory holds data exactly where the guest
// wrote: its own pages below the hot set and the whole touched region;
// the hot set is a hole. It returns the data pages.
func touchedData(t *testing.T, ram *guestmem.RAM, l workload.Layout) uint64 {
	t.Helper()
	ranges, err := ram.DataRanges()
	if err != nil {
		t.Fatal(err)
	}
	touchStart, touchEnd := l.TouchFirst()*workload.PageSize, (l.TouchFirst()+l.TouchPages)*workload.PageSize
	var data, inTouch uint64
	for _, r := range ranges {
		data += r.Len / workload.PageSize
		switch {
		case r.Off+r.Len <= l.HotFirst*workload.PageSize:
		case r.Off >= touchStart && r.Off+r.Len <= touchEnd:
			inTouch += r.Len
		default:
			t.Fatalf("data at %#x+%#x outside the guest's own pages and the touched region [%#x, %#x)", r.Off, r.Len, touchStart, touchEnd)
		}
	}
	if inTouch != touchEnd-touchStart {
		t.Fatalf("touched region holds %d bytes of data, want %d", inTouch, touchEnd-touchStart)
	}
	return data
}

// TouchSaveRestore: the fill comes before any dirtying (every heartbeat
// during the fill counts exactly the touched pages), survives a save and a
// restore into a new machine over a sparse copy of memory half way through
// (it continues where it stopped: every touched page is written once), and
// then the guest dirties only its hot set.
func TouchSaveRestore(t *testing.T, f Factory) {
	ram := newRAM(t, 512<<20)
	con := &workload.Lines{}
	p := Params(t, "touch=256M,hot=16M,dirty=4M/s,verify=100ms,hb=100ms", ram.Size())
	const touchPages = 256 << 20 / workload.PageSize
	m := start(t, f, ram, p, nil, con)
	if err := m.SetThrottle(95); err != nil { // a slow fill, to be caught half way
		t.Fatal(err)
	}
	if _, _, err := con.Wait(0, Timeout, func(s string) bool { return strings.HasPrefix(s, "TOUCH progress ") }); err != nil {
		t.Fatalf("no TOUCH progress line: %v; console:\n%v", err, con.All())
	}
	mustPause(t, m)
	before := m.Stats()
	if before.Touched == 0 || before.Touched >= touchPages || before.Writes != before.Touched {
		t.Fatalf("paused during the fill with %+v: want 0 < touched < %d and no other writes", before, touchPages)
	}
	state, err := m.SaveState()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	lines := con.All()
	progress := 0
	for i, s := range lines {
		if !strings.HasPrefix(s, "TOUCH ") {
			continue
		}
		tl, err := workload.ParseTouch(s)
		if err != nil || tl.Done || tl.Total != touchPages {
			t.Fatalf("console line %q: %+v %v", s, tl, err)
		}
		h, err := workload.ParseHeartbeat(lines[i-1])
		if err != nil || h.Writes != tl.Pages {
			t.Fatalf("%q after %q: pages other than touched ones written during the fill (%v)", s, lines[i-1], err)
		}
		progress++
	}
	dst := newRAM(t, ram.Size())
	CopyData(t, ram, dst)
	con2 := &workload.Lines{}
	m2 := start(t, f, dst, workload.Params{}, state, con2)
	done, _, err := con2.WaitTouchDone(0, TouchTimeout)
	if err != nil {
		t.Fatalf("%v; console:\n%v", err, con2.All())
	}
	if done.Pages != touchPages {
		t.Fatalf("TOUCH done %+v after restore, want %d pages", done, touchPages)
	}
	// The second heartbeat after the fill is a full interval into the
	// dirtying.
	_, i := heartbeat(t, con2, con2.Len())
	h, _ := heartbeat(t, con2, i+1)
	mustPause(t, m2)
	st := m2.Stats()
	rep := checkClean(t, dst)
	l := rep.Layout
	gens, err := workload.GenTable(dst, l)
	if err != nil {
		t.Fatal(err)
	}
	var hotWrites uint64
	for i, g := range gens {
		switch {
		case uint64(i) >= l.HotPages && g != 1:
			t.Fatalf("touched page %d has generation %d: written %d times", l.HotFirst+uint64(i), g, g)
		case uint64(i) < l.HotPages:
			hotWrites += g
		}
	}
	if st.Touched != touchPages || hotWrites == 0 || st.Writes != touchPages+hotWrites || h.Writes <= touchPages {
		t.Fatalf("after restore: stats %+v, heartbeat %+v, %d hot-set writes: want every touched page written once, then the hot set", st, h, hotWrites)
	}
	t.Logf("paused the fill at %d of %d pages after %d progress lines; the restored machine finished it at %d ms guest time and then wrote the hot set %d times",
		before.Touched, touchPages, progress, done.MS, hotWrites)
	noCorrupt(t, con2)
}

// noCorruptExcept fails t if the guest reported a page other than page.
func noCorruptExcept(t testing.TB, l *workload.Lines, page uint64) {
	t.Helper()
	for _, s := range l.All() {
		if m, err := workload.ParseCorrupt(s); err == nil && m.Page != page {
			t.Fatalf("guest reported corruption: %s", s)
		}
	}
}
