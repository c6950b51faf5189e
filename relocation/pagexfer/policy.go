package pagexfer

import (
	"fmt"
	"math"
	"time"
)

// StopReason says why a live migration stopped iterating and paused the
// source.
type StopReason int

const (
	// StopNotLive: a non-live transfer (or save) pauses first and makes
	// one pass.
	StopNotLive StopReason = iota
	// StopDowntime: the memory still dirty could be sent within
	// MaxDowntime at the measured bandwidth.
	StopDowntime
	// StopMaxRounds: the round backstop (MaxRounds, xend's 30) was reached.
	StopMaxRounds
	// StopMaxFactor: the data backstop (MaxFactor times the memory size,
	// xend's 3x) was reached.
	StopMaxFactor
)

func (r StopReason) String() string {
	switch r {
	case StopNotLive:
		return "not live"
	case StopDowntime:
		return "downtime target reached"
	case StopMaxRounds:
		return "round limit reached"
	case StopMaxFactor:
		return "data limit reached"
	}
	return fmt.Sprintf("StopReason(%d)", int(r))
}

// minMeasureBytes: rounds that moved less than this do not replace the
// bandwidth estimate (their time is dominated by latency, not the link).
const minMeasureBytes = 1 << 20

// policy is the convergence policy of a live migration: after every
// pre-copy round it updates the bandwidth estimate, predicts the downtime
// of stopping now, and decides whether to stop and whether to throttle the
// guest one step further.
type policy struct {
	maxDowntime time.Duration
	maxRounds   int
	maxSent     uint64 // data bytes
	auto        bool
	trigger     float64
	after       int
	steps       []int

	bw   float64 // bytes per second
	bad  int     // consecutive rounds in which the guest outran the trigger
	step int     // index of the next throttle step
}

// roundReport describes a pre-copy round that just ended.
type roundReport struct {
	Round     int           // index of the round (0 is the first pass)
	Duration  time.Duration // wall time of the round
	Bytes     uint64        // stream bytes the round put on the wire
	Dirty     uint64        // bytes of pages dirty and not yet sent at its end
	SentTotal uint64        // page data bytes sent by all rounds so far
	// Window is the time over which Dirty accumulated: since the dirty
	// log fetch that ended the previous round (Duration when zero).
	Window time.Duration
}

// verdict is the policy's decision after a round.
type verdict struct {
	Stop      bool
	Reason    StopReason
	Throttle  int     // new throttle percentage, or -1 for no change
	Bandwidth float64 // bytes per second, current estimate
	DirtyRate float64 // bytes per second dirtied during the round
	Expected  time.Duration
}

func newPolicy(o Options, memSize uint64) *policy {
	return &policy{
		maxDowntime: o.MaxDowntime,
		maxRounds:   o.MaxRounds,
		maxSent:     uint64(o.MaxFactor * float64(memSize)),
		auto:        !o.DisableAutoConverge,
		trigger:     o.ThrottleTrigger,
		after:       o.ThrottleAfter,
		steps:       o.ThrottleSteps,
	}
}

// expected returns the predicted time to send dirty bytes.
func expected(dirty uint64, bw float64) time.Duration {
	if dirty == 0 {
		return 0
	}
	if bw <= 0 {
		return time.Duration(math.MaxInt64)
	}
	s := float64(dirty) / bw
	if s >= float64(math.MaxInt64)/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}

func (p *policy) next(r roundReport) verdict {
	secs := r.Duration.Seconds()
	if secs > 0 && (r.Bytes >= minMeasureBytes || p.bw == 0) {
		p.bw = float64(r.Bytes) / secs
	}
	v := verdict{Throttle: -1, Bandwidth: p.bw}
	win := r.Window
	if win <= 0 {
		win = r.Duration
	}
	if win > 0 {
		v.DirtyRate = float64(r.Dirty) / win.Seconds()
	}
	v.Expected = expected(r.Dirty, p.bw)
	switch {
	case v.Expected <= p.maxDowntime:
		v.Stop, v.Reason = true, StopDowntime
	case r.Round+2 >= p.maxRounds:
		v.Stop, v.Reason = true, StopMaxRounds
	case r.SentTotal >= p.maxSent:
		v.Stop, v.Reason = true, StopMaxFactor
	}
	if v.Stop || !p.auto {
		return v
	}
	if v.DirtyRate > p.trigger*p.bw {
		p.bad++
		if p.bad >= p.after && p.step < len(p.steps) {
			v.Throttle = p.steps[p.step]
			p.step++
			p.bad = 0
		}
	} else {
		p.bad = 0
	}
	return v
}
