package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
)

// pair starts a source agent on 127.0.0.2 and a target on 127.0.0.3, each
// with its relocation listener on.
func pair(t *testing.T, srcEngine, dstEngine string, dstExtra ...string) (*Agent, *Agent) {
	src := startAgent(t, agentConf{Listen: "127.0.0.2", RelocPort: freePort(t, "127.0.0.2"), Extra: map[string][]string{
		"agent": {"hypervisor = " + srcEngine, "memory_reserve = 0"},
	}})
	dst := startAgent(t, agentConf{Listen: "127.0.0.3", RelocPort: freePort(t, "127.0.0.3"), Extra: map[string][]string{
		"agent": append([]string{"hypervisor = " + dstEngine}, dstExtra...),
	}})
	return src, dst
}

func migrateOpts(extra map[string]any) map[string]any {
	o := map[string]any{"user": "admin", "password": testPassword}
	for k, v := range extra {
		o[k] = v
	}
	return o
}

type checkRes struct {
	OK       bool     `xmlrpc:"ok"`
	Problems []string `xmlrpc:"problems"`
}

// TestMigrationDryRun provokes every problem the dry run knows at once and
// expects each on its own line; then fixes them and expects a clean check.
func TestMigrationDryRun(t *testing.T) {
	// Leave the target 100 MiB for domains: enough for its own m1, not the offered one.
	total, err := hostinfo.MemoryTotal()
	if err != nil {
		t.Fatal(err)
	}
	src, dst := pair(t, "sim", "kvm", fmt.Sprintf("memory_reserve = %d", total>>20-100))
	// A repository on the source that the target does not have.
	out, code := runCmd(t, "", []string{"OVS_AGENT_CONFIG=" + src.Config}, bin("ovs-agent"), "repo", "make", "--", t.TempDir(), "1", "source only")
	if code != 0 {
		t.Fatalf("repo make (exit %d): %s", code, out)
	}
	repo := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	src.waitRepo(t, repo, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })
	repoDisk := filepath.Join(src.Dir, "OVS", repo, "running_pool", "m1", "System.img")
	src.call(t, "domain.create", nil, vmcfgText("m1", 128, "dirty=1M/s,hot=8M", "disk = ['file:"+repoDisk+",xvda,w', 'file:/srv/local/m1-data.img,xvdb,w']"))
	src.call(t, "domain.start", nil, "m1")
	dst.call(t, "domain.create", nil, vmcfgText("m1", 64, ""))

	var res checkRes
	src.call(t, "migration.check", &res, "m1", dst.Reloc, migrateOpts(map[string]any{"live": true}))
	if res.OK {
		t.Fatal("dry run OK despite every problem")
	}
	want := []string{"name: a domain named m1 exists", "memory: the domain needs 128 MiB", "engine: the domain runs on the sim engine",
		"repository " + repo + " is not mounted",
		"disk /srv/local/m1-data.img: not on a repository"}
	for _, w := range want {
		found := 0
		for _, p := range res.Problems {
			if strings.Contains(p, w) {
				found++
			}
		}
		if found != 1 {
			t.Errorf("dry run: %q found %d times in\n%s", w, found, strings.Join(res.Problems, "\n"))
		}
	}
	// The same through the CLI, one problem per line, exit code 1.
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte(testPassword+"\n"), 0o600)
	out, code = runCmd(t, "", nil, bin("ovm"), "--url=unix://"+src.Socket, "migrate", "-l", "-n", "--target-password-file", pw, "m1", dst.Reloc)
	if code != 1 || !strings.Contains(out, "cannot move") || strings.Count(out, "\n  ") < len(want) {
		t.Fatalf("ovm migrate -n (exit %d):\n%s", code, out)
	}

	// Wrong password: said, and nothing else checked on the target.
	res = checkRes{}
	src.call(t, "migration.check", &res, "m1", dst.Reloc, map[string]any{"password": "nope"})
	if res.OK || len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "authentication failed") {
		t.Fatalf("dry run with a wrong password: %q", res.Problems)
	}
	// A stopped domain cannot move live.
	src.call(t, "domain.create", nil, vmcfgText("off", 64, ""))
	res = checkRes{}
	src.call(t, "migration.check", &res, "off", dst.Reloc, migrateOpts(map[string]any{"live": true}))
	if res.OK || !strings.Contains(strings.Join(res.Problems, "\n"), "state: off is stopped") {
		t.Fatalf("dry run of a stopped domain: %q", res.Problems)
	}
}

