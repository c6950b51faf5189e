package relocation

import (
	"fmt"
	"strings"
	"time"
)

// The messages of migration that cross agents after the Hello: what a
// sender offers (Offer, Disk), what an offline migration moves
// (OfflineRequest, OfflineFile) and how it is settled (OfflineCommit,
// OfflineCommitted), what a link probe measured (ProbeResult), and why a
// receiver refuses (Problem). They live here, next to Hello and Welcome,
// because both agents and the domain registry (which builds the Offer)
// speak them, and relocation is the one package below all of them.

// Offer describes the domain a sender wants to move.
type Offer struct {
	Name      string   `json:"name"`
	UUID      string   `json:"uuid"`
	MemoryMiB int      `json:"memory_mib"`
	VCPUs     int      `json:"vcpus"`
	Engine    string   `json:"engine"`
	Config    string   `json:"config"` // vm.cfg text
	CPUVendor string   `json:"cpu_vendor"`
	CPUFlags  []string `json:"cpu_flags"` // the host features the guest may use
	Disks     []Disk   `json:"disks,omitempty"`
	// What the source's engine says of itself, for a qemu domain (an
	// older peer sends none, and a target then checks what it can
	// without them): QEMU's version as "QEMU 7.2.22", the machine type
	// (as "pc-i440fx-7.2"), the accelerator (kvm or tcg) and the CPU
	// model (as "qemu64"). A migration stream loads only into a QEMU at
	// least as new, with the same machine type.
	EngineVersion string `json:"engine_version,omitempty"`
	Machine       string `json:"machine,omitempty"`
	Accel         string `json:"accel,omitempty"`
	CPUModel      string `json:"cpu_model,omitempty"`
	// Pool is set when the domain is a pool domain (issue 15): the
	// migration hands its ownership over to the target, which must be a
	// member of the same pool (see PoolMove).
	Pool *PoolMove `json:"pool,omitempty"`
}

// PoolMove says an offered domain belongs to a server pool and who owns
// it there now. A live migration of it hands the ownership over (agent/
// migration's doc says how): the target admits it only as a member of
// Pool holding its lease, answers with its PoolMember in the Welcome,
// starts its incoming VMM under its own lease, and the source moves the
// owner key to that member's lease before the commit.
type PoolMove struct {
	Pool       string `json:"pool"`
	Owner      string `json:"owner"`      // the source member's name
	Generation int64  `json:"generation"` // the owner key's, when the migration started
}

// PoolMember is who takes a pool domain on the target: its member name
// and lease ID (Welcome.Member, answering the receive of a PoolMove).
type PoolMember struct {
	Host  string `json:"host"`
	Lease int64  `json:"lease"`
}

// Disk is one disk of an offered domain and the repository it lives on.
type Disk struct {
	Path       string `json:"path"`
	Repository string `json:"repository,omitempty"` // repository UUID, "" when not on one
	// Rel is Path relative to the repository's root (where the target
	// finds a disk on a repository it shares).
	Rel    string `json:"rel,omitempty"`
	Device string `json:"device,omitempty"`
	// File says the disk is an image file (not a device); Size and Data
	// (bytes outside holes) are set for files.
	File bool  `json:"file,omitempty"`
	Size int64 `json:"size,omitempty"`
	Data int64 `json:"data,omitempty"`
}

// OfflineRequest says what an offline migration of a stopped domain moves
// and how the target should settle it (Hello.Offline of OpOffline, or of
// the OpCheck of one).
type OfflineRequest struct {
	// Files are the disk images the target does not reach itself, in the
	// order the stream sends them.
	Files []OfflineFile `json:"files"`
	// Repository is the target repository (UUID) that receives the copied
	// disks; "" lets the target choose (cluster root, else the first
	// mounted repository with room).
	Repository string `json:"repository,omitempty"`
	// Start asks the target to start the domain once it is registered.
	Start bool `json:"start,omitempty"`
	// Force skips validation on the target (logged there).
	Force bool `json:"force,omitempty"`
}

// OfflineFile is one disk image an offline migration copies.
type OfflineFile struct {
	// Path is the disk's path in the source's vm.cfg.
	Path string `json:"path"`
	// Name is where it lands, relative to the domain's new folder
	// (running_pool/NAME on the target repository).
	Name string `json:"name"`
	// Size is the file's length; Data the bytes it holds outside holes
	// (what will be sent at most).
	Size int64 `json:"size"`
	Data int64 `json:"data"`
}

// OfflineCommit is the source's last word on an offline migration's
// connection, after the copy was verified (a filexfer message).
type OfflineCommit struct {
	Commit bool   `json:"commit"`
	Reason string `json:"reason,omitempty"`
}

// OfflineCommitted is the target's answer: the domain is registered there
// (State: stopped, or running with --start) or Error says why not.
type OfflineCommitted struct {
	OK    bool   `json:"ok"`
	State string `json:"state,omitempty"`
	Error string `json:"error,omitempty"`
	// Warning: registered, but something asked for did not happen (a
	// --start that failed).
	Warning string `json:"warning,omitempty"`
}

