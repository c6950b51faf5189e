package vmm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/control"
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
	out, up, state := v.out, v.up, v.state
	v.mu.Unlock()
	if out != nil && out.busy() {
		s := out.status()
		return fail("estimate: migration %s is in progress (%s); its dirty log is not to be disturbed", s.ID, s.Phase)
	}
	v.est.mu.Lock()
	defer v.est.mu.Unlock()
	if v.est.cur != nil && v.est.cur.running() {
		return fail("estimate: another measurement is running")
	}
	if !up {
		return fail("estimate: the machine is not running")
	}
	e := &estimator{stop: make(chan string, 1), done: make(chan struct{})}
	e.res.MemoryBytes = v.engine.MemoryBytes()
	touched, err := v.engine.ResidentBytes()
	if err != nil {
		return fail("estimate: %v", err)
	}
	e.res.TouchedBytes = touched
	v.est.cur = e
	if state == control.StatePaused {
		// A paused guest dirties nothing: no need to watch it.
		e.res.Paused, e.res.Done = true, true
		close(e.done)
	} else {
		go e.measure(v.engine, req.Window)
	}
	r := e.result()
	return control.Response{Estimate: &r}
}

// measure has the engine watch the guest's writes for window, or until
// a migration or save starts.
func (e *estimator) measure(eng Engine, window time.Duration) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go func() {
		select {
		case why := <-e.stop:
			cancel(errors.New(why))
		case <-ctx.Done():
		}
	}()
	err := eng.MeasureDirty(ctx, window, func(s DirtySample) {
		e.mu.Lock()
		e.res.Window = s.At
		e.res.DirtyRate = float64(s.Dirtied) / s.At.Seconds()
		e.res.Samples = append(e.res.Samples, control.EstimateSample{At: s.At, Bytes: s.Distinct})
		e.mu.Unlock()
	})
	if err != nil {
		err = fmt.Errorf("estimate: %w", err)
	}
	if ctx.Err() != nil {
		err = errors.Join(errors.New("estimate ended early: "+context.Cause(ctx).Error()), err)
	}
	e.mu.Lock()
	if err != nil && e.res.Error == "" {
		e.res.Error = err.Error()
	}
	e.res.Done = true
	e.mu.Unlock()
	close(e.done)
}
