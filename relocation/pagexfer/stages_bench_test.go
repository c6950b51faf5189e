package pagexfer

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/internal/limits"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem/hosttest"
)

// The CPU cost of each stage a page goes through in a migration, per
// GiB, on each memory backing (BenchmarkStageCPU): what the README's
// table of stages is made of, next to loopback TCP and memcpy measured in
// the same run.

// stageGiB is the data each stage moves: 1 GiB, scenario a's.
const stageGiB = 1 << 30

// threadCPU is the CPU time (user and system) of the calling OS thread;
// the caller has locked its goroutine to it.
func threadCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// onThread runs f on a goroutine locked to an OS thread of its own and
// returns the CPU time that thread spent in f (the kernel work of its
// system calls and page faults included) and the wall time.
func onThread(b *testing.B, f func()) (cpu, wall time.Duration) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c0, t0 := threadCPU(b), time.Now()
		f()
		cpu, wall = threadCPU(b)-c0, time.Since(t0)
	}()
	<-done
	return cpu, wall
}

// stageSink is where the target lands pages on backing, as the VMM's
// receiver does (vmm/workloadengine.go, sink): pwrite into a 4k memfd,
// through the mapping into a thp or hugetlb one.
func stageSink(ram *guestmem.RAM) Sink {
	if ram.Backing() == guestmem.Backing4K {
		return NewFdSink(ram.Fd(), ram.Size())
	}
	return ram
}

