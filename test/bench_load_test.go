package test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkLoadWithLoginFlood: 50 well-behaved clients call agent.ping on
// the TCP API for 30 s (OVS_BENCH_LOAD_SECONDS overrides) while a flood of
// wrong-password logins with distinct passwords runs from the same host.
// Reports the clients' calls/s and p50/p99 latency, the flood's answers,
// and the agent's peak RSS (VmHWM), next to the same clients' figures for
// the same time without the flood, measured first in the same run.
func BenchmarkLoadWithLoginFlood(b *testing.B) {
	dur := 30 * time.Second
	if s, err := strconv.Atoi(os.Getenv("OVS_BENCH_LOAD_SECONDS")); err == nil && s > 0 {
		dur = time.Duration(s) * time.Second
	}
	// Everything comes from 127.0.0.1: raise the per-address cap so the
	// flood reaches the password check.
	a := startAgent(b, agentConf{Extra: map[string][]string{
		"server": {"max_pending_connections = 10000", "max_pending_per_address = 10000"},
	}})
	const clients, flooders = 50, 500

	// runClients starts the well-behaved clients until ctx ends; wait
	// returns their latencies, sorted, and the count of failed calls.
	runClients := func(ctx context.Context) (wait func() ([]time.Duration, int64)) {
		var mu sync.Mutex
		var lat []time.Duration
		var callErrs atomic.Int64
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := a.TCP()
				defer c.Close()
				var mine []time.Duration
				for ctx.Err() == nil {
					start := time.Now()
					if err := c.Call(ctx, "agent.ping", nil); err != nil {
						if ctx.Err() == nil {
							callErrs.Add(1)
						}
						continue
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		return func() ([]time.Duration, int64) {
			wg.Wait()
			slices.Sort(lat)
			return lat, callErrs.Load()
		}
	}
	pct := func(lat []time.Duration, p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000
	}

	// The same clients for the same time without the flood: the peer the
	// flood run is measured against.
	quiet, stopQuiet := context.WithTimeout(context.Background(), dur)
	base, _ := runClients(quiet)()
	stopQuiet()

	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	waitClients := runClients(ctx)
	var wg sync.WaitGroup
	time.Sleep(500 * time.Millisecond) // the clients log in first

	tr := &http.Transport{DisableKeepAlives: true}
	hc := &http.Client{Transport: tr}
	var busy, denied, other atomic.Int64
	var seq atomic.Int64
	for range flooders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "POST", a.URL(), strings.NewReader(pingBody))
				req.SetBasicAuth("admin", fmt.Sprintf("guess-%d", seq.Add(1)))
				resp, err := hc.Do(req)
				switch {
				case err != nil:
					other.Add(1)
				case resp.StatusCode == http.StatusServiceUnavailable:
					busy.Add(1)
				case resp.StatusCode == http.StatusUnauthorized:
					denied.Add(1)
				default:
					other.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	lat, callErrs := waitClients()
	tr.CloseIdleConnections()

	b.ReportMetric(float64(len(base))/dur.Seconds(), "calls/s-no-flood")
	b.ReportMetric(pct(base, 0.99), "p99-ms-no-flood")
	if len(base) > 0 {
		b.ReportMetric(float64(len(lat))/float64(len(base)), "calls-flood/no-flood")
	}
	b.ReportMetric(float64(len(lat))/dur.Seconds(), "calls/s")
	b.ReportMetric(pct(lat, 0.50), "p50-ms")
	b.ReportMetric(pct(lat, 0.99), "p99-ms")
	b.ReportMetric(float64(callErrs), "client-errors")
	b.ReportMetric(float64(busy.Load()), "flood-503")
	b.ReportMetric(float64(denied.Load()), "flood-401")
	b.ReportMetric(float64(other.Load()), "flood-other")
	if hwm := vmHWM(a.cmd.Process.Pid); hwm > 0 {
		b.ReportMetric(float64(hwm)/(1<<20), "agent-VmHWM-MiB")
	}
	if callErrs > 0 {
		b.Errorf("%d well-behaved calls failed during the flood", callErrs)
	}
}
