package test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// spawnLatency is the limit for a domain start: how long fork+exec+wait of
// a trivial program takes on this machine, measured in the same run.
func spawnLatency(b *testing.B) time.Duration {
	const n = 20
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start) / n
}

// BenchmarkDomainStart measures domain.start (VMM spawned, guest memory
// created, vCPU running, control socket answering) on both engines.
func BenchmarkDomainStart(b *testing.B) {
	for _, engine := range engines {
		b.Run(engine, func(b *testing.B) {
			a := startAgent(b, agentConf{Extra: map[string][]string{"agent": {"hypervisor = " + engine, "memory_reserve = 0"}}})
			a.call(b, "domain.create", nil, vmcfgText("bench", 1024, "dirty=0"))
			limit := spawnLatency(b)
			var total time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				a.call(b, "domain.start", nil, "bench")
				total += time.Since(t0)
				b.StopTimer()
				a.call(b, "domain.destroy", nil, "bench")
				b.StartTimer()
			}
			per := total / time.Duration(b.N)
			b.ReportMetric(float64(per.Microseconds())/1000, "ms/start")
			b.ReportMetric(float64(limit.Microseconds())/1000, "ms/spawn-true")
			b.ReportMetric(float64(per)/float64(limit), "x-spawn")
		})
	}
}

// procStatus reads kB fields of /proc/PID/status.
func procStatus(pid int) map[string]int64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	out := map[string]int64{}
	for _, l := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(l, ":")
		f := strings.Fields(v)
		if ok && len(f) == 2 && f[1] == "kB" {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			out[k] = n << 10
		}
	}
	return out
}

// BenchmarkVMMOverhead reports the memory a VMM uses beyond guest RAM
// (anonymous and file-backed resident memory; guest pages are shared
// memory) for a 1 GiB guest whose 256 MiB hot set is written.
func BenchmarkVMMOverhead(b *testing.B) {
	for _, engine := range engines {
		b.Run(engine, func(b *testing.B) {
			a := startAgent(b, agentConf{Extra: map[string][]string{"agent": {"hypervisor = " + engine, "memory_reserve = 0"}}})
			a.call(b, "domain.create", nil, vmcfgText("ovh", 1024, "dirty=512M/s,hot=256M"))
			a.call(b, "domain.start", nil, "ovh")
			defer a.call(b, "domain.destroy", nil, "ovh")
			time.Sleep(2 * time.Second)
			in := a.info(b, "ovh")
			var st map[string]int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				st = procStatus(in.PID)
			}
			overhead := st["RssAnon"] + st["RssFile"]
			b.ReportMetric(float64(overhead)/(1<<20), "MiB-overhead")
			b.ReportMetric(float64(st["RssShmem"])/(1<<20), "MiB-guest-resident")
			b.ReportMetric(float64(overhead)/float64(1<<30), "overhead/guest-RAM")
		})
	}
}

// BenchmarkGuestWriteRate runs the workload guest at several configured
// dirty rates and reports the rate achieved as a fraction of the configured
// one, next to the memcpy bandwidth of this machine (the ceiling).
func BenchmarkGuestWriteRate(b *testing.B) {
	ceiling := memcpyBandwidth()
	for _, engine := range engines {
		for _, mbps := range []int{64, 512, 2048} {
			b.Run(fmt.Sprintf("%s/%dMBps", engine, mbps), func(b *testing.B) {
				a := startAgent(b, agentConf{Extra: map[string][]string{"agent": {"hypervisor = " + engine, "memory_reserve = 0"}}})
				a.call(b, "domain.create", nil, vmcfgText("wr", 1024, fmt.Sprintf("dirty=%dM/s,hot=512M", mbps)))
				a.call(b, "domain.start", nil, "wr")
				defer a.call(b, "domain.destroy", nil, "wr")
				time.Sleep(time.Second)
				var achieved float64
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					w0 := a.info(b, "wr").Written
					t0 := time.Now()
					time.Sleep(2 * time.Second)
					w1 := a.info(b, "wr").Written
					achieved = float64(w1-w0) * 4096 / time.Since(t0).Seconds()
				}
				want := float64(mbps) * (1 << 20)
				b.ReportMetric(achieved/(1<<20), "MiB/s-achieved")
				b.ReportMetric(achieved/want, "of-configured")
				b.ReportMetric(ceiling/(1<<20), "MiB/s-memcpy")
			})
		}
	}
}

// memcpyBandwidth measures copy() of 256 MiB, in bytes per second.
func memcpyBandwidth() float64 {
	src := make([]byte, 256<<20)
	dst := make([]byte, 256<<20)
	for i := range src {
		src[i] = byte(i)
	}
	copy(dst, src)
	t0 := time.Now()
	for i := 0; i < 4; i++ {
		copy(dst, src)
	}
	return float64(4*len(src)) / time.Since(t0).Seconds()
}
