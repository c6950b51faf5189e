package vmm

import (
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
)

// The workload engines read their own settings from the vm.cfg: a guest
// whose memory is not a whole 2 MiB gets the next one, and Info reports
// the memory the guest has.
func TestWorkloadEngineRoundsMemoryUp(t *testing.T) {
	c := &vmcfg.Config{Name: "odd", Memory: 63, VCPUs: 1, WorkloadSpec: vmcfg.DefaultWorkload()}
	o := OptionsFromConfig(c, EngineSim, t.TempDir(), "")
	if o.MemoryBytes != 63<<20 {
		t.Fatalf("options carry %d bytes, want the vm.cfg's %d", o.MemoryBytes, 63<<20)
	}
	v := startVMM(t, o)
	if got := v.info().MemoryBytes; got != 64<<20 {
		t.Fatalf("info reports %d bytes, want %d", got, 64<<20)
	}
}

// A workload that does not fit the guest's memory is refused as the VMM
// starts, naming the domain.
func TestWorkloadEngineRefusesAWorkloadThatDoesNotFit(t *testing.T) {
	w, err := vmcfg.ParseWorkload("hot=64M")
	if err != nil {
		t.Fatal(err)
	}
	c := &vmcfg.Config{Name: "tight", Memory: 32, VCPUs: 1, WorkloadSpec: w}
	for _, engine := range []string{EngineSim, EngineKVM} {
		_, err := Start(OptionsFromConfig(c, engine, t.TempDir(), ""))
		if err == nil || !strings.HasPrefix(err.Error(), "tight: workload layout: ") || !strings.Contains(err.Error(), "does not fit in 32 MiB") {
			t.Errorf("%s engine: %v, want the workload refused for not fitting 32 MiB", engine, err)
		}
	}
}
