// Package workloadtest is a conformance suite for workload.Machine
// implementations (the kvm engine in vmm/kvmengine, the sim engine in
// vmm/simengine): boot and heartbeats, dirty-log exactness and clear
// semantics, corruption detection, pause/save/restore into a new machine
// over a copy of memory, the achieved write rate, and the touch= fill
// (exactly the touched region written once, the rest a hole, verified like
// every written page, resumable across save/restore). Engine packages call
// it from their tests with a Factory; later packages (VMM, page transfer)
// can run it against whatever engine they wire up. Params makes workload
// parameters from a vm.cfg workload spec for tests.
//
// It sits under vmm/workload because it tests that package's Machine
// contract. It imports testing and must only be imported from tests.
package workloadtest
