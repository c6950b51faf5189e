package pagexfer

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// DirtyModel says how a guest dirties memory, for Predict. In a window of
// t seconds, throttled to p%, it dirties
//
//	Hot * (1 - exp(-Rate*(1-p/100)*t / Hot))
//
// distinct bytes: pages written at random over a hot set of Hot bytes (the
// dirty set grows at Rate at first and saturates at the hot set). Hot 0 is
// an unbounded hot set: Rate*(1-p/100)*t.
type DirtyModel struct {
	Rate float64 // bytes per second of pages dirtied, over short intervals
	Hot  float64 // bytes the writes fall on; 0: unbounded
}

// Dirtied returns the distinct bytes dirtied in a window of d while
// throttled to throttle percent.
func (m DirtyModel) Dirtied(d time.Duration, throttle int) float64 {
	r := m.Rate * float64(100-max(0, min(throttle, 100))) / 100
	x := r * d.Seconds()
	if m.Hot <= 0 || x <= 0 {
		return max(x, 0)
	}
	return m.Hot * -math.Expm1(-x/m.Hot)
}

// FitDirtyModel fits the hot set to a measurement: the guest dirtied pages
// at rate (bytes per second over short intervals) and distinct bytes of
// them in a window of d. limit (the memory size) bounds the hot set.
func FitDirtyModel(rate float64, d time.Duration, distinct, limit float64) DirtyModel {
	m := DirtyModel{Rate: max(rate, 0)}
	x := m.Rate * d.Seconds()
	if x <= 0 || distinct <= 0 || limit <= 0 {
		return m
	}
	// H(1-exp(-x/H)) grows with H towards x: find the H that gives the
	// distinct bytes seen, within [distinct, limit].
	f := func(h float64) float64 { return h * -math.Expm1(-x/h) }
	if f(limit) <= distinct {
		m.Hot = limit
		return m
	}
	lo, hi := distinct, limit
	for range 100 {
		mid := (lo + hi) / 2
		if f(mid) < distinct {
			lo = mid
		} else {
			hi = mid
		}
		if hi-lo <= hi*1e-6 {
			break
		}
	}
	m.Hot = hi
	return m
}

// PredictInput is what Predict knows of a migration before it starts.
type PredictInput struct {
	// Options as Send would get them: Live, MaxDowntime, RateLimit and the
	// convergence settings (defaults filled in as Send fills them).
	Options Options
	// MemBytes is the guest's memory, Touched the part of it that holds
	// data (round 0 reads only that).
	MemBytes, Touched uint64
	// Bandwidth is what the link carries, in bytes per second, before the
	// rate cap in Options.
	Bandwidth float64
	Dirty     DirtyModel
	// StopCost is the fixed part of the downtime (pause, state, commit,
	// the target's start), added to the time of the last round.
	StopCost time.Duration
}

// Prediction is what Predict expects of a migration.
type Prediction struct {
	Total    time.Duration
	Downtime time.Duration
	Rounds   int // the stop-and-copy round included
	Reason   StopReason
	// PageBytes is the page data sent, all rounds.
	PageBytes uint64
	// Bandwidth is the rate the prediction used (the link or the cap).
	Bandwidth float64
	// MaxThrottle is the highest auto-converge step the guest would be
	// throttled to (0: none), for ThrottledFor.
	MaxThrottle  int
	ThrottledFor time.Duration
}

