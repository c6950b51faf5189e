package workloadtest

import (
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
)

// MemcpyBandwidth measures this host's memcpy bandwidth in bytes per second
// (64 MiB copies), the reference the benchmarks report ratios against.
func MemcpyBandwidth() float64 {
	src := make([]byte, 64<<20)
	dst := make([]byte, 64<<20)
	for i := range src {
		src[i] = byte(i)
	}
	copy(dst, src) // fault both in
	best := 0.0
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		copy(dst, src)
		if bw := float64(len(src)) / time.Since(t0).Seconds(); bw > best {
			best = bw
		}
	}
	return best
}

// BenchWriteRate runs the workload at rate dirty ("200M/s", or "max" for a
// rate beyond reach) and reports the achieved page-write rate per 100 ms
// window: pages/s, achieved/configured, and for "max" the write bandwidth as
// a fraction of memcpy bandwidth.
func BenchWriteRate(b *testing.B, f Factory, dirty string) {
	rate := dirty
	if dirty == "max" {
		rate = "64G/s"
	}
	ram := newRAM(b, 256<<20)
	p := Params(b, "dirty="+rate+",hot=128M,verify=1s,hb=1s", ram.Size())
	m := start(b, f, ram, p, nil, nil)
	time.Sleep(300 * time.Millisecond) // first-touch faults of the hot set
	var pages uint64
	var elapsed time.Duration
	for b.Loop() {
		w0, t0 := m.Stats().Writes, time.Now()
		time.Sleep(100 * time.Millisecond)
		pages += m.Stats().Writes - w0
		elapsed += time.Since(t0)
	}
	pps := float64(pages) / elapsed.Seconds()
	b.ReportMetric(pps, "pages/s")
	if dirty == "max" {
		b.ReportMetric(pps*workload.PageSize/MemcpyBandwidth(), "of-memcpy")
	} else {
		b.ReportMetric(pps/float64(p.PagesPerSecond()), "of-configured")
	}
	if c := m.Stats().Corrupt; c != 0 {
		b.Fatalf("%d corrupt pages", c)
	}
}

// BenchDirtyLog measures one get-and-clear of the dirty log of a 1 GiB
// guest: "clean" with nothing written since the last call, "dirty" after
// the workload wrote for 50 ms (the pages per call are reported). The
// call's own time is ns/dirtylog; a "dirty" op also holds the 50 ms the
// guest ran, which stays in the op instead of being left out with
// StopTimer (b.Loop would then run until -benchtime of dirty-log calls
// alone: hours of wall time at 2 s).
func BenchDirtyLog(b *testing.B, f Factory, dirty bool) {
	ram := newRAM(b, 1<<30+4<<20)
	m := start(b, f, ram, Params(b, "dirty=64G/s,hot=1G,verify=1h,hb=1h", ram.Size()), nil, nil)
	if err := m.SetDirtyLogging(true); err != nil {
		b.Fatal(err)
	}
	bm := make([]uint64, guestmem.BitmapWords(ram.Pages()))
	time.Sleep(200 * time.Millisecond)
	mustPause(b, m)
	if err := m.DirtyLog(bm); err != nil {
		b.Fatal(err)
	}
	var pages int
	var inLog time.Duration
	for b.Loop() {
		if dirty {
			mustResume(b, m)
			time.Sleep(50 * time.Millisecond)
			mustPause(b, m)
		}
		t0 := time.Now()
		if err := m.DirtyLog(bm); err != nil {
			b.Fatal(err)
		}
		inLog += time.Since(t0)
		pages += guestmem.CountBits(bm)
	}
	b.ReportMetric(float64(inLog.Nanoseconds())/float64(b.N), "ns/dirtylog")
	b.ReportMetric(float64(pages)/float64(b.N), "dirty-pages/op")
}
