package vmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
)

// Engine runs one domain's guest for the VMM runtime, and is everything
// the runtime knows of it. The runtime (this package: the control socket,
// the console, the exit record, the VMM state, the migration phases and
// the two-phase commit) drives an Engine and never touches what is behind
// it: the guest's memory, its vCPUs, its migration image and its save
// image are the engine's own.
//
// Today two engines run the project's workload guest, kvm and sim; both
// are workloadEngine (workloadengine.go), one adapter over a
// workload.Machine, its guest RAM and the pagexfer page stream. An engine
// whose guest is not the workload (say one that supervises a QEMU child
// over QMP) plugs in by implementing this interface and adding a line to
// the engines table below, without the runtime changing:
//
//   - its memory: ResidentBytes and MeasureDirty are all the runtime asks
//     of it (Info's resident memory, the dry run's dirty rate); Stats'
//     WrittenBytes may stay 0 and Workload nil.
//   - its migration stream: Send writes the engine's own image (QEMU's
//     migration stream, say) over the connections the agent handed over,
//     and Receive reads it and builds the machine, not started. What the
//     runtime needs back is an Image: the ID and Totals that pagexfer's
//     commit messages carry (the target echoes the Totals it checked in
//     Verified, and the source compares them with what it sent). They are
//     the only pagexfer types in this interface, and are not wrapped:
//     the two-phase commit the runtime runs is pagexfer's (its Verified,
//     Commit and Resumed messages), whatever stream came before it, so an
//     engine with its own image still names it with a pagexfer.ID and
//     counts it in a pagexfer.Totals. After the image, the first
//     connection carries the commit; the engine must not read or write
//     any connection once Send or Receive returned.
//   - its save image: Save writes to a file the runtime created, Restore
//     reads one the runtime opened.
//
// Its configuration: the runtime hands every engine the same
// EngineConfig (the domain's name and UUID, its memory as the vm.cfg says,
// its vCPUs, the console writer and the parsed vm.cfg); what is one
// engine's own (the workload engines' workload spec and their rounding of
// memory to workload.RAMAlign) the engine's constructor reads from the
// vm.cfg and refuses there, and MemoryBytes reports the memory the guest
// ended up with.
//
// The lifecycle: an engine is made by its constructor (nothing runs yet);
// then Boot (a fresh guest, started), or Receive or Restore (a machine
// built from an image) followed by Start. Pause, Resume, SetThrottle and
// Stats apply to a started machine; Stop ends it, or discards a built
// one; Close releases the memory once the VMM is done. Methods may be
// called from several goroutines: the control socket serves one request
// at a time per connection, but a send runs beside Info and Pause calls.
type Engine interface {
	// Boot makes a fresh machine and starts it.
	Boot() error
	// Start runs the machine Receive or Restore built. On failure the
	// machine is gone and its memory released.
	Start() error
	// Pause stops the vCPUs at a consistent point (idempotent); Resume
	// continues them.
	Pause() error
	Resume() error
	// Stop ends the machine for good, started or only built, and waits
	// until it has. Idempotent; a no-op before any machine exists.
	Stop() error
	// Kill ends the machine at once, asking the guest and the engine's
	// program nothing (SIGKILL for a QEMU child), and returns once it
	// can run no more: the fence's last resort when Pause does not
	// return in time (lease.go). Done closes after it, with Err nil.
	// Idempotent; a no-op before any machine exists.
	Kill() error
	// Done is closed when a started machine has ended (Stop, a guest
	// fault, an engine error); Err then says why (nil after Stop). It is
	// never closed for a machine that was not started.
	Done() <-chan struct{}
	Err() error
	// Close releases guest memory, after Stop.
	Close() error
	// Shutdown asks the guest to power itself off (an ACPI power-button
	// press) and returns at once; Done closes once it has, with Err nil.
	// An error wrapping ErrUnsupported says the guest has no such button:
	// the runtime then ends the machine itself.
	Shutdown() error
	// SetMemory asks the guest to use bytes of memory (a balloon), at
	// most the maximum it was started with; ErrUnsupported without one.
	SetMemory(bytes uint64) error
	// ConsoleInput types p into the guest's serial console;
	// ErrUnsupported when the guest reads no input.
	ConsoleInput(p []byte) error
	// Facts describes the engine, for Info and the dry run.
	Facts() Facts

	// MemoryBytes is the memory the guest has: what the vm.cfg asks, or
	// more when the engine rounds it (the workload engines round it up to
	// a whole workload.RAMAlign). Info and the dry run report it.
	MemoryBytes() uint64
	// Stats returns the engine's counters.
	Stats() Stats
	// SetThrottle makes the vCPUs sleep percent% of the time (0..99),
	// the agent's auto-converge.
	SetThrottle(percent int) error
	// ResidentBytes is the guest memory actually populated.
	ResidentBytes() (uint64, error)
	// MeasureDirty watches which memory the running guest writes, for
	// window or until ctx ends, calling sample every
	// control.EstimateInterval; it leaves the tracking off. An early end
	// (ctx) is not an error.
	MeasureDirty(ctx context.Context, window time.Duration, sample func(DirtySample)) error

	// CheckSend refuses options the engine cannot honour (a compression
	// it lacks) before anything moves, and returns them completed:
	// Compress named as the status will report it.
	CheckSend(o SendOptions) (SendOptions, error)
	// Send writes the guest's image over streams (one or more; the first
	// one carries the commit afterwards) and reports its progress. On
	// success the guest is left paused for the commit to decide; on
	// failure the engine has resumed it (unless o.AlreadyPaused). The
	// Sent is filled in both cases, as far as the image got.
	Send(ctx context.Context, streams []net.Conn, o SendOptions, progress func(Progress)) (Sent, error)
	// Save writes the guest's image to f (not live); then as Send.
	Save(ctx context.Context, f *os.File, o SendOptions, progress func(Progress)) (Sent, error)
	// ResumeSource gives the guest back to this host after a Send or
	// Save that succeeded but whose migration did not complete (the
	// target failed, the agent aborted): it undoes what Send left for the
	// commit (dirty tracking) and resumes the vCPUs.
	ResumeSource() error
	// Receive reads an image from first (and from the connections more
	// hands out, for an image over several streams) and builds the
	// machine from it, not started. Received names the image for the
	// commit even when it fails (as far as the header was read); on
	// failure nothing is left built.
	Receive(ctx context.Context, first net.Conn, more func(context.Context) (net.Conn, error), o ReceiveOptions) (Received, error)
	// Restore reads a save image from f and builds the machine from it,
	// not started.
	Restore(ctx context.Context, f *os.File) error
}

