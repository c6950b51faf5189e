package guest

import (
	"io"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/workload"
	"github.com/ovs-agent/ovs-agent/vmm/workload/workloadtest"
)

func kvmFactory(t testing.TB, ram *workload.RAM, p workload.Params, state []byte, con io.Writer) (workload.Machine, error) {
	sys := needKVM(t)
	return New(Config{RAM: ram, Params: p, State: state, Console: con, KVM: sys})
}

func TestKVMHeartbeats(t *testing.T)  { workloadtest.Heartbeats(t, kvmFactory) }
func TestKVMDirtyLog(t *testing.T)    { workloadtest.DirtyLog(t, kvmFactory) }
func TestKVMCorrupt(t *testing.T)     { workloadtest.Corrupt(t, kvmFactory) }
func TestKVMSaveRestore(t *testing.T) { workloadtest.SaveRestore(t, kvmFactory) }
func TestKVMSparse(t *testing.T)      { workloadtest.Sparse(t, kvmFactory) }
func TestKVMThrottle(t *testing.T)    { workloadtest.Throttle(t, kvmFactory) }
func TestKVMRate(t *testing.T)        { workloadtest.Rate(t, kvmFactory, "32M/s", 500*time.Millisecond) }