// ProbeResult is what the receiver of a link probe measured.
type ProbeResult struct {
	Bytes int64 `json:"bytes"`
	// Duration runs from the first chunk's arrival to the end marker's.
	Duration   time.Duration `json:"duration_ns"`
	Throughput float64       `json:"throughput"` // bytes per second
	// Landed says the receiver wrote every chunk into memory as a
	// migration's receiver does (pwrite into a memfd, the kernel
	// allocating the pages), so Throughput includes that cost, which on
	// a fast link is most of a migration's; MemoryWriteRate is the rate of
	// those writes alone. An older receiver only reads.
	Landed          bool    `json:"landed,omitempty"`
	MemoryWriteRate float64 `json:"memory_write_rate,omitempty"`
	Error           string  `json:"error,omitempty"`
}

// Problem is one reason a host cannot take a domain (a dry run, the
// target's check of an incoming migration, an attach's validation).
type Problem struct {
	// Field is what the problem is about, as printed before the colon:
	// name, uuid, memory, vcpus, engine, CPU, network, disk xvda,
	// repository, space, version, protocol, target...
	Field string `json:"field"`
	// Hard problems protect the host (a name or UUID taken, a path
	// leaving a repository): no --force skips them. Soft ones protect the
	// domain (memory, bridges, sizes) and --force may skip them.
	Hard    bool   `json:"hard,omitempty"`
	Message string `json:"message"`
}

// String is the problem as the API reports it: "field: message".
func (p Problem) String() string {
	if p.Field == "" {
		return p.Message
	}
	return p.Field + ": " + p.Message
}

// ParseProblem reads a problem an older peer sent as a string: the field
// is what comes before the first ": ", and it counts as soft (an older
// peer does not say).
func ParseProblem(s string) Problem {
	if f, m, ok := strings.Cut(s, ": "); ok {
		return Problem{Field: f, Message: m}
	}
	return Problem{Message: s}
}

// Checker collects the problems of one check.
type Checker struct {
	list []Problem
}

// Hard records a problem no --force skips.
func (c *Checker) Hard(field, format string, args ...any) {
	c.list = append(c.list, Problem{Field: field, Hard: true, Message: fmt.Sprintf(format, args...)})
}

// Soft records a problem --force may skip.
func (c *Checker) Soft(field, format string, args ...any) {
	c.list = append(c.list, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Add records problems another check found.
func (c *Checker) Add(ps ...Problem) { c.list = append(c.list, ps...) }

// Problems are the problems recorded, in order.
func (c *Checker) Problems() []Problem { return c.list }

// HasHard reports whether a hard problem was recorded.
func (c *Checker) HasHard() bool {
	for _, p := range c.list {
		if p.Hard {
			return true
		}
	}
	return false
}

// Skip drops the soft problems (a --force) and returns them.
func (c *Checker) Skip() []Problem {
	hard, soft := c.split()
	c.list = hard
	return soft
}

// split parts the problems into hard and soft, each in the order recorded.
func (c *Checker) split() (hard, soft []Problem) {
	for _, p := range c.list {
		if p.Hard {
			hard = append(hard, p)
		} else {
			soft = append(soft, p)
		}
	}
	return hard, soft
}

// Strings renders problems as the API and an older peer read them.
func Strings(ps []Problem) []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// SetProblems puts ps in the Welcome both ways: as strings (every peer
// reads them) and structured.
func (w *Welcome) SetProblems(ps []Problem) {
	w.Problems, w.ProblemDetails = Strings(ps), ps
}

// ProblemList is the Welcome's problems structured: as the peer sent
// them, or read from the strings of an older peer.
func (w *Welcome) ProblemList() []Problem {
	if len(w.ProblemDetails) > 0 {
		return w.ProblemDetails
	}
	var out []Problem
	for _, s := range w.Problems {
		out = append(out, ParseProblem(s))
	}
	return out
}

// Ordered are the problems recorded, the hard ones first, each kind in
// the order recorded.
func (c *Checker) Ordered() []Problem {
	hard, soft := c.split()
	return append(hard, soft...)
}

// TargetFacts is what the receiver of a dry run says it offers a qemu
// domain, beside the problems: its QEMU, and which of the files and
// bridges the domain's vm.cfg names it has.
type TargetFacts struct {
	// QEMUVersion is as "QEMU 7.2.22" ("" when it cannot be asked);
	// QEMUProblem why qemu domains cannot start there ("" when they can).
	QEMUVersion string `json:"qemu_version,omitempty" xmlrpc:"qemu_version,omitempty"`
	QEMUProblem string `json:"qemu_problem,omitempty" xmlrpc:"qemu_problem,omitempty"`
	// Machines are the machine types its QEMU knows.
	Machines []string `json:"machines,omitempty" xmlrpc:"machines,omitempty"`
	// Accel is what qemu domains get there (kvm or tcg), AccelReason why.
	Accel       string `json:"accel,omitempty" xmlrpc:"accel,omitempty"`
	AccelReason string `json:"accel_reason,omitempty" xmlrpc:"accel_reason,omitempty"`
	// Files are the kernel, ramdisk and disks of the vm.cfg, Bridges the
	// bridges of its vifs, each with whether the receiver has it.
	Files   []Presence `json:"files,omitempty" xmlrpc:"files,omitempty"`
	Bridges []Presence `json:"bridges,omitempty" xmlrpc:"bridges,omitempty"`
}

// Presence says whether the receiver has a file or bridge a vm.cfg
// names: Name is what (kernel, ramdisk, disk xvda, vif 0), Path the path
// or bridge name, Present whether it is there and usable.
type Presence struct {
	Name    string `json:"name" xmlrpc:"name"`
	Path    string `json:"path" xmlrpc:"path"`
	Present bool   `json:"present" xmlrpc:"present"`
}
