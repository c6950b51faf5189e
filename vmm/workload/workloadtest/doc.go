// Package workloadtest is a conformance suite for workload.Machine
// implementations (the kvm engine in vmm/guest, the sim engine in
// vmm/workload): boot and heartbeats, dirty-log exactness and clear
// semantics, corruption detection, pause/save/restore into a new machine
// over a copy of memory, and the achieved write rate. Engine packages call
// it from their tests with a Factory; later packages (VMM, page transfer)
// can run it against whatever engine they wire up.
//
// It imports testing and must only be imported from tests.
package workloadtest
