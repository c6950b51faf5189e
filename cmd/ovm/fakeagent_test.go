package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// fakeAgent answers the agent's API methods ovm calls over real XML-RPC
// (the agent's own server codec on 127.0.0.1) with the shapes the agent
// answers, so that a test runs an ovm command end to end: flags, call,
// decoding, printing, exit code. It refuses a caller whose password is
// not fakePassword (when one is sent) with HTTP 401, as the agent does.
type fakeAgent struct {
	srv *httptest.Server
	mu  sync.Mutex
	// migration is what migration.status answers, one after the other
	// (the last one again once they run out).
	migration []map[string]any
	statusN   int
	consoleN  int
	calls     []string
	saving    bool          // a domain.save is under way
	saveFor   time.Duration // how long domain.save takes
	// saveShown, when set, makes domain.save last until a domain.info
	// answered the save's progress (at most a minute) instead.
	saveShown chan struct{}
}

const fakePassword = "secret"

func domInfo(name string) map[string]any {
	return map[string]any{"name": name, "uuid": "4a1b2c3d-0000-4000-8000-000000000001", "state": "running", "reason": "started by admin",
		"memory": int64(1024), "maxmem": int64(2048), "vcpus": int64(2), "engine": "qemu", "accel": "tcg",
		"cpu_time_seconds": 12.5, "dirty_rate": float64(3 << 20), "uptime_seconds": 3725.0, "resident_bytes": int64(900 << 20)}
}

func migrationStatus(phase string, sent, left int64) map[string]any {
	return map[string]any{"id": "m-1", "domain": "web1", "target": "server2:8002", "live": true, "phase": phase, "round": int64(2),
		"bytes_sent": sent, "bytes_remaining": left, "throughput": float64(32 << 20), "dirty_rate": float64(1 << 20),
		"expected_downtime_ms": 12.0, "throttle_percent": int64(0), "offline": false, "elapsed_seconds": 4.0,
		"total_seconds": 4.25, "downtime_ms": 12.5, "error": ""}
}

