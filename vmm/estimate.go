package vmm

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/control"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
)

// estimates keeps the dry run's measurements (control.OpEstimate) apart
// from migrations: both use the machine's one dirty log. xfer is held while
// an estimate starts and while a migration or save starts, so exactly one
// of them owns the log.
type estimates struct {
	xfer sync.Mutex
	mu   sync.Mutex
	cur  *estimator // the latest measurement
}

// estimator is one measurement running in its own goroutine.
type estimator struct {
	stop chan string   // a reason to end early
	done chan struct{} // closed when dirty logging is off again
	mu   sync.Mutex
	res  control.Estimate
}

func (e *estimator) result() control.Estimate {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.res
	r.Samples = append([]control.EstimateSample(nil), e.res.Samples...)
	return r
}

func (e *estimator) running() bool {
	select {
	case <-e.done:
		return false
	default:
		return true
	}
}

// exclusive runs start (a migration or save starting) as the dirty log's
// only user: a running estimate is ended first and its dirty logging
// turned off before start runs.
func (v *VMM) exclusive(start func() control.Response) control.Response {
	v.est.xfer.Lock()
	defer v.est.xfer.Unlock()
	v.est.mu.Lock()
	e := v.est.cur
	v.est.mu.Unlock()
	if e != nil && e.running() {
		select {
		case e.stop <- "a migration or save started":
		default:
		}
		<-e.done
	}
	return start()
}

// handleEstimate starts a measurement (req.Window > 0) or reports the
// latest one.
func (v *VMM) handleEstimate(req control.Request) control.Response {
	fail := func(format string, args ...any) control.Response {
		return control.Response{Error: fmt.Sprintf(format, args...)}
	}
	if req.Window <= 0 {
		v.est.mu.Lock()
		e := v.est.cur
		v.est.mu.Unlock()
		if e == nil {
			return fail("estimate: none was started")
		}
		r := e.result()
		return control.Response{Estimate: &r}
	}
	if req.Window > control.MaxEstimateWindow {
		return fail("estimate: window %v is above the %v allowed", req.Window, control.MaxEstimateWindow)
	}
	v.est.xfer.Lock()
	defer v.est.xfer.Unlock()
	v.mu.Lock()
	out, ram, state := v.out, v.ram, v.state
	v.mu.Unlock()
	if out != nil {
		if s := out.status(); s.Phase != control.PhaseFailed && s.Phase != control.PhaseCancelled {
			return fail("estimate: migration %s is in progress (%s); its dirty log is not to be disturbed", s.ID, s.Phase)
		}
	}
	v.est.mu.Lock()
	if v.est.cur != nil && v.est.cur.running() {
		v.est.mu.Unlock()
		return fail("estimate: another measurement is running")
	}
	m := v.mach()
	if m == nil || ram == nil {
		v.est.mu.Unlock()
		return fail("estimate: the machine is not running")
	}
	e := &estimator{stop: make(chan string, 1), done: make(chan struct{})}
	e.res.MemoryBytes = ram.Size()
	if pages, err := ram.DataPages(); err == nil {
		e.res.TouchedBytes = pages * workload.PageSize
	} else {
		v.est.mu.Unlock()
		return fail("estimate: %v", err)
	}
	v.est.cur = e
	v.est.mu.Unlock()
	if state == control.StatePaused {
		// A paused guest dirties nothing: no need to watch it.
		e.res.Paused, e.res.Done = true, true
		close(e.done)
	} else {
		go measureDirty(e, m, ram.Pages(), req.Window)
	}
	r := e.result()
	return control.Response{Estimate: &r}
}

// measureDirty watches the dirty log for window, fetching it every
// control.EstimateInterval, and leaves dirty logging off.
func measureDirty(e *estimator, m workload.Machine, pages uint64, window time.Duration) {
	finish := func(err error) {
		e.mu.Lock()
		if err != nil && e.res.Error == "" {
			e.res.Error = err.Error()
		}
		e.res.Done = true
		e.mu.Unlock()
		close(e.done)
	}
	if err := m.SetDirtyLogging(true); err != nil {
		finish(fmt.Errorf("estimate: turn dirty logging on: %w", err))
		return
	}
	words := guestmem.BitmapWords(pages)
	scratch, union := make([]uint64, words), make([]uint64, words)
	var tail uint64 = ^uint64(0)
	if r := pages % 64; r != 0 {
		tail = 1<<r - 1
	}
	var distinct, fetched uint64
	start := time.Now()
	t := time.NewTicker(control.EstimateInterval)
	var err error
loop:
	for {
		select {
		case why := <-e.stop:
			err = errors.New("estimate ended early: " + why)
			break loop
		case <-t.C:
		}
		if err = m.DirtyLog(scratch); err != nil {
			err = fmt.Errorf("estimate: fetch dirty log: %w", err)
			break
		}
		at := time.Since(start)
		scratch[words-1] &= tail
		for i, x := range scratch {
			if x == 0 {
				continue
			}
			fetched += uint64(bits.OnesCount64(x))
			if n := x &^ union[i]; n != 0 {
				distinct += uint64(bits.OnesCount64(n))
				union[i] |= n
			}
		}
		e.mu.Lock()
		e.res.Window = at
		e.res.DirtyRate = float64(fetched*workload.PageSize) / at.Seconds()
		e.res.Samples = append(e.res.Samples, control.EstimateSample{At: at, Bytes: distinct * workload.PageSize})
		e.mu.Unlock()
		if at >= window {
			break
		}
	}
	t.Stop()
	if oerr := m.SetDirtyLogging(false); oerr != nil {
		err = errors.Join(err, fmt.Errorf("estimate: turn dirty logging off: %w", oerr))
	}
	finish(err)
}
