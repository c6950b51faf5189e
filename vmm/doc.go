// Package vmm will own one domain's virtual machine monitor, the code that
// runs inside an ovs-vmm process: guest RAM in a memfd, the engines (kvm on
// /dev/kvm, sim where KVM is missing), dirty-page tracking, the serial
// console ring buffer, the self-verifying workload guest and the control
// socket the agent talks to.
//
// It may import config, never agent or cmd.
package vmm