// Predict runs the live stop rule (the policy Send uses) over a model of
// the migration: round 0 sends the touched memory, every later round what
// the guest dirtied during the previous one, at the given bandwidth, less
// the pages the guest dirtied again during the round (Send skips them);
// the policy decides after each round whether to stop and whether to
// throttle the guest one step further, exactly as it does for a real Send.
// A non-live migration is one pass with the guest paused.
func Predict(in PredictInput) (Prediction, error) {
	o := in.Options
	// The header fields do not matter here; withDefaults wants them valid.
	o.VCPUs, o.Engine = 1, "predict"
	o, err := o.withDefaults()
	if err != nil {
		return Prediction{}, fmt.Errorf("predict: options: %w", err)
	}
	bw := in.Bandwidth
	if o.RateLimit > 0 && (bw <= 0 || o.RateLimit < bw) {
		bw = o.RateLimit
	}
	if !(bw > 0) || math.IsInf(bw, 0) {
		return Prediction{}, errors.New("predict: no bandwidth to predict with")
	}
	if in.MemBytes == 0 || in.Touched > in.MemBytes {
		return Prediction{}, fmt.Errorf("predict: %d bytes touched of %d", in.Touched, in.MemBytes)
	}
	secs := func(b float64) time.Duration { return time.Duration(b / bw * float64(time.Second)) }
	p := Prediction{Bandwidth: bw}
	if !o.Live || o.AlreadyPaused {
		t := secs(float64(in.Touched)) + in.StopCost
		p.Total, p.Downtime, p.Rounds, p.Reason, p.PageBytes = t, t, 1, StopNotLive, in.Touched
		return p, nil
	}
	pol := newPolicy(o, in.MemBytes)
	mem := float64(in.MemBytes)
	set := float64(in.Touched)
	hot := min(in.Dirty.Hot, set) // round 0: the hot set is part of the touched memory
	var sent float64              // page bytes of pre-copy rounds
	throttle := 0
	for round := 0; ; round++ {
		d, bytes := in.Dirty.round(set, hot, bw, throttle)
		dirty := min(in.Dirty.Dirtied(d, throttle), mem)
		sent += bytes
		p.Total += d
		if throttle > 0 {
			p.ThrottledFor += d
		}
		v := pol.next(roundReport{Round: round, Duration: d, Bytes: uint64(bytes), Dirty: uint64(dirty),
			SentTotal: uint64(sent), Window: d})
		if v.Throttle > throttle {
			throttle = v.Throttle
			p.MaxThrottle = max(p.MaxThrottle, throttle)
		}
		if v.Stop {
			// The throttle is released when the guest pauses.
			p.Downtime = secs(dirty) + in.StopCost
			p.Total += p.Downtime
			p.Rounds, p.Reason = round+2, v.Reason
			p.PageBytes = uint64(sent + dirty)
			return p, nil
		}
		// Every page dirtied lies in the hot set.
		set, hot = dirty, dirty
	}
}

// round models one pre-copy round over set bytes of dirty pages, hot of
// them in the hot set, at bw bytes per second: it returns the round's
// duration and the bytes it sends. As the round goes the guest dirties hot
// pages again, and the sender skips a page that the dirty log (fetched
// every fetchEvery) already shows dirty again: it goes in the next round
// anyway (xend's rule, as Send does it). Pages are assumed to lie in the
// set in no particular order.
func (m DirtyModel) round(set, hot, bw float64, throttle int) (time.Duration, float64) {
	if set <= 0 {
		return 0, 0
	}
	step := fetchEvery.Seconds()
	var t, sent float64
	for k := 0; set > 0; k++ {
		// The share of the hot set dirtied again since the round began,
		// as the last fetch saw it.
		p := 0.0
		if m.Hot > 0 && k > 0 {
			p = m.Dirtied(time.Duration(float64(k)*step*float64(time.Second)), throttle) / m.Hot
		}
		skip := 0.0 // the share of the pages ahead that the sender skips
		if hot > 0 {
			skip = min(hot/set*p, 1)
		}
		if skip >= 1-1e-9 || k >= 1_000_000 {
			// Everything left is skipped (or the model has run long
			// enough: finish at the current pace).
			send := set * (1 - skip)
			return time.Duration((t + send/bw) * float64(time.Second)), sent + send
		}
		use := min(set, step*bw/(1-skip)) // set bytes this step goes through
		send := use * (1 - skip)
		t += send / bw
		sent += send
		hot -= use * min(hot/set, 1)
		set -= use
	}
	return time.Duration(t * float64(time.Second)), sent
}