func newFakeAgent(t *testing.T) *fakeAgent {
	t.Helper()
	f := &fakeAgent{migration: []map[string]any{
		migrationStatus("copying", 64<<20, 64<<20),
		migrationStatus("completed", 128<<20, 0),
	}}
	s := xmlrpc.NewServer()
	for name, d := range f.methods() {
		err := s.Define(xmlrpc.Def{Name: name, Variadic: true, Result: d.result, Run: func(_ context.Context, a xmlrpc.Args) (any, error) {
			f.mu.Lock()
			f.calls = append(f.calls, name)
			f.mu.Unlock()
			return d.run(a)
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pw, ok := r.BasicAuth(); ok && pw != fakePassword {
			w.Header().Set("Content-Type", "text/xml; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			_ = xmlrpc.EncodeFault(w, xmlrpc.Faultf(xmlrpc.AuthFailed, "wrong user name or password"))
			return
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

type fakeMethod struct {
	result xmlrpc.Type
	run    func(xmlrpc.Args) (any, error)
}

func answer(t xmlrpc.Type, v any) fakeMethod {
	return fakeMethod{result: t, run: func(xmlrpc.Args) (any, error) { return v, nil }}
}

// methods are the API methods ovm calls, with answers shaped as the
// agent's. domain.info of "nosuch" is the agent's NotFound fault.
func (f *fakeAgent) methods() map[string]fakeMethod {
	secondary := map[string]any{"name": "6a5c8e3d-9f1b-3c2a-8e7d-1b2c3d4e5f60", "mount_point": "/nfsmnt/6a5c8e3d-9f1b-3c2a-8e7d-1b2c3d4e5f60",
		"source": "nfs1:/export/secondary", "fs_type": "nfs", "options": "rw,nosuid,nodev,relatime", "size": int64(1 << 40), "free": int64(1 << 39)}
	repo := map[string]any{"uuid": "0004fb0000030000", "state": "mounted", "shared": true, "mount_point": "/OVS/Repositories/0004fb0000030000",
		"source": "nfs1:/export/repo1", "size": int64(100 << 30), "free": int64(40 << 30), "description": "repo1"}
	report := map[string]any{"repositories": []any{repo}, "problems": []any{}}
	item := []any{map[string]any{"name": "tmpl1", "size": int64(4 << 30), "memory": int64(512), "vcpus": int64(1), "path": "/OVS/seed_pool/tmpl1"}}
	created := map[string]any{"name": "web1", "uuid": "4a1b2c3d-0000-4000-8000-000000000001", "state": "stopped", "warnings": []any{"web1.cfg:7: colour: unknown option, ignored"}}
	poolDom := map[string]any{"name": "web1", "uuid": "4a1b2c3d-0000-4000-8000-000000000001", "host": "server1", "desired": "running", "ha": true,
		"priority": int64(0), "memory_mib": int64(1024), "state": "running", "reason": ""}
	m := map[string]fakeMethod{
		"agent.version": answer(xmlrpc.Struct, map[string]any{"version": "1.2.3", "protocol": int64(3), "go": "go1.26.8", "os": "linux", "arch": "amd64"}),
		"agent.status":  answer(xmlrpc.Struct, map[string]any{"caller": "admin@tcp:127.0.0.1", "socket_activated": false}),
		"agent.echo":    {result: xmlrpc.Array, run: func(a xmlrpc.Args) (any, error) { return []any(a.All()), nil }},
		"host.info": answer(xmlrpc.Struct, map[string]any{"hostname": "server1", "cpu_count": int64(2), "cpu_model": "Xeon", "cpu_vendor": "GenuineIntel",
			"cpu_mhz": 2400.0, "cpu_flags": []any{"vmx", "sse2"}, "memory_total": int64(8 << 30), "memory_free": int64(3 << 30),
			"memory_available": int64(5 << 30), "kernel": "Linux", "machine": "x86_64", "kernel_version": "6.1.0", "kvm_usable": true,
			"kvm_detail": "/dev/kvm", "agent_version": "1.2.3", "agent_protocol": int64(3), "agent_uptime_seconds": 93784.0}),
		"host.stats": answer(xmlrpc.Struct, map[string]any{"load1": 0.5, "load5": 0.25, "load15": 0.1, "cpu_busy_percent": 12.5,
			"memory_free": int64(3 << 30), "memory_available": int64(5 << 30), "cpu_interval_seconds": 1.0}),
		"host.top": answer(xmlrpc.Struct, map[string]any{"host": map[string]any{"load1": 0.5, "load5": 0.25, "load15": 0.1, "cpu_busy_percent": 12.5,
			"cpu_count": int64(2), "memory_total": int64(8 << 30), "memory_available": int64(5 << 30)}, "memory_committed": int64(1 << 30),
			"domains": []any{domInfo("web1")}}),
		"domain.list":                 answer(xmlrpc.Array, []any{domInfo("web1"), domInfo("db1")}),
		"domain.create":               answer(xmlrpc.Struct, created),
		"domain.create_from_template": answer(xmlrpc.Struct, created),
		"domain.delete":               answer(xmlrpc.Boolean, true),
		"domain.set_memory":           answer(xmlrpc.Struct, map[string]any{"name": "web1", "memory_target": int64(1536), "maxmem": int64(2048)}),
		"domain.console_input":        answer(xmlrpc.Boolean, true),
		"domain.console": {result: xmlrpc.Struct, run: func(a xmlrpc.Args) (any, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.consoleN++
			if f.consoleN == 1 {
				return map[string]any{"offset": int64(0), "raw": []byte("login: \n"), "next": int64(8), "live": true}, nil
			}
			return map[string]any{"offset": int64(8), "raw": []byte{}, "next": int64(8), "live": false}, nil
		}},
		"domain.migrate": answer(xmlrpc.String, "m-1"),
		"migration.check": answer(xmlrpc.Struct, map[string]any{"ok": true, "problems": []any{}, "estimate": map[string]any{
			"live": true, "measured_seconds": 2.0, "dirty_rate": float64(4 << 20), "hot_bytes": int64(32 << 20), "memory_bytes": int64(1 << 30),
			"touched_bytes": int64(512 << 20), "link_throughput": float64(100 << 20), "bandwidth": 0.0, "rate_limited": false,
			"total_seconds": 11.5, "downtime_ms": 40.0, "max_downtime_ms": 300.0, "rounds": int64(3), "bytes_to_send": int64(1100 << 20),
			"stop_reason": "converged", "auto_converge": false}}),
		"migration.status": {result: xmlrpc.Struct, run: func(xmlrpc.Args) (any, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			st := f.migration[min(f.statusN, len(f.migration)-1)]
			f.statusN++
			return st, nil
		}},
		"migration.list":               answer(xmlrpc.Array, []any{migrationStatus("completed", 128<<20, 0)}),
		"migration.cancel":             answer(xmlrpc.Struct, map[string]any{"id": "m-1", "phase": "cancelled"}),
		"domain.detach":                answer(xmlrpc.Struct, map[string]any{"domain": "web1", "manifest": "/OVS/running_pool/web1/ovs-detached.json", "disks": int64(1)}),
		"domain.attach":                answer(xmlrpc.Struct, map[string]any{"name": "web1", "uuid": "4a1b2c3d-0000-4000-8000-000000000001", "state": "stopped"}),
		"repository.list":              answer(xmlrpc.Struct, report),
		"repository.reload":            answer(xmlrpc.Struct, report),
		"repository.status":            answer(xmlrpc.Struct, repo),
		"repository.add":               answer(xmlrpc.Struct, repo),
		"repository.remove":            answer(xmlrpc.Struct, repo),
		"repository.templates":         answer(xmlrpc.Array, item),
		"repository.isos":              answer(xmlrpc.Array, item),
		"repository.secondary_list":    answer(xmlrpc.Array, []any{secondary}),
		"repository.secondary_unmount": answer(xmlrpc.Struct, secondary),
		"pool.info": answer(xmlrpc.Struct, map[string]any{"name": "p1", "master": "server1", "domains": int64(1), "maintenance_not_members": []any{},
			"members": []any{map[string]any{"host": "server1", "state": "active", "free_memory_mib": int64(4096), "engines": []any{"qemu"}, "address": "127.0.0.1:8899", "master": true}}}),
		"pool.domains":       answer(xmlrpc.Array, []any{poolDom}),
		"pool.create_domain": answer(xmlrpc.Struct, poolDom),
		"pool.start_domain":  answer(xmlrpc.Struct, poolDom),
		"pool.stop_domain":   answer(xmlrpc.Struct, poolDom),
		"pool.delete_domain": answer(xmlrpc.Boolean, true),
		"pool.maintenance":   answer(xmlrpc.Boolean, true),
		"pool.adopt_domain":  answer(xmlrpc.Struct, poolDom),
		"pool.set_ha":        answer(xmlrpc.Struct, poolDom),
	}
	info := fakeMethod{result: xmlrpc.Struct, run: func(a xmlrpc.Args) (any, error) {
		if p := a.All(); len(p) > 0 && p[0] == "nosuch" {
			return nil, xmlrpc.Faultf(xmlrpc.NotFound, "no domain named nosuch")
		}
		return domInfo("web1"), nil
	}}
	for _, name := range []string{"domain.restore", "domain.start", "domain.destroy", "domain.pause", "domain.unpause", "domain.shutdown", "domain.reboot"} {
		m[name] = info
	}
	// domain.info shows the progress of a domain.save under way, which
	// takes saveFor.
	m["domain.info"] = fakeMethod{result: xmlrpc.Struct, run: func(a xmlrpc.Args) (any, error) {
		in, err := info.run(a)
		f.mu.Lock()
		defer f.mu.Unlock()
		if err == nil && f.saving {
			in.(map[string]any)["save"] = map[string]any{"image": "/OVS/web1.save", "phase": "precopy", "bytes_sent": int64(32 << 20),
				"bytes_remaining": int64(32 << 20), "throughput": float64(64 << 20), "seconds": 0.5}
			if f.saveShown != nil {
				close(f.saveShown)
				f.saveShown = nil
			}
		}
		return in, err
	}}
	m["domain.save"] = fakeMethod{result: xmlrpc.Struct, run: func(a xmlrpc.Args) (any, error) {
		f.mu.Lock()
		f.saving = true
		d, shown := f.saveFor, f.saveShown
		f.mu.Unlock()
		if shown != nil {
			select {
			case <-shown:
			case <-time.After(time.Minute):
			}
		} else {
			time.Sleep(d)
		}
		f.mu.Lock()
		f.saving = false
		f.mu.Unlock()
		in, err := info.run(a)
		if err == nil {
			in.(map[string]any)["state"], in.(map[string]any)["reason"] = "suspended", "saved to /OVS/web1.save"
		}
		return in, err
	}}
	return m
}

// ovm runs ovm against the fake with args (after --url), stdin empty, and
// returns its standard output, standard error and exit code.
func (f *fakeAgent) ovm(t *testing.T, g *globals, args ...string) (string, string, int) {
	t.Helper()
	if g == nil {
		g = &globals{}
	}
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runWith(g, append([]string{"--url", f.srv.URL}, args...), strings.NewReader(""), &out, &errOut)
	}()
	select {
	case code := <-done:
		return out.String(), errOut.String(), code
	case <-time.After(time.Minute):
		t.Fatalf("ovm %v did not end", args)
	}
	return "", "", 0
}

// setMigration makes migration.status answer sts, from the first.
func (f *fakeAgent) setMigration(sts ...map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.migration, f.statusN = sts, 0
}

func (f *fakeAgent) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeAgent) String() string { return fmt.Sprintf("fake agent at %s", f.srv.URL) }
