// Package workload owns the self-verifying workload that runs inside every
// domain, independent of the engine that runs it:
//
//   - Params: the vm.cfg `workload` option (dirty rate, hot set, pattern,
//     verify and heartbeat intervals, seed) and its parser;
//   - Layout: where the parameter page, status page, page tables, guest
//     code, expected-generation table and hot set live in guest RAM (shared
//     by the KVM guest in vmm/guest and by the sim engine here);
//   - the page format (page number, generation, fill derived from page,
//     generation and seed) and Check, the one checker that validates memory
//     written by either engine (used by tests and by migration tests);
//   - RAM: guest memory as a sparse memfd mapping, and DirtyBitmap, the
//     software dirty log;
//   - Sim: the sim engine, a goroutine running the same workload over the
//     same memory with the same console lines;
//   - Machine: the engine-neutral interface both engines implement;
//   - parsers for the console lines (HB and CORRUPT) and Lines, a console
//     recorder that waits for them;
//   - CheckDirtyLog, which explains a dirty log against the generation
//     table (subpackage workloadtest runs the same conformance tests and
//     benchmarks against any Machine).
//
// It must not import other ovs-agent packages; vmm/guest imports it.
package workload
