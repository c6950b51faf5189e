package pagexfer

import (
	"context"
	"io"
	"testing"
	"time"
)

func TestSpeedProbe(t *testing.T) {
	m := newMemSource(16384)
	for p := 0; p < 16384; p++ {
		m.write(p, byte(p|1))
	}
	t0 := time.Now()
	res, err := Send(context.Background(), m, io.Discard, testOptions(true), nil)
	t.Logf("discard: %v %v %.0f MB/s", time.Since(t0), err, float64(res.BytesSent)/time.Since(t0).Seconds()/1e6)
	for _, lim := range []float64{8 << 20, 24 << 20} {
		sw := newStreamWriter(context.Background(), io.Discard, lim, 4, 1<<20)
		t0 = time.Now()
		for i := 0; i < 24; i++ {
			b, _ := sw.get()
			sw.put(b, b)
		}
		sw.flush()
		t.Logf("limit %v: 24 MiB in %v", lim, time.Since(t0))
	}
}
