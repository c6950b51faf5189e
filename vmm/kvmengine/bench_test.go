package kvmengine

import (
	"testing"

	"github.com/ovs-agent/ovs-agent/vmm/workload/workloadtest"
)

func BenchmarkKVMWriteRate(b *testing.B) {
	for _, r := range []string{"50M/s", "200M/s", "max"} {
		b.Run(r, func(b *testing.B) { workloadtest.BenchWriteRate(b, kvmFactory, r) })
	}
}

func BenchmarkKVMDirtyLog1GiB(b *testing.B) {
	b.Run("clean", func(b *testing.B) { workloadtest.BenchDirtyLog(b, kvmFactory, false) })
	b.Run("dirty", func(b *testing.B) { workloadtest.BenchDirtyLog(b, kvmFactory, true) })
}
