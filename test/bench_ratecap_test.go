package test

import (
	"testing"
	"time"
)

// BenchmarkMigrationRateCap is TestMigrationRateCap's migration as a
// figure: a 64 MiB hot set moved between two agents with the rate option
// at 8 MB/s, reported as the stream's rate against the cap (rate/cap: about
// 1 when the cap holds, a little over from the limiter's first bucket; how
// far below 1 says how much of the cap the host let the migration use).
func BenchmarkMigrationRateCap(b *testing.B) {
	const limit = 8e6
	var sent, took float64
	for i := 0; i < b.N; i++ {
		src, dst := pairB(b, "sim", "4k", placements[0])
		src.call(b, "domain.create", nil, vmcfgText("cap", 128, "dirty=128M/s,hot=64M"))
		src.call(b, "domain.start", nil, "cap")
		src.waitInfo(b, "cap", "the hot set written", func(i domInfo) bool { return i.Written*4096 >= 96<<20 })
		var id string
		src.call(b, "domain.migrate", &id, "cap", dst.Reloc, migrateOpts(map[string]any{"rate": 8}))
		var st migStatus
		for deadline := time.Now().Add(2 * time.Minute); st.Phase != "completed"; time.Sleep(200 * time.Millisecond) {
			src.call(b, "migration.status", &st, id)
			if st.Phase == "failed" || st.Phase == "cancelled" || time.Now().After(deadline) {
				b.Fatalf("capped migration: %+v", st)
			}
		}
		sent += float64(st.BytesSent)
		took += st.Transfer
	}
	b.ReportMetric(sent/took/limit, "rate/cap")
	b.ReportMetric(sent/took/1e6, "MB/s")
}
