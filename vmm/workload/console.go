package workload

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Console lines printed by the workload (both engines print the same):
//
//	WORKLOAD start engine=kvm ram=<pages> hot=<first>+<pages> [touch=<first>+<pages>] rate=<pages/s> pattern=<p> verify=<ms> seed=<n>
//	HB t=<s> writes=<n> verified=<n> rounds=<n> corrupt=<n> wps=<n>
//	TOUCH progress pages=<n> total=<n> ms=<ms>   (with each HB while the touch fill runs)
//	TOUCH done pages=<n> total=<n> ms=<ms>       (once, when the fill is complete)
//	CORRUPT page=<n> gen=<n> word=<n> want=0x<hex> got=0x<hex>
//	WORKLOAD fatal: <reason>
//
// The touch= fill prints nothing when there is nothing to touch. ms is the
// guest's time since the workload started.

// Heartbeat is a parsed HB line.
type Heartbeat struct {
	T        uint64 // guest seconds since the workload started
	Writes   uint64
	Verified uint64
	Rounds   uint64
	Corrupt  uint64
	WPS      uint64 // page writes per second over the last heartbeat interval
}

// String formats the heartbeat line (without the newline).
func (h Heartbeat) String() string {
	return fmt.Sprintf("HB t=%d writes=%d verified=%d rounds=%d corrupt=%d wps=%d",
		h.T, h.Writes, h.Verified, h.Rounds, h.Corrupt, h.WPS)
}

// FormatCorrupt formats the CORRUPT line for m (without the newline).
func FormatCorrupt(m Mismatch) string {
	return fmt.Sprintf("CORRUPT page=%d gen=%d word=%d want=%#x got=%#x", m.Page, m.Gen, m.Word, m.Want, m.Got)
}

// Touch is a parsed TOUCH line: the progress of the touch= fill.
type Touch struct {
	Done  bool   // a "TOUCH done" line: the fill is complete
	Pages uint64 // pages filled so far
	Total uint64 // pages to fill (Layout.TouchPages)
	MS    uint64 // guest milliseconds since the workload started
}

// String formats the TOUCH line (without the newline).
func (t Touch) String() string {
	what := "progress"
	if t.Done {
		what = "done"
	}
	return fmt.Sprintf("TOUCH %s pages=%d total=%d ms=%d", what, t.Pages, t.Total, t.MS)
}

// ParseTouch parses a TOUCH progress or done line. Unknown extra fields are
// ignored.
func ParseTouch(line string) (Touch, error) {
	var t Touch
	tag := "TOUCH progress"
	if strings.HasPrefix(line, "TOUCH done ") {
		t.Done, tag = true, "TOUCH done"
	}
	m, err := fields(line, tag)
	if err != nil {
		return Touch{}, err
	}
	for _, f := range []struct {
		k string
		p *uint64
	}{{"pages", &t.Pages}, {"total", &t.Total}, {"ms", &t.MS}} {
		if *f.p, err = uintField(m, tag, f.k); err != nil {
			return Touch{}, err
		}
	}
	if t.Pages > t.Total || (t.Done && t.Pages != t.Total) {
		return Touch{}, fmt.Errorf("%s line: pages=%d of total=%d", tag, t.Pages, t.Total)
	}
	return t, nil
}

// fields parses "TAG k=v k=v ..." into a map; it rejects duplicate keys and
// items that are not key=value.
func fields(line, tag string) (map[string]string, error) {
	line = strings.TrimRight(line, "\r\n")
	rest, ok := strings.CutPrefix(line, tag+" ")
	if !ok {
		return nil, fmt.Errorf("not a %s line", tag)
	}
	m := map[string]string{}
	for _, f := range strings.Fields(rest) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s line: %q is not key=value", tag, f)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%s line: %s given twice", tag, k)
		}
		m[k] = v
	}
	return m, nil
}

func uintField(m map[string]string, tag, k string) (uint64, error) {
	v, ok := m[k]
	if !ok {
		return 0, fmt.Errorf("%s line: no %s", tag, k)
	}
	n, err := strconv.ParseUint(v, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("%s line: %s=%q is not an unsigned integer", tag, k, v)
	}
	return n, nil
}

