package test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/client"
)

// bareHTTPRoundTrip measures the limit: an HTTP POST round trip on loopback
// to a handler that does nothing, with the same client settings.
func bareHTTPRoundTrip(b *testing.B, parallel bool) float64 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, `<?xml version="1.0"?><methodResponse><params><param><value><boolean>1</boolean></value></param></params></methodResponse>`)
	})}
	go srv.Serve(l)
	defer srv.Close()
	c, err := client.New(client.Options{URL: "http://" + l.Addr().String() + "/RPC2"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	return measure(b, c, "agent.ping", parallel)
}

// measure runs calls for about a second and returns calls per second.
func measure(b *testing.B, c *client.Client, method string, parallel bool) float64 {
	const window = time.Second
	var n atomic.Int64
	deadline := time.Now().Add(window)
	worker := func() {
		for time.Now().Before(deadline) {
			if err := c.Call(context.Background(), method, nil); err != nil {
				b.Error(err)
				return
			}
			n.Add(1)
		}
	}
	workers := 1
	if parallel {
		workers = 16
	}
	done := make(chan struct{})
	for i := 0; i < workers; i++ {
		go func() { worker(); done <- struct{}{} }()
	}
	for i := 0; i < workers; i++ {
		<-done
	}
	return float64(n.Load()) / window.Seconds()
}

func benchAPI(b *testing.B, method string, parallel bool) {
	a := startAgent(b, agentConf{})
	c := a.TCP()
	defer c.Close()
	// Warm up: connections and the password check cache.
	for i := 0; i < 10; i++ {
		if err := c.Call(context.Background(), method, nil); err != nil {
			b.Fatal(err)
		}
	}
	limit := bareHTTPRoundTrip(b, parallel)
	b.ResetTimer()
	start := time.Now()
	if parallel {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := c.Call(context.Background(), method, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for i := 0; i < b.N; i++ {
			if err := c.Call(context.Background(), method, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "calls/s")
	b.ReportMetric(limit, "bare-http-calls/s")
	b.ReportMetric(rate/limit, "ratio-to-bare-http")
}

// BenchmarkAPIRoundTrip is one client calling in sequence over HTTP with
// Basic auth, against a bare HTTP server measured in the same run.
func BenchmarkAPIRoundTrip(b *testing.B) {
	for _, m := range []string{"agent.ping", "host.info"} {
		b.Run(strings.ReplaceAll(m, ".", "_"), func(b *testing.B) { benchAPI(b, m, false) })
	}
}

// BenchmarkAPIConcurrent is many callers at once.
func BenchmarkAPIConcurrent(b *testing.B) {
	for _, m := range []string{"agent.ping", "host.info"} {
		b.Run(strings.ReplaceAll(m, ".", "_"), func(b *testing.B) { benchAPI(b, m, true) })
	}
}
