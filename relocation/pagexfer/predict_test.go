package pagexfer

import (
	"math"
	"testing"
	"time"
)

func TestFitDirtyModel(t *testing.T) {
	const mib = 1 << 20
	// A measurement made from a known model gives that model back.
	for _, hot := range []float64{4 * mib, 64 * mib, 256 * mib, 1024 * mib} {
		want := DirtyModel{Rate: 200e6, Hot: hot}
		seen := want.Dirtied(time.Second, 0)
		got := FitDirtyModel(200e6, time.Second, seen, 2048*mib)
		if math.Abs(got.Hot-hot) > hot*0.01 {
			t.Errorf("hot set %.0f MiB fitted as %.1f MiB", hot/mib, got.Hot/mib)
		}
	}
	// Every page written once: as big as memory allows.
	if m := FitDirtyModel(100e6, time.Second, 100e6, 512*mib); m.Hot != 512*mib {
		t.Errorf("no rewrites: hot %v", m.Hot)
	}
	// An idle guest.
	if m := FitDirtyModel(0, time.Second, 0, 512*mib); m.Dirtied(time.Hour, 0) != 0 {
		t.Errorf("idle guest dirties %v", m.Dirtied(time.Hour, 0))
	}
	// The throttle scales the rate.
	m := DirtyModel{Rate: 100e6}
	if d := m.Dirtied(time.Second, 60); math.Abs(d-40e6) > 1 {
		t.Errorf("60%% throttle: %v", d)
	}
}

func TestPredict(t *testing.T) {
	const gib, mib = 1 << 30, 1 << 20
	// Non-live: one pass over the touched memory, all of it downtime.
	p, err := Predict(PredictInput{MemBytes: 2 * gib, Touched: gib, Bandwidth: 1e9, Dirty: DirtyModel{Rate: 200e6}})
	if err != nil || p.Rounds != 1 || p.Reason != StopNotLive || p.Downtime != p.Total || math.Abs(p.Total.Seconds()-1.073741824) > 1e-6 {
		t.Fatalf("non-live: %+v, %v", p, err)
	}
	live := Options{Live: true}
	// An idle guest: round 0 and an empty stop-and-copy.
	p, err = Predict(PredictInput{Options: live, MemBytes: 2 * gib, Touched: gib, Bandwidth: 1e9, StopCost: 3 * time.Millisecond})
	if err != nil || p.Rounds != 2 || p.Reason != StopDowntime || p.Downtime != 3*time.Millisecond || p.MaxThrottle != 0 {
		t.Fatalf("idle: %+v, %v", p, err)
	}
	// Scenario b: 200 MB/s over 256 MiB with 20 ms allowed: a few rounds,
	// each shorter, no throttle; the last round fits the target.
	o := live
	o.MaxDowntime = 20 * time.Millisecond
	b := PredictInput{Options: o, MemBytes: 2 * gib, Touched: gib + 256*mib, Bandwidth: 1e9, Dirty: DirtyModel{Rate: 200e6, Hot: 256 * mib}}
	p, err = Predict(b)
	if err != nil || p.Reason != StopDowntime || p.Rounds < 3 || p.Rounds > 6 || p.MaxThrottle != 0 || p.Downtime > 20*time.Millisecond {
		t.Fatalf("scenario b: %+v, %v", p, err)
	}
	t.Logf("scenario b: %v total, %v downtime, %d rounds, %.0f MiB", p.Total, p.Downtime, p.Rounds, float64(p.PageBytes)/mib)
	// The same over a link capped below the dirty rate: auto-converge
	// throttles it until it converges, and the rate cap is the bandwidth.
	c := b
	c.Options.RateLimit = 100e6
	c.Options.MaxDowntime = 300 * time.Millisecond
	pc, err := Predict(c)
	if err != nil || pc.MaxThrottle == 0 || pc.ThrottledFor <= 0 || pc.Bandwidth != 100e6 || pc.Total <= p.Total {
		t.Fatalf("capped link: %+v, %v", pc, err)
	}
	t.Logf("capped: %v total, %v downtime, %d rounds, throttle %d%% for %v (%v)", pc.Total, pc.Downtime, pc.Rounds, pc.MaxThrottle, pc.ThrottledFor, pc.Reason)
	// Without auto-converge the backstops end it with a long downtime.
	c.Options.DisableAutoConverge = true
	pn, err := Predict(c)
	if err != nil || pn.Reason == StopDowntime || pn.MaxThrottle != 0 || pn.Downtime <= pc.Downtime {
		t.Fatalf("no auto-converge: %+v, %v", pn, err)
	}
	// Bad input.
	if _, err := Predict(PredictInput{Options: live, MemBytes: gib, Touched: gib}); err == nil {
		t.Fatal("no bandwidth: no error")
	}
	if _, err := Predict(PredictInput{Options: live, MemBytes: gib, Touched: 2 * gib, Bandwidth: 1e9}); err == nil {
		t.Fatal("touched above memory: no error")
	}
}

// TestPredictMatchesSend: the prediction for a sim guest of known dirty
// rate and hot set, over a rate-capped link (so that the link, not this
// machine's CPU, sets the pace), is close to what Send then does.
func TestPredictMatchesSend(t *testing.T) {
	g := boot(t, simEngine, 64<<20, "dirty=16M/s,hot=16M,touch=8M,verify=100ms,hb=100ms")
	verifies(t, g)
	pages, err := g.ram.DataPages()
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Live: true, RateLimit: 24e6, MaxDowntime: 50 * time.Millisecond}
	p, err := Predict(PredictInput{Options: opts, MemBytes: g.ram.Size(), Touched: pages * PageSize,
		Bandwidth: 1e12, Dirty: DirtyModel{Rate: 16 << 20, Hot: 16 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	res, _, tg, err := migrate(t, g, migration{opts: opts})
	if err != nil || tg.err != nil {
		t.Fatal(err, tg.err)
	}
	t.Logf("predicted %v, %d rounds, %d MiB, throttle %d%%; Send took %v, %d rounds, %d MiB, throttle %d%% (%v)",
		p.Total, p.Rounds, p.PageBytes>>20, p.MaxThrottle, res.Total, res.Rounds(), res.BytesSent>>20, res.Throttle.Max, res.Reason)
	if r := p.Total.Seconds() / res.Total.Seconds(); r < 0.5 || r > 2 {
		t.Errorf("predicted %v, Send took %v", p.Total, res.Total)
	}
	if r := float64(p.PageBytes) / float64(res.BytesSent); r < 0.5 || r > 2 {
		t.Errorf("predicted %d bytes, Send sent %d", p.PageBytes, res.BytesSent)
	}
	if d := p.Rounds - res.Rounds(); d < -3 || d > 3 {
		t.Errorf("predicted %d rounds, Send made %d", p.Rounds, res.Rounds())
	}
}
