package pagexfer

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/internal/limits"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/simengine"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
	"github.com/ovs-agent/ovs-agent/vmm/workload/workloadtest"
)

// Every benchmark reports its throughput next to the limits measured in
// the same run: memcpy bandwidth, and for transfers the loopback TCP
// throughput of one stream with 1 MiB writes.

var (
	memcpyOnce sync.Once
	memcpyBW   float64
)

func memcpy() float64 {
	memcpyOnce.Do(func() { memcpyBW = workloadtest.MemcpyBandwidth() })
	return memcpyBW
}

func reportBW(b *testing.B, bytesPerOp int64) {
	bw := float64(bytesPerOp) * float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(bw/1e9, "GB/s")
	b.ReportMetric(bw/memcpy(), "of-memcpy")
}

func randomPages(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n*PageSize)
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// BenchmarkZeroScan: the zero-page check over all-zero pages (its worst
// case: every byte is read) and over data pages (it stops at the first
// word).
func BenchmarkZeroScan(b *testing.B) {
	for _, kind := range []string{"zero", "data"} {
		b.Run(kind, func(b *testing.B) {
			mem := make([]byte, 1<<20)
			if kind == "data" {
				mem = randomPages(256, 1)
			}
			b.SetBytes(int64(len(mem)))
			n := 0
			for b.Loop() {
				for off := 0; off < len(mem); off += PageSize {
					if isZero(mem[off : off+PageSize]) {
						n++
					}
				}
			}
			if (kind == "zero") != (n > 0) {
				b.Fatal("wrong answer")
			}
			reportBW(b, int64(len(mem)))
		})
	}
}

// BenchmarkBatchEncode: one 1 MiB batch of data pages with a few zero
// pages, copied in (the source read's copy), scanned, framed and
// checksummed (addRead checksums the data, finish the frame and combines).
func BenchmarkBatchEncode(b *testing.B) {
	src := randomPages(256, 2)
	for i := 0; i < 256; i += 37 {
		clear(src[i*PageSize : (i+1)*PageSize])
	}
	bb := newBatchBuilder(PageSize, make([]byte, batchReserve+sendBatchData))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		bb.reset(bb.buf)
		for i := 0; i < 256; i += readPages {
			copy(bb.space(readPages), src[i*PageSize:(i+readPages)*PageSize])
			bb.addRead(1000+uint64(i), readPages)
		}
		if rec := bb.finish(); len(rec) == 0 || bb.sum == 0 {
			b.Fatal("empty batch")
		}
	}
	reportBW(b, int64(len(src)))
}

// BenchmarkBatchDecode: checksumming, validating and applying that batch
// to memory (a copy per raw run).
func BenchmarkBatchDecode(b *testing.B) {
	src := randomPages(256, 3)
	for i := 0; i < 256; i += 37 {
		clear(src[i*PageSize : (i+1)*PageSize])
	}
	bb := newBatchBuilder(PageSize, make([]byte, batchReserve+sendBatchData))
	copy(bb.space(256), src)
	bb.addRead(1000, 256)
	body := bb.finish()[frameSize:]
	mem := make([]byte, 2000*PageSize)
	var runs []run
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		crc(0, body)
		var err error
		runs, _, _, err = parseBatch(body, PageSize, 2000, runs, func(r run, d []byte) error {
			if r.kind == kindRaw {
				copy(mem[r.first*PageSize:], d)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportBW(b, int64(len(src)))
}

// BenchmarkSinkWrite compares ways of landing received pages in a fresh
// memfd: pwrite (FdSink), copying into a fresh shared mapping (a page
// fault per page), and copying after MADV_POPULATE_WRITE of the chunk.
func BenchmarkSinkWrite(b *testing.B) {
	const size = 256 << 20
	const chunk = 1 << 20
	data := randomPages(chunk/PageSize, 4)
	for _, how := range []string{"pwrite", "mmap-copy", "mmap-populate-copy"} {
		b.Run(how, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				b.StopTimer()
				ram, err := guestmem.NewRAM("bench", size)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				switch how {
				case "pwrite":
					s := NewFdSink(ram.Fd(), size)
					for off := 0; off < size; off += chunk {
						if _, err := s.WriteAt(data, int64(off)); err != nil {
							b.Fatal(err)
						}
					}
				case "mmap-copy":
					mem := ram.Bytes()
					for off := 0; off < size; off += chunk {
						copy(mem[off:off+chunk], data)
					}
				case "mmap-populate-copy":
					mem := ram.Bytes()
					for off := 0; off < size; off += chunk {
						if err := unix.Madvise(mem[off:off+chunk], unix.MADV_POPULATE_WRITE); err != nil {
							b.Skipf("MADV_POPULATE_WRITE: %v", err)
						}
						copy(mem[off:off+chunk], data)
					}
				}
				b.StopTimer()
				ram.Close()
				b.StartTimer()
			}
			reportBW(b, size)
		})
	}
}

// compressibleBatch is 1 MiB of pages like a guest's own tables: small
// counters in 8-byte words, mostly zero bytes.
func compressibleBatch() []byte {
	b := make([]byte, 256*PageSize)
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(i/8%1000+1))
	}
	return b
}

