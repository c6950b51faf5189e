// Package workload is the contract of the self-verifying workload that
// runs inside every domain, independent of the engine that runs it:
//
//   - Params: the workload parameters (dirty rate, hot set, touched
//     region, pattern, verify and heartbeat intervals, seed) and
//     ParamsFromSpec, which makes them from the vm.cfg `workload` option as
//     config/vmcfg parsed it (vmcfg.Workload: the one grammar, documented
//     there) and checks that they fit the guest's RAM;
//   - Layout: where the parameter page, status page, page tables, guest
//     code, expected-generation table, hot set and touched region live in
//     guest RAM (shared by the KVM guest in vmm/kvmengine and by the sim
//     engine in vmm/simengine), and Stats/ReadStats, the status page's
//     counters;
//   - the touch= fill: at start, before any other write, the guest writes
//     every page of the touched region (right after the hot set) once, in
//     order, as generation 1 of the page format, printing TOUCH progress
//     lines with its heartbeats and one TOUCH done line; from then on those
//     pages are verified like the hot set, and the dirty= writes begin (the
//     hot set only). Pages never written stay holes in the memfd;
//   - the page format (page number, generation, fill derived from page,
//     generation and seed) and Check, the one checker that validates memory
//     written by either engine (used by tests and by migration tests);
//   - Machine: the interface both engines implement (their memory is a
//     vmm/guestmem RAM);
//   - parsers for the console lines (HB, TOUCH and CORRUPT) and Lines, a
//     console recorder that waits for them;
//   - CheckDirtyLog, which explains a dirty log against the generation
//     table (subpackage workloadtest runs the same conformance tests and
//     benchmarks against any Machine).
//
// It imports only config/vmcfg (for the workload spec) and vmm/guestmem
// from this module; the engines import it, never the other way.
package workload
