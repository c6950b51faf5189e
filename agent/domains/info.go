package domains

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/vmm"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// Info describes a domain for the API.
type Info struct {
	Name   string `xmlrpc:"name"`
	UUID   string `xmlrpc:"uuid"`
	State  string `xmlrpc:"state"`
	Reason string `xmlrpc:"reason,omitempty"`
	// Engine is the engine its VMM ran on last; for an operating system
	// that never ran here, qemu, the one it will run on.
	Engine        string    `xmlrpc:"engine,omitempty"`
	MemoryMiB     int       `xmlrpc:"memory"`
	MaxMemMiB     int       `xmlrpc:"maxmem"`
	VCPUs         int       `xmlrpc:"vcpus"`
	PID           int       `xmlrpc:"vmm_pid,omitempty"`
	Created       time.Time `xmlrpc:"created"`
	Started       time.Time `xmlrpc:"started,omitempty"`
	UptimeSeconds float64   `xmlrpc:"uptime_seconds"`
	CPUSeconds    float64   `xmlrpc:"cpu_time_seconds"`
	DirtyRate     float64   `xmlrpc:"dirty_rate"` // bytes/s written by the guest
	ResidentBytes int64     `xmlrpc:"resident_bytes"`
	Throttle      int       `xmlrpc:"throttle_percent"`
	Writes        int64     `xmlrpc:"pages_written"`
	Verified      int64     `xmlrpc:"pages_verified"`
	Rounds        int64     `xmlrpc:"verify_rounds"`
	Corrupt       int64     `xmlrpc:"pages_corrupt"`
	OnPoweroff    string    `xmlrpc:"on_poweroff"`
	OnReboot      string    `xmlrpc:"on_reboot"`
	OnCrash       string    `xmlrpc:"on_crash"`
	Workload      string    `xmlrpc:"workload,omitempty"`
	ConfigFile    string    `xmlrpc:"config_file"`
	LastExit      *ExitInfo `xmlrpc:"last_exit,omitempty"`
	// Save is the progress of a save under way (domain.save), for a
	// progress display; absent otherwise.
	Save *SaveProgress `xmlrpc:"save,omitempty"`

	// What a running qemu domain's engine says of itself (empty for the
	// workload engines): the accelerator (kvm, tcg), QEMU's version, the
	// machine type and CPU model, and the VNC display's host:port.
	Accel         string `xmlrpc:"accel,omitempty"`
	EngineVersion string `xmlrpc:"engine_version,omitempty"`
	Machine       string `xmlrpc:"machine,omitempty"`
	CPUModel      string `xmlrpc:"cpu_model,omitempty"`
	VNC           string `xmlrpc:"vnc,omitempty"`
	// MemoryBacking is what a running domain's memory is made of (4k,
	// hugetlb or thp), MemoryBackingWhy why (memory_backing's choice,
	// auto's reason).
	MemoryBacking    string `xmlrpc:"memory_backing,omitempty"`
	MemoryBackingWhy string `xmlrpc:"memory_backing_why,omitempty"`
	// MemoryTargetMiB is the balloon target domain.set_memory set since
	// the guest started (0: none, it has its vm.cfg memory);
	// BalloonBytes what the guest uses under its balloon now, and
	// MaxMemoryBytes the most it may be given (maxmem).
	MemoryTargetMiB int   `xmlrpc:"memory_target,omitempty"`
	BalloonBytes    int64 `xmlrpc:"balloon_bytes,omitempty"`
	MaxMemoryBytes  int64 `xmlrpc:"max_memory_bytes,omitempty"`
	// The guest's disk and network I/O in bytes since it started.
	DiskReadBytes  int64 `xmlrpc:"disk_read_bytes,omitempty"`
	DiskWriteBytes int64 `xmlrpc:"disk_write_bytes,omitempty"`
	DiskReadOps    int64 `xmlrpc:"disk_read_ops,omitempty"` // the requests of those bytes
	DiskWriteOps   int64 `xmlrpc:"disk_write_ops,omitempty"`
	NetRxBytes     int64 `xmlrpc:"net_rx_bytes,omitempty"`
	NetTxBytes     int64 `xmlrpc:"net_tx_bytes,omitempty"`

	// A pool domain's lease (SetLease): the generation of its owner (the
	// revision of its owner key; 0: none), the seconds left until the
	// run-until time its VMM keeps (negative once passed; 0 without
	// one), and whether the VMM fenced it: its lease ran out and the
	// guest does not run (state paused, reason fenced, unless the
	// operator had paused it), since FencedAt, with what it did.
	Generation      int64     `xmlrpc:"generation,omitempty"`
	RunUntilSeconds float64   `xmlrpc:"run_until_seconds,omitempty"`
	Fenced          bool      `xmlrpc:"fenced,omitempty"`
	FencedAt        time.Time `xmlrpc:"fenced_at,omitempty"`
	FenceDetail     string    `xmlrpc:"fence_detail,omitempty"`

	// Live says the counters are the running VMM's, read just now (false:
	// it is not running, or did not answer in time).
	Live bool `xmlrpc:"-"`
}

