// Package qmp is a thin client of the QEMU Machine Protocol, for the
// ovs-vmm process that supervises one qemu-system-x86_64 (the qemu engine).
//
// It owns one QMP connection: Dial (or Connect on a unix connection already
// made) reads the greeting (QEMU's version and capabilities) and leaves
// capabilities-negotiation mode; Execute sends one command at a time and
// matches the answer by its "id", turning QMP's {"error": {"class",
// "desc"}} into *Error; SendFD passes a file descriptor by SCM_RIGHTS with
// `getfd`, as migration over a passed fd needs; events go to a bounded
// channel (Events) that never blocks the reader: when it is full the oldest
// event is dropped and counted (Dropped). Every read is bounded by a line
// limit; a line longer than it, or a line that is not QMP, ends the
// connection with an error that says so. Close, the connection's end and
// each caller's ctx unblock every waiter. commands.go has small typed
// helpers for the commands the engine needs first (status, stop/cont,
// powerdown, quit, migration).
//
// It must not touch anything else: it knows nothing of domains, vm.cfg,
// engines or the agent, starts no process, decides nothing about a guest,
// and imports nothing of the project (only the standard library and
// golang.org/x/sys/unix).
package qmp