// benchBatch returns one finished 1 MiB batch record of the given pages.
func benchBatch(pages []byte) []byte {
	bb := newBatchBuilder(PageSize, make([]byte, batchReserve+sendBatchData))
	copy(bb.space(256), pages)
	bb.addRead(1000, 256)
	return bytes.Clone(bb.finish())
}

// BenchmarkCompress: compressing one 1 MiB batch record with s2 and zstd
// (fastest), of random pages (the workload's, which do not compress; the
// batch then goes raw) and of table-like pages (which compress well). The
// ratio is reported as wire/raw.
func BenchmarkCompress(b *testing.B) {
	data := map[string][]byte{"random": randomPages(256, 5), "tables": compressibleBatch()}
	for _, kind := range []string{"random", "tables"} {
		rec := benchBatch(data[kind])
		for _, mode := range []Compression{CompressS2, CompressZstd} {
			b.Run(kind+"/"+mode.String(), func(b *testing.B) {
				c := newCompressor(mode)
				b.SetBytes(int64(len(rec)))
				var out []byte
				for b.Loop() {
					var err error
					if out, err = c.compress(rec); err != nil {
						b.Fatal(err)
					}
				}
				ratio := 1.0
				if out != nil {
					ratio = float64(len(out)) / float64(len(rec))
				}
				b.ReportMetric(ratio, "wire/raw")
				reportBW(b, int64(len(rec)))
			})
		}
	}
}

// BenchmarkDecompress: expanding those compressed batches on the target.
func BenchmarkDecompress(b *testing.B) {
	rec := benchBatch(compressibleBatch())
	for _, mode := range []Compression{CompressS2, CompressZstd} {
		b.Run("tables/"+mode.String(), func(b *testing.B) {
			out, err := newCompressor(mode).compress(rec)
			if err != nil || out == nil {
				b.Fatalf("compress: %v, %d bytes", err, len(out))
			}
			body := bytes.Clone(out[frameSize:])
			var d decompressor
			b.SetBytes(int64(len(rec) - frameSize))
			for b.Loop() {
				if _, err := d.expand(body); err != nil {
					b.Fatal(err)
				}
			}
			reportBW(b, int64(len(rec)-frameSize))
		})
	}
}

// BenchmarkMigrate1GiB moves a sim guest holding 1 GiB of touched data
// (plus its own tables) in a 1.125 GiB RAM, idle apart from verifying,
// over loopback TCP into a fresh guest memory, and reports the time, the
// CPU time (sender and receiver both run in this process), the rate and
// its ratio to one loopback TCP stream and to memcpy. On 4k with 1 to 3
// streams and with and without compression; on thp and hugetlb (both
// sides on that backing, landed as the VMM lands them: stageSink) with 2
// streams, uncompressed.
func BenchmarkMigrate1GiB(b *testing.B) {
	for _, backing := range []guestmem.Backing{guestmem.Backing4K, guestmem.BackingTHP, guestmem.BackingHugeTLB} {
		b.Run("backing="+string(backing), func(b *testing.B) { benchMigrate1GiB(b, backing) })
	}
}

