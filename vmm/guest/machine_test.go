package guest

import (
	"testing"
	"time"
)

func TestBootHeartbeats(t *testing.T) {
	sys := needKVM(t)
	con := newConsole()
	m := start(t, Config{RAM: newRAM(t, 64<<20), Params: mustParams(t, "dirty=4M/s,hot=16M,verify=200ms,hb=200ms"), Console: con, KVM: sys})
	con.wait(t, 0, 5*time.Second, "start banner", func(l string) bool { return len(l) > 14 && l[:14] == "WORKLOAD start" })
	hb1, i := con.waitHeartbeat(t, 0, 5*time.Second)
	hb2, _ := con.waitHeartbeat(t, i+1, 5*time.Second)
	t.Logf("heartbeats: %+v then %+v", hb1, hb2)
	if hb2.Writes <= hb1.Writes || hb2.Verified <= hb1.Verified {
		t.Errorf("counters did not advance: %+v then %+v", hb1, hb2)
	}
	if hb2.Corrupt != 0 {
		t.Errorf("corruption reported: %+v\n%v", hb2, con.all())
	}
	t.Logf("exits: %+v; stats %+v", m.ExitCounts(), m.Stats())
}