// ParseHeartbeat parses an HB line. Unknown extra fields are ignored so
// newer guests stay readable.
func ParseHeartbeat(line string) (Heartbeat, error) {
	m, err := fields(line, "HB")
	if err != nil {
		return Heartbeat{}, err
	}
	var h Heartbeat
	for _, f := range []struct {
		k string
		p *uint64
	}{{"t", &h.T}, {"writes", &h.Writes}, {"verified", &h.Verified}, {"rounds", &h.Rounds}, {"corrupt", &h.Corrupt}, {"wps", &h.WPS}} {
		if *f.p, err = uintField(m, "HB", f.k); err != nil {
			return Heartbeat{}, err
		}
	}
	return h, nil
}

// ParseCorrupt parses a CORRUPT line.
func ParseCorrupt(line string) (Mismatch, error) {
	m, err := fields(line, "CORRUPT")
	if err != nil {
		return Mismatch{}, err
	}
	var c Mismatch
	var word uint64
	for _, f := range []struct {
		k string
		p *uint64
	}{{"page", &c.Page}, {"gen", &c.Gen}, {"word", &word}, {"want", &c.Want}, {"got", &c.Got}} {
		if *f.p, err = uintField(m, "CORRUPT", f.k); err != nil {
			return Mismatch{}, err
		}
	}
	if word >= PageWords {
		return Mismatch{}, fmt.Errorf("CORRUPT line: word=%d beyond a page (%d words)", word, PageWords)
	}
	c.Word = int(word)
	return c, nil
}

// Lines is an io.Writer that records console lines (each Write is one or
// more complete lines, as the engines write them) and lets a caller wait for
// a line, for example a heartbeat or a CORRUPT report. It keeps at most
// Max lines (the oldest are dropped; 0 means 10000). Safe for concurrent use.
type Lines struct {
	Max int

	mu      sync.Mutex
	cond    *sync.Cond
	lines   []string
	dropped int // lines dropped from the front
}

func (l *Lines) init() {
	if l.cond == nil {
		l.cond = sync.NewCond(&l.mu)
	}
}

// Write records the lines in p.
func (l *Lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	for _, s := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l.lines = append(l.lines, strings.TrimRight(s, "\r"))
	}
	max := l.Max
	if max <= 0 {
		max = 10000
	}
	if n := len(l.lines) - max; n > 0 {
		l.lines = append([]string(nil), l.lines[n:]...)
		l.dropped += n
	}
	l.cond.Broadcast()
	return len(p), nil
}

// All returns the recorded lines.
func (l *Lines) All() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// Len returns the number of lines written so far (including dropped ones):
// a position to wait from.
func (l *Lines) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped + len(l.lines)
}

// Wait returns the first line at position from or later for which match
// is true, and its position; it gives up after timeout.
func (l *Lines) Wait(from int, timeout time.Duration, match func(string) bool) (string, int, error) {
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, func() {
		l.mu.Lock()
		l.init()
		l.cond.Broadcast()
		l.mu.Unlock()
	})
	defer t.Stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	for i := from; ; {
		if i < l.dropped {
			i = l.dropped
		}
		for ; i < l.dropped+len(l.lines); i++ {
			if s := l.lines[i-l.dropped]; match(s) {
				return s, i, nil
			}
		}
		if !time.Now().Before(deadline) {
			return "", i, fmt.Errorf("no matching console line within %v", timeout)
		}
		l.cond.Wait()
	}
}

// WaitHeartbeat waits for the next HB line at position from or later.
func (l *Lines) WaitHeartbeat(from int, timeout time.Duration) (Heartbeat, int, error) {
	s, i, err := l.Wait(from, timeout, func(s string) bool { return strings.HasPrefix(s, "HB ") })
	if err != nil {
		return Heartbeat{}, i, fmt.Errorf("heartbeat: %w", err)
	}
	h, err := ParseHeartbeat(s)
	return h, i, err
}

// WaitTouchDone waits for the TOUCH done line at position from or later.
func (l *Lines) WaitTouchDone(from int, timeout time.Duration) (Touch, int, error) {
	s, i, err := l.Wait(from, timeout, func(s string) bool { return strings.HasPrefix(s, "TOUCH done ") })
	if err != nil {
		return Touch{}, i, fmt.Errorf("touch fill: %w", err)
	}
	t, err := ParseTouch(s)
	return t, i, err
}

// WaitCorrupt waits for the next CORRUPT line at position from or later.
func (l *Lines) WaitCorrupt(from int, timeout time.Duration) (Mismatch, int, error) {
	s, i, err := l.Wait(from, timeout, func(s string) bool { return strings.HasPrefix(s, "CORRUPT ") })
	if err != nil {
		return Mismatch{}, i, fmt.Errorf("CORRUPT report: %w", err)
	}
	m, err := ParseCorrupt(s)
	return m, i, err
}