// SaveProgress is how far a save under way is, as its VMM last said:
// the same names as migration.status's.
type SaveProgress struct {
	Image          string  `xmlrpc:"image"`
	Phase          string  `xmlrpc:"phase"`
	BytesSent      int64   `xmlrpc:"bytes_sent"`      // written to the image so far
	BytesRemaining int64   `xmlrpc:"bytes_remaining"` // the VMM's estimate of what is left
	Throughput     float64 `xmlrpc:"throughput"`      // bytes/s
	Seconds        float64 `xmlrpc:"seconds"`         // since the save began
}

// ExitInfo says how a domain's last VMM ended.
type ExitInfo struct {
	Time        time.Time `xmlrpc:"time"`
	Reason      string    `xmlrpc:"reason"`
	Detail      string    `xmlrpc:"detail,omitempty"`
	ExitStatus  int       `xmlrpc:"exit_status"`
	ConsoleTail string    `xmlrpc:"console_tail,omitempty"`
}

// info builds Info; with live it asks a running VMM for its counters.
func (m *Manager) info(d *domain, live bool) Info {
	d.mu.Lock()
	in := Info{
		Name: d.rec.Name, UUID: d.rec.UUID, State: string(d.rec.State), Reason: d.rec.Reason,
		Engine: d.rec.Engine, MemoryMiB: d.cfg.Memory, MaxMemMiB: d.cfg.MaxMem, VCPUs: d.cfg.VCPUs,
		PID: d.rec.PID, Created: d.rec.Created, Generation: d.rec.Generation,
		OnPoweroff: d.cfg.OnPoweroff, OnReboot: d.cfg.OnReboot, OnCrash: d.cfg.OnCrash,
		Workload: d.cfg.WorkloadSpec.String(), ConfigFile: filepath.Join(d.dir, "vm.cfg"),
	}
	if in.Engine == "" && d.cfg.Guest() == vmcfg.GuestOS {
		in.Engine = vmm.EngineQEMU
	}
	if d.rec.State.live() {
		in.Started = d.rec.Started
		in.UptimeSeconds = time.Since(d.rec.Started).Seconds()
		in.MemoryTargetMiB = d.rec.MemoryTarget
	}
	if d.saving != nil {
		sp := *d.saving
		in.Save = &sp
	}
	if e := d.rec.LastExit; e != nil {
		in.LastExit = &ExitInfo{Time: e.Time, Reason: string(e.Reason), Detail: e.Detail, ExitStatus: e.Code, ConsoleTail: d.rec.ConsoleTail}
	}
	proc := d.vmm
	d.mu.Unlock()
	if live && proc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if v, err := proc.Inspect(ctx); err == nil {
			if reason, moved := m.followFence(d, v); moved {
				in.State, in.Reason = string(Running), reason
			}
			in.fill(v)
			in.Live = true
		}
	}
	return in
}

