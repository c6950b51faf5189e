package agent

import (
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/config"
	"github.com/ovs-agent/ovs-agent/vmm/qemu"
)

// [qemu] binary's default is the qemu engine's (config cannot import
// vmm/qemu to say so itself).
func TestQEMUBinaryDefaultIsTheEngines(t *testing.T) {
	if config.Default().QEMU.Binary != qemu.DefaultBinary {
		t.Fatalf("[qemu] binary defaults to %s, the engine to %s", config.Default().QEMU.Binary, qemu.DefaultBinary)
	}
}

// accel = kvm on a host whose probe finds no hardware virtualization is
// refused by check-config (and at start and reload), naming the option
// and what to set; auto and tcg are always accepted.
func TestCheckConfigRefusesAccelKVMWithoutHardwareVirtualization(t *testing.T) {
	saved := probeAccel
	t.Cleanup(func() { probeAccel = saved })
	probeAccel = func() (string, string) { return qemu.AccelTCG, "/dev/kvm is the PVM hypervisor's" }
	parse := func(text string) *config.Config {
		c, err := config.Parse("/etc/ovs-agent/agent.ini", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	err := CheckConfig(parse("[qemu]\naccel = kvm\n"))
	if err == nil || !strings.Contains(err.Error(), "/etc/ovs-agent/agent.ini:2: [qemu] accel: [qemu] accel = kvm, but this host has no usable hardware virtualization: /dev/kvm is the PVM hypervisor's (set [qemu] accel = auto or tcg)") {
		t.Fatalf("CheckConfig(accel = kvm) without KVM: %v", err)
	}
	for _, ok := range []string{"[qemu]\naccel = auto\n", "[qemu]\naccel = tcg\n"} {
		if err := CheckConfig(parse(ok)); err != nil {
			t.Errorf("CheckConfig(%q): %v", ok, err)
		}
	}
	probeAccel = func() (string, string) { return qemu.AccelKVM, "vmx, not PVM" }
	if err := CheckConfig(parse("[qemu]\naccel = kvm\n")); err != nil {
		t.Errorf("CheckConfig(accel = kvm) with KVM: %v", err)
	}
}
