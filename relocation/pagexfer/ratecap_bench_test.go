package pagexfer

import (
	"context"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/limits"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
)

// The rate cap's figures. A cap holds when rate/cap is at most 1 (a
// little over 1 is the bucket the limiter starts with, which the figures
// leave out); how far below 1 it lands says how much of the cap the host's
// CPU lets the sender use. The cap is set far below one loopback TCP
// stream, measured in the same run (cap/loopback-tcp), so that the network
// is not what holds the rate back.

const benchRateCap = 32 << 20

// reportRateCap reports a rate in bytes/s against the cap it ran under.
func reportRateCap(b *testing.B, rate, limit float64) {
	tcp, err := limits.LoopbackTCP(1 << 30)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(rate/limit, "rate/cap")
	b.ReportMetric(rate/(1<<20), "MiB/s")
	b.ReportMetric(limit/tcp, "cap/loopback-tcp")
}

// BenchmarkRateLimiter writes 24 MiB through one stream writer capped at
// 32 MiB/s into a writer that only counts, and reports the rate from the
// first write to the last, the first bucket left out.
func BenchmarkRateLimiter(b *testing.B) {
	var moved int64
	var took time.Duration
	for b.Loop() {
		var n int64
		var first, last time.Time
		w := writerFunc(func(p []byte) (int, error) {
			now := time.Now()
			if n == 0 {
				first = now
			}
			n += int64(len(p))
			last = now
			return len(p), nil
		})
		sw := newStreamWriter(context.Background(), w, newLimiter(benchRateCap), nil, 4, 1<<20)
		for range 24 {
			buf, err := sw.get()
			if err == nil {
				err = sw.put(buf, buf)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := sw.flush(); err != nil {
			b.Fatal(err)
		}
		sw.close(true)
		moved += n - int64(limiterBurst(benchRateCap))
		took += last.Sub(first)
	}
	reportRateCap(b, float64(moved)/took.Seconds(), benchRateCap)
}

// BenchmarkRateLimit migrates a live sim guest holding 24 MiB of
// incompressible data past its hot set over loopback TCP with a 32 MiB/s
// cap, and reports the rate over the whole Send, the first bucket left
// out (what TestRateLimit asserted with a time bound before it was a
// figure).
func BenchmarkRateLimit(b *testing.B) {
	g := bootCapped(b)
	var moved uint64
	var took time.Duration
	for b.Loop() {
		res, tgt := migrateLoopback(b, g.source(), 1, Options{Live: true, Engine: "sim", VCPUs: 1, RateLimit: benchRateCap}, guestmem.Backing4K)
		moved += res.BytesSent - uint64(limiterBurst(benchRateCap))
		took += res.Total
		b.StopTimer()
		tgt.Close()
		if err := g.m.Resume(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportRateCap(b, float64(moved)/took.Seconds(), benchRateCap)
}

// bootCapped starts the rate cap's sim guest: 64 MiB of RAM, 1 MiB/s
// dirtied in an 8 MiB hot set, and 24 MiB of incompressible data past it.
func bootCapped(t testing.TB) *vm {
	t.Helper()
	g := boot(t, simEngine, 64<<20, "dirty=1M/s,hot=8M,verify=100ms,hb=100ms")
	fill := make([]byte, 24<<20)
	for i := range fill {
		fill[i] = byte(i*7 + i>>12 + 1)
	}
	writeRAM(t, g.ram, 40<<20, fill)
	return g
}