func benchMigrate1GiB(b *testing.B, backing guestmem.Backing) {
	const size = 1<<30 + 128<<20
	prepareStageHost(b, backing, size)
	ram, err := guestmem.NewBackedRAM("bench-src", size, backing)
	if err != nil {
		b.Fatal(err)
	}
	defer ram.Close()
	con := &workload.Lines{}
	m, err := simengine.New(simengine.Config{RAM: ram, Console: con,
		Params: workloadtest.Params(b, "touch=1G,dirty=0,hot=16M,verify=1h,hb=1h", size)})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Stop()
	if err := m.Start(); err != nil {
		b.Fatal(err)
	}
	if _, _, err := con.WaitTouchDone(0, workloadtest.TouchTimeout); err != nil {
		b.Fatal(err)
	}
	populated, err := ram.DataPages()
	if err != nil {
		b.Fatal(err)
	}
	tcp, err := limits.LoopbackTCP(1 << 30)
	if err != nil {
		b.Fatal(err)
	}
	src := machineSource{Machine: m, ram: ram}
	streamsList, comps := []int{1, 2, 3}, []Compression{CompressNone, CompressAuto}
	if backing != guestmem.Backing4K {
		streamsList, comps = []int{2}, []Compression{CompressNone}
	}
	for _, streams := range streamsList {
		for _, comp := range comps {
			b.Run(fmt.Sprintf("streams=%d/compress=%v", streams, comp), func(b *testing.B) {
				var sent uint64
				var downtime time.Duration
				cpu0 := cpuTime(b)
				for b.Loop() {
					res, tgt := migrateLoopback(b, src, streams, Options{Live: true, Engine: "sim", VCPUs: 1, Compression: comp}, backing)
					sent += res.BytesSent
					downtime += res.Downtime
					// The target keeps its memory: freeing 1 GiB (about
					// 0.4 s here) is not part of the move.
					b.StopTimer()
					cpuStop := cpuTime(b)
					tgt.Close()
					if err := m.Resume(); err != nil {
						b.Fatal(err)
					}
					cpu0 += cpuTime(b) - cpuStop
					b.StartTimer()
				}
				cpu := (cpuTime(b) - cpu0).Seconds() / float64(b.N)
				per := b.Elapsed().Seconds() / float64(b.N)
				rate := float64(populated*PageSize) / per
				b.ReportMetric(cpu, "cpu-s/migration")
				b.ReportMetric(cpu/per/float64(runtime.NumCPU()), "of-cpus")
				b.ReportMetric(per, "s/migration")
				b.ReportMetric(rate/1e9, "GB/s")
				b.ReportMetric(rate/tcp, "of-loopback-tcp")
				b.ReportMetric(rate/memcpy(), "of-memcpy")
				b.ReportMetric(tcp/1e9, "loopback-GB/s")
				b.ReportMetric(downtime.Seconds()*1000/float64(b.N), "downtime-ms")
				b.ReportMetric(float64(sent)/float64(b.N)/(1<<20), "MiB-sent")
			})
		}
	}
}

// cpuTime returns the CPU time this process has used (user and system):
// sender and receiver both run in it.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// migrateLoopback sends src over n loopback TCP connections to a receiver
// in this process that lands the pages in a fresh guest memory on backing
// (as the VMM does: stageSink), and returns that memory.
func migrateLoopback(b *testing.B, src Source, n int, opts Options, backing guestmem.Backing) (Result, *guestmem.RAM) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	var tgt *guestmem.RAM
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		var extra []net.Conn
		defer func() {
			for _, c := range extra {
				c.Close()
			}
		}()
		_, _, _, err = ReceiveStreams(context.Background(), c, func(context.Context) (io.Reader, error) {
			c, err := ln.Accept()
			if err == nil {
				extra = append(extra, c)
			}
			return c, err
		}, func(h Header) (Sink, error) {
			r, err := guestmem.NewBackedRAM("bench-dst", h.MemSize, backing)
			tgt = r
			if err != nil {
				return nil, err
			}
			return stageSink(r), nil
		})
		errc <- err
	}()
	ws := make([]io.Writer, n)
	for i := range ws {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		ws[i] = c
	}
	res, err := SendStreams(context.Background(), src, ws, opts, nil)
	if err != nil {
		b.Fatal(err)
	}
	err = <-errc
	if err != nil {
		if tgt != nil {
			tgt.Close()
		}
		b.Fatal(err)
	}
	return res, tgt
}