// shmemHugeKiB is /proc/meminfo's ShmemHugePages: shared memory in 2 MiB
// pages (thp), in KiB.
func shmemHugeKiB() int64 {
	data, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == "ShmemHugePages" {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// prepareStageHost makes the host give backing to two guests of size at
// once until b ends (hosttest), the huge-page pool faulted in once: pages
// it just took may be memory this virtual machine's host took back, whose
// first touch costs a host fault (4-5 s per GiB here), a cost of the
// first run on the pool only.
func prepareStageHost(b *testing.B, backing guestmem.Backing, size uint64) {
	switch backing {
	case guestmem.BackingTHP:
		hosttest.ShmemTHP(b, "advise")
	case guestmem.BackingHugeTLB:
		pages := 2 * guestmem.HugePagesFor(size)
		hosttest.ReserveHugePages(b, pages)
		warm, err := guestmem.NewBackedRAM("bench-warm", pages*guestmem.HugePageSize, guestmem.BackingHugeTLB)
		if err != nil {
			b.Fatal(err)
		}
		defer warm.Close()
		if err := unix.Madvise(warm.Bytes(), unix.MADV_POPULATE_WRITE); err != nil {
			b.Fatal(err)
		}
	}
}

// stageFigures are one pass of every stage over 1 GiB: CPU-seconds of
// the thread doing it, and its wall time.
type stageFigures struct {
	read, checksum, send, receive, land [2]time.Duration // cpu, wall
}

// BenchmarkStageCPU measures, for each memory backing, the CPU time per
// GiB of each stage of a migration, each alone on a thread of its own
// (thread CPU time, RUSAGE_THREAD, the kernel's work in its system calls
// and page faults included):
//
//   - read: the source reading 1 GiB of random guest data that the guest
//     wrote through its mapping (so on thp it lies in 2 MiB pages) into
//     a 256 KiB buffer, as Send reads (guestmem.RAM.ReadAt: a copy from
//     the mapping);
//   - checksum: CRC-32C of that buffer while it is in the cache, as both
//     sides do it;
//   - send and receive: 1 GiB over one loopback TCP connection in 1 MiB
//     writes and reads, the sender's and the receiver's thread apart
//     (the loopback delivery runs in the sender's write);
//   - land: writing 1 GiB in 1 MiB pieces into a fresh guest memory of
//     the backing as the VMM's receiver does (pwrite on 4k, the mapping
//     on thp and hugetlb), page allocation, zeroing and faults included.
//
// b.N passes (-benchtime Nx); it prints a line per stage with the median
// and the spread, the sum, and loopback TCP and memcpy measured in the
// same run.
func BenchmarkStageCPU(b *testing.B) {
	for _, backing := range []guestmem.Backing{guestmem.Backing4K, guestmem.BackingTHP, guestmem.BackingHugeTLB} {
		b.Run(string(backing), func(b *testing.B) {
			prepareStageHost(b, backing, stageGiB)
			huge0 := shmemHugeKiB()
			src, err := guestmem.NewBackedRAM("bench-stage-src", stageGiB, backing)
			if err != nil {
				b.Fatal(err)
			}
			defer src.Close()
			var seed [32]byte
			binary.LittleEndian.PutUint64(seed[:], uint64(time.Now().UnixNano()))
			rand.NewChaCha8(seed).Read(src.Bytes())
			hugeNote := ""
			if backing == guestmem.BackingTHP {
				hugeNote = fmt.Sprintf(" (source data in 2 MiB pages: %d of %d MiB)", (shmemHugeKiB()-huge0)>>10, stageGiB>>20)
			}
			tcp, err := limits.LoopbackTCP(stageGiB)
			if err != nil {
				b.Fatal(err)
			}
			mc := memcpy()
			var runs []stageFigures
			for b.Loop() {
				runs = append(runs, stagePass(b, src, backing))
			}
			pick := func(f func(stageFigures) [2]time.Duration, i int) []float64 {
				var xs []float64
				for _, r := range runs {
					xs = append(xs, f(r)[i].Seconds()*float64(1<<30)/float64(stageGiB))
				}
				return xs
			}
			stages := []struct {
				name string
				f    func(stageFigures) [2]time.Duration
			}{
				{"read", func(s stageFigures) [2]time.Duration { return s.read }},
				{"checksum", func(s stageFigures) [2]time.Duration { return s.checksum }},
				{"send", func(s stageFigures) [2]time.Duration { return s.send }},
				{"receive", func(s stageFigures) [2]time.Duration { return s.receive }},
				{"land", func(s stageFigures) [2]time.Duration { return s.land }},
			}
			var sb strings.Builder
			fmt.Fprintf(&sb, "stage CPU, backing %s%s, %d passes of 1 GiB, loopback TCP %.0f MB/s, memcpy %.0f MB/s, load %s:\n", backing, hugeNote, len(runs), tcp/1e6, mc/1e6, loadavg())
			sum := 0.0
			for _, s := range stages {
				cpu, wall := pick(s.f, 0), pick(s.f, 1)
				m := median(cpu)
				sum += m
				fmt.Fprintf(&sb, "  %-8s %.3f CPU-s/GiB (%s), wall %.3f s/GiB\n", s.name, m, spreadOf(cpu), median(wall))
				b.ReportMetric(m, s.name+"-cpu-s/GiB")
			}
			fmt.Fprintf(&sb, "  sum      %.3f CPU-s/GiB: %.3f s per GiB on 2 cores at best; loopback TCP alone %.3f s/GiB, memcpy %.3f s/GiB\n", sum, sum/2, float64(1<<30)/tcp, float64(1<<30)/mc)
			b.ReportMetric(sum, "sum-cpu-s/GiB")
			fmt.Print(sb.String())
		})
	}
}

// stagePass runs every stage once over src (1 GiB of data on backing).
func stagePass(b *testing.B, src *guestmem.RAM, backing guestmem.Backing) stageFigures {
	var f stageFigures
	buf := make([]byte, readPages*PageSize)
	var sum uint32
	f.read[0], f.read[1] = onThread(b, func() {
		for off := int64(0); off < stageGiB; off += int64(len(buf)) {
			if _, err := src.ReadAt(buf, off); err != nil {
				b.Error(err)
				return
			}
		}
	})
	f.checksum[0], f.checksum[1] = onThread(b, func() {
		for n := 0; n < stageGiB; n += len(buf) {
			sum = crc(sum, buf)
		}
	})
	f.send, f.receive = loopbackStage(b)
	b.StopTimer()
	dst, err := guestmem.NewBackedRAM("bench-stage-dst", stageGiB, backing)
	if err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	sink := stageSink(dst)
	piece := src.Bytes()[:sendBatchData]
	f.land[0], f.land[1] = onThread(b, func() {
		for off := int64(0); off < stageGiB; off += int64(len(piece)) {
			if _, err := sink.WriteAt(piece, off); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	dst.Close() // freeing is not a stage of the move
	b.StartTimer()
	if sum == 0 {
		b.Log("checksum came out 0") // keeps the loop from being dropped
	}
	return f
}

// loopbackStage moves 1 GiB over one loopback TCP connection in 1 MiB
// writes and returns the sender's and the receiver's thread CPU and wall
// times.
func loopbackStage(b *testing.B) (send, recv [2]time.Duration) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	got := make(chan struct{})
	go func() {
		defer close(got)
		c, err := ln.Accept()
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, sendBatchData)
		recv[0], recv[1] = onThread(b, func() {
			for n := 0; n < stageGiB; {
				k, err := c.Read(buf)
				n += k
				if err != nil {
					b.Errorf("receive: %v after %d bytes", err, n)
					return
				}
			}
		})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, sendBatchData)
	send[0], send[1] = onThread(b, func() {
		for n := 0; n < stageGiB; n += len(buf) {
			if _, err := c.Write(buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
	<-got
	return send, recv
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func spreadOf(xs []float64) string {
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return fmt.Sprintf("%.3f-%.3f", lo, hi)
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
