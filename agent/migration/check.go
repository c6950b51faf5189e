package migration

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// Report is a dry run's answer: every reason the migration would fail
// (none: it would work), each as "field: message", and what the target
// says it offers a qemu domain (nil for the workload guest, or from a
// target that could not be asked or does not say).
type Report struct {
	Problems []string
	Target   *relocation.TargetFacts
}

// Check is the dry run: it moves nothing and reports every reason the
// migration of name to tgt would fail.
func (l *Local) Check(ctx context.Context, name, tgt string, o Options) (Report, error) {
	in, err := l.Domains.Info(name)
	if err != nil {
		return Report{}, err
	}
	var c relocation.Checker
	switch {
	case in.State == string(domains.Running):
	case in.State == string(domains.Paused) && !o.Live:
	case o.Live:
		c.Hard("state", "%s is %s; a live migration needs it running", name, in.State)
	default:
		c.Hard("state", "%s is %s; it must be running or paused", name, in.State)
	}
	offer, err := l.Domains.Offer(name)
	if err != nil {
		return Report{}, err
	}
	facts := l.askTarget(ctx, &c, tgt, o, func() *relocation.Hello { return l.hello(relocation.OpCheck, "", o, offer) }, true)
	return Report{Problems: relocation.Strings(c.Problems()), Target: facts}, nil
}

// askTarget dials tgt with the hello of a dry run and records what the
// target answered: why it cannot be reached, its refusal (when withError,
// or when it listed no problems), and its problems; it returns what the
// target says it offers the domain.
func (l *Local) askTarget(ctx context.Context, c *relocation.Checker, tgt string, o Options, hello func() *relocation.Hello, withError bool) *relocation.TargetFacts {
	addr, err := target(tgt, o)
	if err != nil {
		c.Hard("target", "%v", err)
		return nil
	}
	conn, wl, err := l.dial(ctx, addr, o, hello())
	if err != nil {
		c.Hard("target", "%v", err)
		return nil
	}
	if conn != nil {
		conn.Close()
	}
	problems := wl.ProblemList()
	if wl.Error != "" && (withError || len(problems) == 0) {
		c.Hard("target", "%s", wl.Error)
	}
	c.Add(problems...)
	return wl.Target
}

// EstimateWindow is how long the dry run watches the guest's dirty log;
// the link probe takes relocation.DefaultProbeDuration more.
var EstimateWindow = time.Second

// Estimate is the dry run's prediction: what it measured of the guest and
// the link, and what the migration's stop rule would make of it.
type Estimate struct {
	Live bool `xmlrpc:"live"`
	// DirtyRate is the bytes per second of pages the guest dirtied,
	// HotBytes the hot set fitted to how the dirty set grew.
	DirtyRate float64 `xmlrpc:"dirty_rate"`
	HotBytes  int64   `xmlrpc:"hot_bytes"`
	// LinkThroughput is how fast the target took the probe's data, in
	// bytes per second: received and, when TargetMemoryRate is set,
	// written into fresh memory as a migration's receiver does (most of
	// a migration's cost on a fast link). TargetMemoryRate is the rate of
	// those writes alone (0 from an older target, whose figure is the
	// link alone). Bandwidth is what the prediction used (the rate cap
	// when lower, RateLimited then).
	LinkThroughput   float64 `xmlrpc:"link_throughput"`
	TargetMemoryRate float64 `xmlrpc:"target_memory_rate"`
	Bandwidth        float64 `xmlrpc:"bandwidth"`
	RateLimited      bool    `xmlrpc:"rate_limited"`
	// TouchedBytes is the memory holding data (what round 0 sends).
	TouchedBytes int64 `xmlrpc:"touched_bytes"`
	MemoryBytes  int64 `xmlrpc:"memory_bytes"`
	// The prediction. TotalSeconds is the page stream's time (status'
	// transfer_seconds): the target VMM's start and the handshakes come on
	// top. DowntimeMs is the stop-and-copy's transfer of the last dirty
	// pages; the commit and the target's start come on top.
	TotalSeconds     float64 `xmlrpc:"total_seconds"`
	DowntimeMs       float64 `xmlrpc:"downtime_ms"`
	MaxDowntimeMs    float64 `xmlrpc:"max_downtime_ms"` // the target the stop rule aims for
	Rounds           int     `xmlrpc:"rounds"`
	BytesToSend      int64   `xmlrpc:"bytes_to_send"` // page data, all rounds
	StopReason       string  `xmlrpc:"stop_reason"`
	AutoConverge     bool    `xmlrpc:"auto_converge"` // the guest would be throttled
	MaxThrottle      int     `xmlrpc:"max_throttle_percent"`
	ThrottledSeconds float64 `xmlrpc:"throttled_seconds"`
	// MeasuredSeconds is how long measuring took.
	MeasuredSeconds float64 `xmlrpc:"measured_seconds"`
}

