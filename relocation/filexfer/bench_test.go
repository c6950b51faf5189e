package filexfer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/limits"
)

// BenchmarkOfflineCopy copies a 4 GiB sparse disk holding 1 GiB of data
// over loopback TCP (sparse reads, per-block SHA-256, sparse writes,
// durable checkpoints) and reports it against one loopback TCP stream and
// against `cp --sparse=always` followed by `sha256sum` of the copy, both
// measured in the same run on the same file.
func BenchmarkOfflineCopy(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "System.img")
	const size, data = 4 << 30, 1 << 30
	chunks := map[int64]int{}
	for off := int64(0); off < data; off += 64 << 20 { // 16 extents of 64 MiB spread over the disk
		chunks[off*4] = 64 << 20
	}
	sparseFile(b, src, size, 11, chunks, nil)
	loop, err := limits.LoopbackTCP(2 << 30)
	if err != nil {
		b.Fatal(err)
	}
	cpRate := func() float64 {
		dst := filepath.Join(dir, "cp.img")
		defer os.Remove(dst)
		t0 := time.Now()
		if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, out)
		}
		if out, err := exec.Command("sha256sum", dst).CombinedOutput(); err != nil {
			b.Fatalf("sha256sum: %v %s", err, out)
		}
		return data / time.Since(t0).Seconds()
	}()
	b.SetBytes(data)
	b.ResetTimer()
	var rate float64
	for range b.N {
		staging := filepath.Join(dir, "in")
		t0 := time.Now()
		o := transfer(b, context.Background(), tcpPair(b), []SourceFile{{Path: src, Name: "System.img"}}, SendOptions{Domain: "u"}, ReceiveOptions{Staging: staging})
		if o.serr != nil || o.rerr != nil {
			b.Fatalf("send %v, receive %v", o.serr, o.rerr)
		}
		rate = data / time.Since(t0).Seconds()
		b.StopTimer()
		os.RemoveAll(staging)
		b.StartTimer()
	}
	b.ReportMetric(rate/1e6, "MB/s")
	b.ReportMetric(rate/loop, "x_loopback")
	b.ReportMetric(rate/cpRate, "x_cp+sha256sum")
	b.Logf("offline copy: %.0f MB/s of data; loopback TCP %.0f MB/s; cp --sparse=always + sha256sum %.0f MB/s", rate/1e6, loop/1e6, cpRate/1e6)
}