// ErrUnsupported is wrapped by the errors of what an engine cannot do
// (a balloon, console input, an ACPI button the workload guest lacks).
var ErrUnsupported = errors.New("not supported by this engine")

// ErrGuestRebooted is wrapped by Err when the guest ended the machine by
// rebooting itself: the VMM exits with control.ExitRebooted, and the
// agent does what on_reboot says.
var ErrGuestRebooted = errors.New("the guest rebooted")

// Facts are what an engine says of itself. Empty fields: not known, or
// not the engine's (the workload engines have no accelerator choice and
// no display).
type Facts struct {
	Accel    string // kvm or tcg
	Version  string // the engine program's version, as "QEMU 7.2.22"
	Machine  string // the machine type, as "pc-i440fx-7.2"
	CPUModel string // as "qemu64" or "host"
	VNC      string // host:port of the display, "" without one
	// BalloonBytes is the memory the guest uses now under its balloon
	// (0 without one); MaxMemoryBytes the most SetMemory may ask.
	BalloonBytes   uint64
	MaxMemoryBytes uint64
	// MemoryBacking is what the guest's memory is made of (4k, hugetlb
	// or thp; "" before it is made), MemoryBackingWhy why (auto's
	// choice).
	MemoryBacking, MemoryBackingWhy string
}

// Stats are an engine's counters, for Info.
type Stats struct {
	// CPUTime is the CPU time of the engine's own processes (a QEMU child,
	// say), which the VMM's rusage does not count; 0 when it has none.
	CPUTime time.Duration
	// The guest's disk and network I/O in bytes; 0 when the engine cannot
	// tell.
	DiskReadBytes, DiskWriteBytes uint64
	DiskReadOps, DiskWriteOps     uint64 // the requests of those bytes
	NetRxBytes, NetTxBytes        uint64
	// WrittenBytes counts the bytes the guest wrote over its whole life
	// (a received or restored machine carries its source's count); Info's
	// dirty rate is its growth. 0 when the engine cannot tell.
	WrittenBytes uint64
	// Workload holds the workload guest's own counters; nil for a guest
	// that is not the workload.
	Workload *workload.Stats
}

// DirtySample is one reading of MeasureDirty.
type DirtySample struct {
	At       time.Duration // since the measurement started
	Distinct uint64        // bytes of distinct memory written since the start
	Dirtied  uint64        // bytes written in all (pages counted each time they were seen dirty)
}