// Estimate measures, for a moment, how fast the running domain dirties
// its memory and how fast the link to tgt carries data, and predicts the
// migration with options o by running the stop rule over them. When no
// estimate can be made (the domain does not run, the target refuses the
// probe) it returns nil and says why.
func (l *Local) Estimate(ctx context.Context, name, tgt string, o Options) (*Estimate, string, error) {
	start := time.Now()
	in, err := l.Domains.Info(name)
	if err != nil {
		return nil, "", err
	}
	paused := in.State == string(domains.Paused)
	if in.State != string(domains.Running) && !(paused && !o.Live) {
		return nil, fmt.Sprintf("%s is %s: there is nothing to measure", name, in.State), nil
	}
	offer, err := l.Domains.Offer(name)
	if err != nil {
		return nil, "", err
	}
	addr, err := target(tgt, o)
	if err != nil {
		return nil, "target: " + err.Error(), nil
	}
	// The probe connection first: a target that refuses it costs no
	// measuring. It waits while the guest is measured, so that the two
	// do not compete for the CPU.
	c, wl, err := l.dial(ctx, addr, o, l.hello(relocation.OpProbe, "", o, offer))
	if err != nil {
		return nil, "link probe: " + err.Error(), nil
	}
	if c == nil {
		return nil, "link probe: the target refused it: " + wl.Error, nil
	}
	defer c.Close()

	g, err := l.measureGuest(ctx, name)
	if err != nil {
		return nil, "measuring the guest: " + err.Error(), nil
	}
	pr, err := relocation.Probe(ctx, c, relocation.ProbeOptions{})
	if err != nil {
		return nil, err.Error(), nil
	}
	model := pagexfer.DirtyModel{Rate: g.DirtyRate}
	if n := len(g.Samples); n > 0 {
		s := g.Samples[n-1]
		model = pagexfer.FitDirtyModel(g.DirtyRate, s.At, float64(s.Bytes), float64(g.MemoryBytes))
	}
	live := o.Live && !paused
	maxDown := o.MaxDowntime
	if maxDown <= 0 {
		maxDown = DefaultMaxDowntime
	}
	p, err := pagexfer.Predict(pagexfer.PredictInput{
		Options:   pagexfer.Options{Live: live, AlreadyPaused: paused, MaxDowntime: maxDown, RateLimit: float64(o.RateLimit)},
		MemBytes:  g.MemoryBytes,
		Touched:   g.TouchedBytes,
		Bandwidth: pr.Throughput,
		Dirty:     model,
	})
	if err != nil {
		return nil, err.Error(), nil
	}
	return &Estimate{
		Live:             live,
		DirtyRate:        g.DirtyRate,
		HotBytes:         int64(model.Hot),
		LinkThroughput:   pr.Throughput,
		TargetMemoryRate: pr.MemoryWriteRate,
		Bandwidth:        p.Bandwidth,
		RateLimited:      p.Bandwidth < pr.Throughput,
		TouchedBytes:     int64(g.TouchedBytes),
		MemoryBytes:      int64(g.MemoryBytes),
		TotalSeconds:     p.Total.Seconds(),
		DowntimeMs:       float64(p.Downtime) / float64(time.Millisecond),
		MaxDowntimeMs:    float64(maxDown) / float64(time.Millisecond),
		Rounds:           p.Rounds,
		BytesToSend:      int64(p.PageBytes),
		StopReason:       p.Reason.String(),
		AutoConverge:     p.MaxThrottle > 0,
		MaxThrottle:      p.MaxThrottle,
		ThrottledSeconds: p.ThrottledFor.Seconds(),
		MeasuredSeconds:  time.Since(start).Seconds(),
	}, "", nil
}

// measureGuest has the domain's VMM watch its dirty log for EstimateWindow
// and returns the measurement.
func (l *Local) measureGuest(ctx context.Context, name string) (*control.Estimate, error) {
	resp, err := l.Domains.Call(name, control.Request{Op: control.OpEstimate, Window: EstimateWindow}, 5*time.Second)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(EstimateWindow + 10*time.Second)
	for e := resp.Estimate; ; e = resp.Estimate {
		switch {
		case e == nil:
			return nil, errors.New("the VMM answered without an estimate")
		case e.Done && e.Error != "":
			return nil, errors.New(e.Error)
		case e.Done:
			return e, nil
		case time.Now().After(deadline):
			return nil, fmt.Errorf("the VMM did not finish within %v", EstimateWindow+10*time.Second)
		}
		wait := min(max(EstimateWindow-e.Window, 0)+20*time.Millisecond, time.Second)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		if resp, err = l.Domains.Call(name, control.Request{Op: control.OpEstimate}, 5*time.Second); err != nil {
			return nil, err
		}
	}
}