func TestMigrationDryRunClean(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			src, dst := pair(t, engine, engine, "memory_reserve = 0")
			src.call(t, "domain.create", nil, vmcfgText("m2", 128, "dirty=1M/s,hot=8M"))
			src.call(t, "domain.start", nil, "m2")
			var res checkRes
			src.call(t, "migration.check", &res, "m2", dst.Reloc, migrateOpts(map[string]any{"live": true}))
			if !res.OK || len(res.Problems) != 0 {
				t.Fatalf("dry run between two compatible agents: %q", res.Problems)
			}
		})
	}
}

// TestMigrationHostsAllow: the target's hosts-allow refuses the sender's
// address (127.0.0.2); the dry run says so.
func TestMigrationHostsAllow(t *testing.T) {
	src, dst := pair(t, "sim", "sim", "memory_reserve = 0")
	// Rewrite the target's hosts_allow to admit only 127.0.0.9, and reload.
	cfg, _ := os.ReadFile(dst.Config)
	os.WriteFile(dst.Config, []byte(strings.Replace(string(cfg), "[relocation]\n", "[relocation]\nhosts_allow = ^127\\.0\\.0\\.9$\n", 1)), 0o600)
	dst.Signal(syscall.SIGHUP)
	dst.WaitLog("configuration reloaded")
	src.call(t, "domain.create", nil, vmcfgText("h1", 64, ""))
	src.call(t, "domain.start", nil, "h1")
	var res checkRes
	src.call(t, "migration.check", &res, "h1", dst.Reloc, migrateOpts(nil))
	if res.OK || !strings.Contains(strings.Join(res.Problems, "\n"), "hosts-allow") {
		t.Fatalf("dry run refused by hosts-allow: %q", res.Problems)
	}
	dst.WaitLog("relocation peer refused by hosts-allow")
	if l := logLines(dst.Log(), "refused by hosts-allow"); !strings.Contains(l[0], `"peer":"127.0.0.2"`) {
		t.Fatalf("refusal log: %s", l[0])
	}
}

type migStatus struct {
	ID         string  `xmlrpc:"id"`
	Phase      string  `xmlrpc:"phase"`
	Round      int     `xmlrpc:"round"`
	BytesSent  int64   `xmlrpc:"bytes_sent"`
	Remaining  int64   `xmlrpc:"bytes_remaining"`
	ZeroPages  int64   `xmlrpc:"zero_pages"`
	DataPages  int64   `xmlrpc:"data_pages"`
	Total      float64 `xmlrpc:"total_seconds"`
	Transfer   float64 `xmlrpc:"transfer_seconds"`
	DowntimeMs float64 `xmlrpc:"downtime_ms"`
	StopCopyMs float64 `xmlrpc:"stop_copy_ms"`
	VerifyMs   float64 `xmlrpc:"verify_ms"`
	ResumeMs   float64 `xmlrpc:"resume_ms"`
	DrainMs    float64 `xmlrpc:"drain_ms"`
	Throughput float64 `xmlrpc:"throughput"`
	Error      string  `xmlrpc:"error"`
}