// SendOptions describe a send or save.
type SendOptions struct {
	ID            pagexfer.ID // names the migration in the commit messages; a random one when zero
	Live          bool        // pre-copy while the guest runs, else pause first and make one pass
	AlreadyPaused bool        // the guest was paused before: never pause or resume it
	Config        string      // the domain's vm.cfg, for the target
	MaxDowntime   time.Duration
	RateLimit     float64 // bytes per second, 0: none
	Compress      string  // "", none, s2, zstd or auto, as the request says
	// ProgressTimeout fails a stream write that moves no byte for this
	// long (0: no limit).
	ProgressTimeout time.Duration
}

// ReceiveOptions describe a receive.
type ReceiveOptions struct {
	// ProgressTimeout fails a stream read that receives no byte for this
	// long (0: no limit).
	ProgressTimeout time.Duration
}

// Image names an image for the two-phase commit that follows it.
type Image struct {
	ID     pagexfer.ID
	Totals pagexfer.Totals // what the target checked, and echoes in Verified
}

// Progress is an engine's report on the image it sends or saves.
type Progress struct {
	// Phase is setup, precopy, stop-copy or sent.
	Phase control.Phase
	// Figures writes the engine's counters (rounds, bytes, pages, rates,
	// throttle, compression) into a status; never its Phase, ID or Error.
	Figures func(*control.MigrationStatus)
}

// Sent describes an image an engine sent or saved.
type Sent struct {
	Image
	// Downtime runs from the pause to the image's last byte.
	Downtime time.Duration
	// Figures writes the final counters into a status (as Progress's).
	Figures func(*control.MigrationStatus)
}

// Received describes an image an engine received.
type Received struct {
	Image
	// Figures writes what arrived (streams, batches, pages) into the
	// target's status.
	Figures func(*control.MigrationStatus)
}

// Engine names.
const (
	EngineKVM = "kvm"
	EngineSim = "sim"
	// EngineQEMU runs an operating system under a qemu-system-x86_64
	// child (vm.cfg kernel, bootloader or builder = 'hvm').
	EngineQEMU = "qemu"
)

// EngineConfig is what an engine is made from: what every engine needs,
// and the vm.cfg for the options that are one engine's own (the workload
// engines read its workload spec and round the memory; an engine whose
// guest is not the workload reads its own options there).
type EngineConfig struct {
	Name        string // the domain (names its memory)
	UUID        string
	MemoryBytes uint64 // as the vm.cfg says: its memory in MiB, in bytes
	VCPUs       int
	Console     io.Writer // the guest's serial output, one Write per line
	// Config is the domain's parsed vm.cfg; nil: every engine option at
	// its default.
	Config *vmcfg.Config
	// Dir is the domain's directory (console.log, exit.json), where an
	// engine keeps its own runtime files.
	Dir string
	// Binary is the engine's program ("" for its default; the qemu engine
	// runs qemu-system-x86_64), and Accel the accelerator the agent chose
	// for it (kvm or tcg; "" for the engine's own probe).
	Binary string
	Accel  string
	// MemoryBacking is the pages guest memory is made of (see
	// vmm/guestmem's Backing): 4k, hugetlb, thp, or auto ("" too) for the
	// best this host has when the memory is made (guestmem.Choose). An
	// incoming migration or a restore makes its memory on this host's
	// backing, whatever the source's was.
	MemoryBacking string
	// Generation is the generation of the domain's owner the VMM started
	// with (Options.Generation; 0: none): the qemu engine hands it to the
	// guest (qemu.Spec.Generation); the workload engines ignore it.
	Generation int64
	// Host is the name of the host that runs the domain as its pool knows
	// it (the agent's member name; "" for the system's host name): the
	// qemu engine tells a pool domain's guest (FwCfgHost).
	Host string
}

// engines makes an engine by name: the one place an engine is chosen. A
// constructor refuses a configuration its engine cannot run (a workload
// that does not fit the memory), before anything runs.
var engines = map[string]func(EngineConfig) (Engine, error){
	EngineKVM:  newKVMEngine,
	EngineSim:  newSimEngine,
	EngineQEMU: newQEMUEngine,
}

// newEngine makes the engine called name.
func newEngine(name string, c EngineConfig) (Engine, error) {
	build, ok := engines[name]
	if !ok {
		names := make([]string, 0, len(engines))
		for n := range engines {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("start %s engine: unknown engine %q (want %s)", name, name, strings.Join(names, " or "))
	}
	return build(c)
}
