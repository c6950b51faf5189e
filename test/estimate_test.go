package test

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/migration"
)

// estimateRes is migration.check with its estimate.
type estimateRes struct {
	OK         bool                `xmlrpc:"ok"`
	Problems   []string            `xmlrpc:"problems"`
	NoEstimate string              `xmlrpc:"no_estimate"`
	Estimate   *migration.Estimate `xmlrpc:"estimate"`
}

// TestMigrationEstimate: the dry run of a running guest that writes 32 MiB/s
// measures about that rate and predicts a finite migration; a rate cap
// below the dirty rate caps the link and calls for auto-converge; a stopped
// domain gets no estimate and the answer says why.
func TestMigrationEstimate(t *testing.T) {
	const rate = 32 << 20
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			src, dst := pair(t, engine, engine, "memory_reserve = 0")
			src.call(t, "domain.create", nil, vmcfgText("e1", 256, "dirty=32M/s,hot=64M,touch=32M,verify=500ms"))
			src.call(t, "domain.start", nil, "e1")
			src.waitInfo(t, "e1", "the touch fill and a verification round", func(i domInfo) bool { return i.Rounds >= 1 })

			var res estimateRes
			src.call(t, "migration.check", &res, "e1", dst.Reloc, migrateOpts(map[string]any{"live": true}))
			e := res.Estimate
			if !res.OK || e == nil {
				t.Fatalf("dry run: %+v (no estimate: %q)", res, res.NoEstimate)
			}
			t.Logf("%s: dirty %.1f MB/s (hot %d MiB), link %.0f MB/s, touched %d MiB: %.3f s, %.1f ms downtime, %d rounds (%s), measured for %.2f s",
				engine, e.DirtyRate/1e6, e.HotBytes>>20, e.LinkThroughput/1e6, e.TouchedBytes>>20, e.TotalSeconds, e.DowntimeMs, e.Rounds, e.StopReason, e.MeasuredSeconds)
			if e.DirtyRate < rate/3 || e.DirtyRate > rate*3 {
				t.Errorf("dirty rate %.1f MB/s for a guest writing %.1f MB/s", e.DirtyRate/1e6, float64(rate)/1e6)
			}
			// The probe's data landed in the target's memory, as pages do.
			if !e.Live || e.LinkThroughput <= 0 || e.TargetMemoryRate <= 0 || e.RateLimited || e.Bandwidth != e.LinkThroughput {
				t.Errorf("link: %+v", e)
			}
			if e.TouchedBytes < 32<<20 || e.TouchedBytes > e.MemoryBytes || e.MemoryBytes != 256<<20 {
				t.Errorf("touched %d of %d bytes", e.TouchedBytes, e.MemoryBytes)
			}
			if !(e.TotalSeconds > 0) || math.IsInf(e.TotalSeconds, 0) || e.DowntimeMs < 0 || e.DowntimeMs > 300 || e.Rounds < 2 || e.BytesToSend < e.TouchedBytes {
				t.Errorf("prediction: %+v", e)
			}
			if e.MeasuredSeconds > 5 {
				t.Errorf("the dry run measured for %.1f s", e.MeasuredSeconds)
			}

			// Capped at 4 MB/s, below the 32 MiB/s the guest writes.
			res = estimateRes{}
			src.call(t, "migration.check", &res, "e1", dst.Reloc, migrateOpts(map[string]any{"live": true, "rate": 4}))
			c := res.Estimate
			if c == nil || !c.RateLimited || c.Bandwidth != 4e6 || !c.AutoConverge || c.MaxThrottle == 0 || c.TotalSeconds <= e.TotalSeconds {
				t.Fatalf("capped dry run: %+v (no estimate: %q)", c, res.NoEstimate)
			}

			// A stopped domain (it would move offline): no estimate, and
			// the answer says why.
			src.call(t, "domain.create", nil, vmcfgText("e2", 64, ""))
			res = estimateRes{}
			src.call(t, "migration.check", &res, "e2", dst.Reloc, migrateOpts(map[string]any{"live": true}))
			if res.Estimate != nil || !strings.Contains(res.NoEstimate, "stopped") {
				t.Fatalf("dry run of a stopped domain: %+v", res)
			}

			if engine == "sim" {
				// The CLI prints the estimate after the verdict.
				pw := filepath.Join(t.TempDir(), "pw")
				os.WriteFile(pw, []byte(testPassword+"\n"), 0o600)
				out, code := runCmd(t, "", nil, bin("ovm"), "--url=unix://"+src.Socket, "migrate", "-l", "-n", "-r", "4", "--target-password-file", pw, "e1", dst.Reloc)
				for _, w := range []string{"can move", "estimate (live", "guest: dirties", "into its memory", "capped at", "predicted:", "auto-converge: needed"} {
					if code != 0 || !strings.Contains(out, w) {
						t.Fatalf("ovm migrate -n (exit %d) lacks %q:\n%s", code, w, out)
					}
				}
			}
			// The guest was not disturbed by being measured.
			verifiesCleanly(t, src, "e1")
		})
	}
}