// waitMigration polls migration.status until the migration ends, checking
// that bytes sent, rounds and data pages never go backwards.
func waitMigration(t *testing.T, a *Agent, id string) migStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last migStatus
	for time.Now().Before(deadline) {
		var st migStatus
		a.call(t, "migration.status", &st, id)
		if st.BytesSent < last.BytesSent || st.Round < last.Round || st.DataPages < last.DataPages {
			t.Fatalf("progress went backwards: %+v after %+v", st, last)
		}
		last = st
		switch st.Phase {
		case "completed", "failed", "cancelled":
			return st
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("migration %s did not end: %+v", id, last)
	return last
}

// verifiesCleanly waits for two more verification rounds of name on a and
// checks nothing was ever corrupt.
func verifiesCleanly(t testing.TB, a *Agent, name string) {
	t.Helper()
	start := a.info(t, name)
	a.waitInfo(t, name, "two more verification rounds", func(i domInfo) bool { return i.Rounds >= start.Rounds+2 })
	if in := a.info(t, name); in.Corrupt != 0 {
		t.Fatalf("%s reports %d corrupt pages", name, in.Corrupt)
	}
	if c := a.console(t, name); strings.Contains(c, "CORRUPT") {
		t.Fatalf("%s console shows corruption:\n%s", name, c)
	}
}

func TestLiveMigration(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			src, dst := pair(t, engine, engine, "memory_reserve = 0")
			src.call(t, "domain.create", nil, vmcfgText("live1", 256, "dirty=32M/s,hot=64M,verify=200ms"))
			src.call(t, "domain.start", nil, "live1")
			src.waitInfo(t, "live1", "a verification round", func(i domInfo) bool { return i.Rounds >= 1 })
			var id string
			src.call(t, "domain.migrate", &id, "live1", dst.Reloc, migrateOpts(map[string]any{"live": true}))
			st := waitMigration(t, src, id)
			if st.Phase != "completed" {
				t.Fatalf("migration: %+v", st)
			}
			if st.Round < 2 || st.DowntimeMs <= 0 || st.BytesSent == 0 {
				t.Errorf("live migration figures: %+v", st)
			}
			// The downtime runs to the target's resume: it holds its parts
			// (the last pages, the target's check, the commit), not just
			// the source's stop-and-copy.
			if parts := st.StopCopyMs + st.VerifyMs + st.ResumeMs; st.StopCopyMs <= 0 || st.VerifyMs <= 0 || st.ResumeMs <= 0 ||
				parts > st.DowntimeMs || st.DowntimeMs <= st.StopCopyMs {
				t.Errorf("downtime %.3f ms does not hold its parts (stop-copy %.3f, verify %.3f, resume %.3f)", st.DowntimeMs, st.StopCopyMs, st.VerifyMs, st.ResumeMs)
			}
			// Before pausing, the source waited for the target to apply
			// the pre-copy rounds (the drain).
			if st.DrainMs <= 0 {
				t.Errorf("no drain before the pause: %+v", st)
			}
			// The target agent follows its VMM's commit within moments.
			dst.waitInfo(t, "live1", "running on the target", func(i domInfo) bool { return i.State == "running" })
			verifiesCleanly(t, dst, "live1")
			// The source has no copy left.
			if f := src.fault(t, "domain.info", "live1"); f.Code != 1002 {
				t.Fatalf("source still knows live1: %v", f)
			}
			if _, err := os.Stat(filepath.Join(src.Dir, "state", "domains", "live1")); !os.IsNotExist(err) {
				t.Fatalf("source kept the domain folder: %v", err)
			}
			// And back again, non-live.
			var back string
			dst.call(t, "domain.migrate", &back, "live1", src.Reloc, migrateOpts(nil))
			if st := waitMigration(t, dst, back); st.Phase != "completed" {
				t.Fatalf("migration back: %+v", st)
			}
			verifiesCleanly(t, src, "live1")
		})
	}
}

// parStatus is migration.status with the stream and compression figures.
type parStatus struct {
	Phase             string  `xmlrpc:"phase"`
	Streams           int     `xmlrpc:"streams"`
	Compression       string  `xmlrpc:"compression"`
	CompressedBatches int64   `xmlrpc:"compressed_batches"`
	CompressionSaved  int64   `xmlrpc:"compression_saved_bytes"`
	CompressionRatio  float64 `xmlrpc:"compression_ratio"`
	BytesSent         int64   `xmlrpc:"bytes_sent"`
}

// TestMigrationParallelCompressed moves a busy guest live over three
// streams with s2, and back over three streams with zstd, on both
// engines; the guest keeps verifying with no corruption after each move,
// and the status says how many streams went and what compression saved.
func TestMigrationParallelCompressed(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			src, dst := pair(t, engine, engine, "memory_reserve = 0")
			src.call(t, "domain.create", nil, vmcfgText("par1", 256, "dirty=32M/s,hot=64M,touch=64M,verify=200ms"))
			src.call(t, "domain.start", nil, "par1")
			src.waitInfo(t, "par1", "a verification round", func(i domInfo) bool { return i.Rounds >= 1 })
			from, to := src, dst
			for _, codec := range []string{"s2", "zstd"} {
				var id string
				from.call(t, "domain.migrate", &id, "par1", to.Reloc, migrateOpts(map[string]any{"live": true, "parallel": 3, "compress": codec}))
				if st := waitMigration(t, from, id); st.Phase != "completed" {
					t.Fatalf("%s: migration: %+v", codec, st)
				}
				var ps parStatus
				from.call(t, "migration.status", &ps, id)
				t.Logf("%s: %+v", codec, ps)
				// The guest's own tables compress; its data pages do not.
				if ps.Streams != 3 || ps.Compression != codec || ps.CompressedBatches == 0 || ps.CompressionSaved <= 0 ||
					!(ps.CompressionRatio > 0 && ps.CompressionRatio < 1) {
					t.Fatalf("%s: status %+v", codec, ps)
				}
				to.waitInfo(t, "par1", "running on the target", func(i domInfo) bool { return i.State == "running" })
				verifiesCleanly(t, to, "par1")
				if f := from.fault(t, "domain.info", "par1"); f.Code != 1002 {
					t.Fatalf("the source still knows par1: %v", f)
				}
				from, to = to, from
			}
		})
	}
}
