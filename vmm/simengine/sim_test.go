package simengine_test

import (
	"io"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem/hosttest"
	"github.com/ovs-agent/ovs-agent/vmm/simengine"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
	"github.com/ovs-agent/ovs-agent/vmm/workload/workloadtest"
)

func simFactory(t testing.TB, ram *guestmem.RAM, p workload.Params, state []byte, con io.Writer) (workload.Machine, error) {
	return simengine.New(simengine.Config{RAM: ram, Params: p, State: state, Console: con})
}

func TestSimHeartbeats(t *testing.T) { workloadtest.Heartbeats(t, simFactory) }
func TestSimDirtyLog(t *testing.T)   { workloadtest.DirtyLog(t, simFactory) }

// The dirty log is of 4 KiB pages inside 2 MiB hugetlb and thp pages.
func TestSimDirtyLogHugePages(t *testing.T) {
	hosttest.ReserveHugePages(t, 32)
	hosttest.ShmemTHP(t, "advise")
	for _, b := range []guestmem.Backing{guestmem.BackingHugeTLB, guestmem.BackingTHP} {
		t.Run(string(b), func(t *testing.T) { workloadtest.DirtyLogOn(t, simFactory, b) })
	}
}
func TestSimCorrupt(t *testing.T)     { workloadtest.Corrupt(t, simFactory) }
func TestSimSaveRestore(t *testing.T) { workloadtest.SaveRestore(t, simFactory) }
func TestSimSparse(t *testing.T)      { workloadtest.Sparse(t, simFactory) }
func TestSimThrottle(t *testing.T)    { workloadtest.Throttle(t, simFactory) }
func TestSimTouch(t *testing.T)       { workloadtest.Touch(t, simFactory) }
func TestSimTouchSaveRestore(t *testing.T) {
	workloadtest.TouchSaveRestore(t, simFactory)
}
func TestSimRate(t *testing.T) { workloadtest.Rate(t, simFactory, "32M/s", 500*time.Millisecond) }

func BenchmarkSimWriteRate(b *testing.B) {
	for _, r := range []string{"50M/s", "200M/s", "max"} {
		b.Run(r, func(b *testing.B) { workloadtest.BenchWriteRate(b, simFactory, r) })
	}
}

func BenchmarkSimDirtyLog1GiB(b *testing.B) {
	b.Run("clean", func(b *testing.B) { workloadtest.BenchDirtyLog(b, simFactory, false) })
	b.Run("dirty", func(b *testing.B) { workloadtest.BenchDirtyLog(b, simFactory, true) })
}