// fill copies a running VMM's counters and engine facts into in.
func (in *Info) fill(v *control.Info) {
	in.CPUSeconds = v.CPUTime.Seconds()
	in.DirtyRate = v.DirtyRate
	in.ResidentBytes = int64(v.ResidentBytes)
	in.Throttle = v.Throttle
	in.Writes, in.Verified, in.Rounds, in.Corrupt = int64(v.Writes), int64(v.Verified), int64(v.Rounds), int64(v.Corrupt)
	if v.PausedFor != "" {
		// As libvirt reports it: paused, reason migration (or fenced).
		in.State, in.Reason = string(Paused), string(v.PausedFor)
	}
	if v.Generation > in.Generation {
		in.Generation = v.Generation
	}
	if v.RunUntil != 0 {
		in.RunUntilSeconds = v.RunUntilRemaining.Seconds()
	}
	in.Fenced, in.FencedAt, in.FenceDetail = v.Fenced, v.FencedAt, v.FenceDetail
	in.Accel, in.EngineVersion, in.Machine, in.CPUModel, in.VNC = v.Accel, v.EngineVersion, v.Machine, v.CPUModel, v.VNC
	in.BalloonBytes, in.MaxMemoryBytes = int64(v.BalloonBytes), int64(v.MaxMemoryBytes)
	in.MemoryBacking, in.MemoryBackingWhy = v.MemoryBacking, v.MemoryBackingWhy
	in.DiskReadBytes, in.DiskWriteBytes = int64(v.DiskReadBytes), int64(v.DiskWriteBytes)
	in.DiskReadOps, in.DiskWriteOps = int64(v.DiskReadOps), int64(v.DiskWriteOps)
	in.NetRxBytes, in.NetTxBytes = int64(v.NetRxBytes), int64(v.NetTxBytes)
}

// Info describes one domain, with live counters when it runs.
func (m *Manager) Info(name string) (Info, error) {
	d, err := m.get(name)
	if err != nil {
		return Info{}, err
	}
	return m.info(d, true), nil
}

// List describes every domain; with live, running ones report counters.
func (m *Manager) List(live bool) []Info {
	var out []Info
	for _, n := range m.Names() {
		d, err := m.get(n)
		if err != nil {
			continue
		}
		out = append(out, m.info(d, live))
	}
	return out
}

// Console is a piece of a domain's console.
type Console struct {
	Offset int64  `xmlrpc:"offset"`
	Data   string `xmlrpc:"data"`
	Next   int64  `xmlrpc:"next"`
	Live   bool   `xmlrpc:"live"` // false: read from console.log of a stopped domain
	// Raw holds the bytes instead of Data when the caller asks for them
	// raw (base64 on the wire: control characters intact).
	Raw []byte `xmlrpc:"raw,omitempty"`
}

// ReadConsole returns console output from offset (at most max bytes); a
// negative offset asks for the latest max bytes (a tail). A running domain
// answers from its VMM's ring; a stopped one from the console.log its last
// VMM left.
func (m *Manager) ReadConsole(name string, offset int64, max int) (Console, error) {
	d, err := m.get(name)
	if err != nil {
		return Console{}, err
	}
	if max <= 0 || max > 1<<20 {
		max = 64 << 10
	}
	d.mu.Lock()
	hasVMM := d.vmm != nil
	dir := d.dir
	d.mu.Unlock()
	if hasVMM {
		resp, err := m.ctlCall(d, control.Request{Op: control.OpConsole, Offset: offset, Max: max}, 5*time.Second)
		if err == nil && resp.Console != nil {
			c := resp.Console
			return Console{Offset: c.Offset, Data: c.Data, Next: c.Next, Live: true}, nil
		}
	}
	f, err := os.Open(filepath.Join(dir, control.ConsoleFile))
	if err != nil {
		return Console{Offset: 0, Next: 0}, nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Console{}, errorf(Failed, "console of %s: %v", name, err)
	}
	if offset < 0 {
		offset = st.Size() - int64(max)
	}
	if offset < 0 || offset > st.Size() {
		offset = 0
	}
	if st.Size()-offset > int64(max) {
		offset = st.Size() - int64(max)
	}
	buf := make([]byte, st.Size()-offset)
	n, err := f.ReadAt(buf, offset)
	if err != nil && err != io.EOF {
		return Console{}, errorf(Failed, "console of %s: %v", name, err)
	}
	return Console{Offset: offset, Data: string(buf[:n]), Next: offset + int64(n)}, nil
}

// Committed is the memory (bytes) held by live domains, for host stats,
// with the reserved huge-page pool, which is not free for other memory.
func (m *Manager) Committed() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.committed(nil)
}
