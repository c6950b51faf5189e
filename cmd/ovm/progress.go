package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/cupwriter"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// A progressView shows a migration's progress while ovm follows it:
// update with every migration.status read, finish once with the last one
// (ok: it completed) before anything else is printed.
type progressView interface {
	update(st map[string]any)
	finish(st map[string]any, ok bool)
}

// newProgress picks the view for w: a bar with rate and ETA redrawn in
// place when w is a terminal (tty), else plain lines, one per change (what
// scripts and the tests parse).
func newProgress(w io.Writer, tty bool) progressView {
	if tty {
		return newBarProgress(w)
	}
	return &lineProgress{w: w}
}

// isTerminal says whether w is a terminal ovm may draw on (TERM=dumb is
// not). /dev/null is a character device but no terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && !strings.EqualFold(os.Getenv("TERM"), "dumb")
}

// lineProgress prints "[####......]  40% phase round 2  sent ..." each
// time the line changes, as ovm always did off a terminal.
type lineProgress struct {
	w    io.Writer
	last string
}

func (p *lineProgress) update(st map[string]any) {
	line := fmt.Sprintf("%s %-10v %s", bar(st), st["phase"], progressLine(st))
	if line != p.last {
		fmt.Fprintln(p.w, line)
	}
	p.last = line
}

func (p *lineProgress) finish(st map[string]any, _ bool) { p.update(st) }

// barProgress is the terminal view: an mpb bar (github.com/vbauerster/mpb)
// with the phase before it and the percentage, bytes done of the total,
// the rate and the ETA after it, the rate as the agent measures it.
type barProgress struct {
	p   *mpb.Progress
	b   *mpb.Bar
	mu  sync.Mutex
	st  map[string]any // the last status read
	end bool
}

func newBarProgress(w io.Writer) *barProgress {
	v := &barProgress{st: map[string]any{}}
	cw := termWriter{cupwriter.New(w, true)}
	v.p = mpb.New(mpb.WithConsoleWriter(cw), mpb.WithRefreshRate(150*time.Millisecond))
	v.b = v.p.New(0, mpb.BarStyle().Lbound("[").Filler("=").Tip(">").Padding(" ").Rbound("]"),
		mpb.BarWidth(30),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return v.phase() }, decor.WC{W: 10, C: decor.DindentRight})),
		mpb.AppendDecorators(decor.Percentage(decor.WC{W: 6}), decor.Any(func(s decor.Statistics) string { return v.details(s.AvailableWidth) })))
	return v
}

// termWriter is mpb's terminal writer (cursor up and erase before each
// redraw) on what ovm decided is a terminal; a terminal that does not
// say its size (a serial console, a pty nobody sized) is taken as 100
// columns, where mpb would draw nothing.
type termWriter struct{ *cupwriter.Writer }

func (termWriter) IsTerminal() bool { return true }

func (t termWriter) GetTermSize() (width, height int, err error) {
	if t.Writer.IsTerminal() {
		if w, h, err := t.Writer.GetTermSize(); err == nil && w > 0 {
			return w, max(h, 1), nil
		}
	}
	return 100, 25, nil
}

func (v *barProgress) update(st map[string]any) {
	v.mu.Lock()
	v.st = st
	v.mu.Unlock()
	done, total := progressBytes(st)
	v.b.SetTotal(max(total, 1), false)
	v.b.SetCurrent(min(done, max(total, 1)))
}

func (v *barProgress) finish(st map[string]any, ok bool) {
	v.mu.Lock()
	v.st, v.end = st, true
	v.mu.Unlock()
	if ok {
		_, total := progressBytes(st)
		v.b.SetTotal(max(total, 1), true)
	} else {
		v.b.Abort(false)
	}
	v.p.Wait()
}

func (v *barProgress) phase() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return fmt.Sprint(orDash(v.st["phase"]))
}

// details is barDetails, its live extras left out where they would leave
// the bar less than 30 columns of the width.
func (v *barProgress) details(width int) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, extra := barDetails(v.st, v.end)
	if width-len(s)-len(extra) >= 30+10+6 { // the bar, the phase, the percentage
		s += extra
	}
	return "  " + s
}

// barDetails is what follows the terminal bar: bytes done of the total,
// the rate, the ETA (what is left at the current rate; "-" without a
// rate); and what a live migration adds when there is room (the round,
// the dirty rate, the throttle).
func barDetails(st map[string]any, end bool) (s, extra string) {
	done, total := progressBytes(st)
	tp := num(st["throughput"])
	eta := "-"
	if end {
		eta = "0 ms"
	} else if tp > 0 && total > done {
		eta = durationText(time.Duration(float64(total-done) / tp * float64(time.Second)))
	}
	s = fmt.Sprintf("%s / %s  %s  ETA %s", sizeText(done), sizeText(total), rateText(tp), eta)
	if st["offline"] != true {
		extra = fmt.Sprintf("  round %d  dirty %s  throttle %d%%", int64(num(st["round"])), rateText(num(st["dirty_rate"])), int64(num(st["throttle_percent"])))
	}
	return s, extra
}

// progressBytes is how far a migration is, in bytes: an offline copy's
// share of its data, a live migration's bytes sent of those sent and left
// (the total grows while the guest dirties pages).
func progressBytes(st map[string]any) (done, total int64) {
	if st["offline"] == true {
		total = int64(num(st["bytes_total"]))
		done = int64(float64(total) * num(st["percent"]) / 100)
		if st["phase"] == "completed" {
			done = total
		}
		return done, total
	}
	done = int64(num(st["bytes_sent"]))
	total = done + int64(num(st["bytes_remaining"]))
	if st["phase"] == "completed" {
		total = done
	}
	return done, total
}