// convStatus is migration.status with the throttle figures.
type convStatus struct {
	Phase       string  `xmlrpc:"phase"`
	Round       int     `xmlrpc:"round"`
	Throttle    int     `xmlrpc:"throttle_percent"`
	MaxThrottle int     `xmlrpc:"max_throttle_percent"`
	Throttled   float64 `xmlrpc:"throttled_seconds"`
	StopReason  string  `xmlrpc:"stop_reason"`
	DowntimeMs  float64 `xmlrpc:"downtime_ms"`
	Error       string  `xmlrpc:"error"`
}

// writeRate is the guest's page-write rate over a second, from domain.info
// (the workload's own counter, not the dirty log).
func writeRate(t *testing.T, a *Agent, name string) float64 {
	t.Helper()
	before := a.info(t, name)
	time.Sleep(time.Second)
	after := a.info(t, name)
	return float64(after.Written-before.Written) * 4096 / (after.Uptime - before.Uptime)
}

// TestAutoConvergeCappedLink: a guest that dirties memory faster than the
// capped link carries is throttled until the migration converges; the
// moved guest runs at full speed on the target and verifies. A migration
// cancelled while the guest is throttled leaves it at full speed on the
// source.
func TestAutoConvergeCappedLink(t *testing.T) {
	const dirty = 256 << 20
	spec := "dirty=256M/s,hot=8M,verify=200ms"
	opts := map[string]any{"live": true, "rate": 32, "max_downtime": 50}
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			src, dst := pair(t, engine, engine, "memory_reserve = 0")
			src.call(t, "domain.create", nil, vmcfgText("c1", 64, spec))
			src.call(t, "domain.start", nil, "c1")
			src.waitInfo(t, "c1", "a verification round", func(i domInfo) bool { return i.Rounds >= 1 })
			full := writeRate(t, src, "c1")
			t.Logf("%s: the guest writes %.0f MB/s (asked %.0f)", engine, full/1e6, float64(dirty)/1e6)

			// Cancelled while throttled: the source guest gets its speed back.
			var id string
			src.call(t, "domain.migrate", &id, "c1", dst.Reloc, migrateOpts(opts))
			deadline := time.Now().Add(30 * time.Second)
			for {
				var st convStatus
				src.call(t, "migration.status", &st, id)
				if st.Throttle > 0 {
					break
				}
				if st.Phase == "completed" || st.Phase == "failed" || time.Now().After(deadline) {
					t.Fatalf("never throttled before the end: %+v", st)
				}
				time.Sleep(20 * time.Millisecond)
			}
			var st convStatus
			src.call(t, "migration.cancel", &st, id)
			for st.Phase != "cancelled" && st.Phase != "failed" {
				if time.Now().After(deadline) {
					t.Fatalf("cancel: %+v", st)
				}
				time.Sleep(50 * time.Millisecond)
				src.call(t, "migration.status", &st, id)
			}
			src.waitInfo(t, "c1", "running after the cancel", func(i domInfo) bool { return i.State == "running" })
			if r := writeRate(t, src, "c1"); r < full/2 {
				t.Fatalf("after the cancel the source guest writes %.0f MB/s, %.0f before: still throttled", r/1e6, full/1e6)
			}

			// Migrated to the end: throttled on the way, full speed after.
			src.call(t, "domain.migrate", &id, "c1", dst.Reloc, migrateOpts(opts))
			deadline = time.Now().Add(60 * time.Second)
			for {
				st = convStatus{}
				src.call(t, "migration.status", &st, id)
				if st.Phase == "completed" || st.Phase == "failed" || st.Phase == "cancelled" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the migration did not converge: %+v", st)
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("%s: %+v", engine, st)
			if st.Phase != "completed" || st.MaxThrottle == 0 || st.Throttled <= 0 {
				t.Fatalf("capped migration: %+v", st)
			}
			dst.waitInfo(t, "c1", "running on the target", func(i domInfo) bool { return i.State == "running" })
			if r := writeRate(t, dst, "c1"); r < full/2 {
				t.Fatalf("on the target the guest writes %.0f MB/s, %.0f before: still throttled", r/1e6, full/1e6)
			}
			verifiesCleanly(t, dst, "c1")
		})
	}
}
