package test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const pingBody = `<?xml version="1.0"?><methodCall><methodName>agent.ping</methodName><params></params></methodCall>`

// flood sends n concurrent wrong-password requests to a's TCP API and
// returns the answers' status codes counted (0: no answer / connection
// closed) once stop is called.
func flood(a *Agent, n int) (stop func() map[int]int) {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &http.Transport{DisableKeepAlives: true, MaxIdleConns: -1}
	cl := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "POST", a.URL(), strings.NewReader(pingBody))
			// Distinct passwords, as a guesser sends: identical ones would
			// share one bcrypt run.
			req.SetBasicAuth("admin", fmt.Sprintf("wrong-password-%d", i))
			req.Header.Set("Content-Type", "text/xml")
			code := 0
			if resp, err := cl.Do(req); err == nil {
				code = resp.StatusCode
				resp.Body.Close()
			} else if ctx.Err() != nil {
				code = -1 // still waiting when the test stopped
			}
			mu.Lock()
			counts[code]++
			mu.Unlock()
		}()
	}
	return func() map[int]int {
		cancel()
		wg.Wait()
		tr.CloseIdleConnections()
		return counts
	}
}

// pingsStayFast calls agent.ping on the unix socket a few times and fails
// if one takes longer than limit.
func pingsStayFast(t *testing.T, a *Agent, limit time.Duration) {
	t.Helper()
	u := a.Unix()
	for i := range 5 {
		start := time.Now()
		if err := u.Call(context.Background(), "agent.ping", nil); err != nil {
			t.Fatalf("agent.ping during the flood: %v", err)
		}
		if d := time.Since(start); d > limit {
			t.Fatalf("agent.ping %d during the flood took %v (limit %v)", i, d, limit)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// A flood of wrong-password logins neither stalls the agent nor piles up
// bcrypt runs: the excess is answered 503 at once and agent.ping on the
// unix socket stays fast. The pending-connection caps are raised so that
// the flood reaches the password check.
func TestLoginFloodIsBounded(t *testing.T) {
	a := startAgent(t, agentConf{Extra: map[string][]string{
		"server": {"max_pending_connections = 10000", "max_pending_per_address = 10000"},
	}})
	stop := flood(a, 1500)
	time.Sleep(time.Second)
	pingsStayFast(t, a, 3*time.Second)
	counts := stop()
	t.Logf("flood answers by status: %v", counts)
	if counts[http.StatusServiceUnavailable] == 0 {
		t.Fatalf("no flood request was answered 503 (busy): %v", counts)
	}
	// A right password still works afterwards (busy answers are not failures
	// that lock the address out for long).
	deadline := time.Now().Add(40 * time.Second)
	for {
		err := a.TCP().Call(context.Background(), "agent.ping", nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("right password after the flood: %v", err)
		}
		time.Sleep(time.Second)
	}
}

// With the default caps, a flood of connections from one address is cut at
// max_pending_per_address, with a rate-limited log line, and the agent
// stays responsive.
func TestPendingConnectionCapBites(t *testing.T) {
	a := startAgent(t, agentConf{})
	stop := flood(a, 1000)
	time.Sleep(time.Second)
	pingsStayFast(t, a, 3*time.Second)
	counts := stop()
	t.Logf("flood answers by status: %v", counts)
	a.WaitLog("too many connections not yet logged in")
	lines := logLines(a.Log(), "too many connections not yet logged in")
	if len(lines) == 0 || len(lines) > 5 {
		t.Fatalf("%d cap log lines for one address in a few seconds, want 1-5 (rate-limited)", len(lines))
	}
	if counts[0] == 0 {
		t.Fatalf("no flood connection was closed by the cap: %v", counts)
	}
}

// 200 simultaneous correct logins on a fresh agent (nothing cached) share
// one bcrypt run: all succeed, quickly. (They come from one address here,
// so the per-address pending cap is raised.)
func TestSimultaneousCorrectLoginsShareOneCheck(t *testing.T) {
	a := startAgent(t, agentConf{Extra: map[string][]string{"server": {"max_pending_per_address = 1000"}}})
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := a.TCP()
			defer c.Close()
			errs <- c.Call(context.Background(), "agent.ping", nil)
		}()
	}
	wg.Wait()
	close(errs)
	d := time.Since(start)
	for err := range errs {
		if err != nil {
			t.Fatalf("a correct login failed: %v", err)
		}
	}
	t.Logf("%d simultaneous correct logins in %v", n, d)
	if d > 10*time.Second {
		t.Fatalf("%d simultaneous correct logins took %v", n, d)
	}
}
