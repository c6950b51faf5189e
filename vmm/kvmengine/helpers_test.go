package kvmengine

import (
	"os"
	"testing"

	"github.com/ovs-agent/ovs-agent/vmm/kvm"
)

// needKVM skips the test when /dev/kvm is absent and opens it otherwise.
func needKVM(t testing.TB) *kvm.System {
	t.Helper()
	if _, err := os.Stat(kvm.DevicePath); err != nil {
		t.Skipf("skipping: %s not present (%v); the kvm engine cannot run on this host", kvm.DevicePath, err)
	}
	sys, err := kvm.Open("")
	if err != nil {
		t.Fatalf("%s exists but cannot be used: %v", kvm.DevicePath, err)
	}
	t.Cleanup(func() { sys.Close() })
	return sys
}
