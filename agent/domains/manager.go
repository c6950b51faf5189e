package domains

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/uuid"

	"github.com/ovs-agent/ovs-agent/internal/atomicfile"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
	"github.com/ovs-agent/ovs-agent/agent/qemuhost"
	"github.com/ovs-agent/ovs-agent/agent/vmmproc"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/relocation/filexfer"
	"github.com/ovs-agent/ovs-agent/vmm"
	"github.com/ovs-agent/ovs-agent/vmm/control"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
)

// Options configure a Manager.
type Options struct {
	// StateDir is the agent's state directory; domains live in
	// StateDir/domains/NAME and VMM sockets in StateDir/vmm.
	StateDir string
	// Hypervisor is auto, kvm or sim: the engine of the workload guest.
	Hypervisor string
	// QEMU is what this host offers the domains whose vm.cfg describes an
	// operating system ([qemu]); nil: such domains do not start here.
	QEMU *qemuhost.Host
	// MemoryReserve is host memory (bytes) never given to domains.
	MemoryReserve uint64
	// MemoryBacking is [agent] memory_backing: the backing of a domain's
	// memory when its vm.cfg has none (auto, 4k, hugetlb, thp; "": auto).
	MemoryBacking string
	// VMMBinary is the ovs-vmm program.
	VMMBinary string
	Log       *zap.Logger

	// Host facts; the defaults read the real host. Tests may replace them.
	HostMemory func() (uint64, error) // total bytes
	// HostBacking reads the huge-page pool and shmem THP setting
	// (default guestmem.ReadHost).
	HostBacking func() (guestmem.Host, error)
	HostCPUs    int
	KVMUsable   func() error
	// StartTimeout bounds how long a VMM may take to answer (default 30s).
	StartTimeout time.Duration
	// DestroyTimeout is how long a VMM told to destroy its guest may take
	// to end before it is killed (default 10s).
	DestroyTimeout time.Duration
	// RepositoryOf says which repository a disk path lives on (nil: none).
	RepositoryOf func(path string) (uuid string, ok bool)
	// RepositoryRoot says where repository uuid is mounted (nil: nowhere).
	RepositoryRoot func(uuid string) (dir string, ok bool)
	// FileRoots returns, per call, the directories besides a domain's own
	// folder in which the files an operating system's vm.cfg names must
	// resolve: the mounted repositories and [agent] file_dirs (nil: only
	// the domain's folder). See paths.go.
	FileRoots func() []string
	// BlockDevices returns, per call, [agent] block_devices: the patterns
	// of the block devices a vm.cfg may give a guest as phy: disks (nil or
	// empty: none). See paths.go.
	BlockDevices func() []string
	// Bridges lists this host's network bridges (nil: the ones under
	// /sys/class/net).
	Bridges func() ([]string, error)
	// AgentVersion is written into detach manifests.
	AgentVersion string
	// VMMs runs the domains' VMM processes (nil: ovs-vmm processes, see
	// vmmproc; VMMBinary names the program).
	VMMs VMMDriver
	// Stopped, when set, is told (in its own goroutine) of every domain
	// whose VMM ended on its own (the guest powered off or crashed, not
	// an operation of this agent's) and that stays stopped: not restarted
	// by on_crash or on_poweroff (or not any more: its restart budget
	// spent, its restart failed).
	Stopped func(name, uuid string)
	// HostName is this host's name in its server pool ([pool] host_name,
	// or the system's host name; "" outside a pool), handed to every VMM
	// (vmmproc.Spec.Host): a pool domain's guest is told it runs on the
	// pool member of that name.
	HostName string
}

// Manager is the registry of this host's domains.
type Manager struct {
	opts Options
	log  *zap.Logger
	vmms VMMDriver

	mu      sync.Mutex
	doms    map[string]*domain
	closed  chan struct{}
	closing sync.Once
}

// record is what domain.json holds.
type record struct {
	Name   string `json:"name"`
	UUID   string `json:"uuid"`
	State  State  `json:"state"`
	Reason string `json:"reason,omitempty"`
	Engine string `json:"engine,omitempty"`
	// MemoryBacking is the backing chosen for its memory when it last
	// started (4k, hugetlb or thp): hugetlb memory comes from the
	// huge-page pool, the others from ordinary memory.
	MemoryBacking string        `json:"memory_backing,omitempty"`
	PID           int           `json:"pid,omitempty"`
	Created       time.Time     `json:"created"`
	Started       time.Time     `json:"started,omitempty"`
	Source        string        `json:"source,omitempty"`
	LastExit      *control.Exit `json:"last_exit,omitempty"`
	ConsoleTail   string        `json:"console_tail,omitempty"`
	Restarts      []time.Time   `json:"restarts,omitempty"`
	SaveImage     string        `json:"save_image,omitempty"` // set while suspended
	// Manifest is the detach manifest's path while detached.
	Manifest string `json:"manifest,omitempty"`
	// OfflineTarget is the host an offline migration copies to while
	// migrating.
	OfflineTarget string `json:"offline_target,omitempty"`
	// Incoming is set while an incoming migration (from IncomingFrom) has
	// not committed yet.
	Incoming     bool   `json:"incoming,omitempty"`
	IncomingFrom string `json:"incoming_from,omitempty"`
	// MemoryTarget is the balloon target (MiB) SetMemory gave the running
	// guest; 0: none since it started (it holds its vm.cfg memory).
	MemoryTarget int `json:"memory_target_mib,omitempty"`
	// Generation is the generation of the domain's owner in its pool
	// (SetLease: the revision of its owner key), which never decreases;
	// 0 outside a pool. Its run-until time is not persisted: it is on
	// CLOCK_BOOTTIME, which a host reboot starts again (a stopped pool
	// domain without one is not started: see SetLease).
	Generation int64 `json:"generation,omitempty"`
}

// domain is one domain in memory. opMu serialises operations; mu guards
// the record and the VMM handles, and is never held while waiting.
type domain struct {
	opMu sync.Mutex
	// leaseMu serialises the leases handed to the domain's VMM
	// (SetLease, and the one a starting VMM missed): taken before mu,
	// never with opMu's waits (see lease.go).
	leaseMu sync.Mutex

	mu     sync.Mutex
	rec    record
	cfg    *vmcfg.Config
	dir    string
	vmm    VMM           // the running VMM, nil when there is none
	gen    int           // VMM incarnation
	exited chan struct{} // closed when the current VMM is gone
	expect string        // why we asked the VMM to end: shut down, destroyed, rebooting
	// inDoubt is the target of an outgoing migration found in doubt after
	// an agent restart.
	inDoubt string
	// repos are the repositories the domain's disks were on when its VMM
	// started (see UsingRepository).
	repos []string
	// runUntil is the run-until time of the last SetLease (0: none),
	// handed to the next VMM as it starts.
	runUntil control.Monotonic
	// droppedGen is the generation whose lease DropLease forgot: a lease
	// of it (or older) that arrives after is not recorded (a renewal in
	// flight when the owner key was given up). In memory only.
	droppedGen int64
	// saving is the last status of a save under way (nil: none), for
	// domain.info.
	saving *SaveProgress
}

// Open loads the domains persisted under StateDir and re-attaches to the
// VMMs still running; the ones that died while the agent was away are
// marked stopped with the reason.
func Open(o Options) (*Manager, error) {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.HostBacking == nil {
		o.HostBacking = guestmem.ReadHost
	}
	if o.HostMemory == nil {
		o.HostMemory = hostMemTotal
	}
	if o.HostCPUs <= 0 {
		o.HostCPUs = runtime.NumCPU()
	}
	if o.KVMUsable == nil {
		o.KVMUsable = vmm.KVMUsable
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.VMMs == nil {
		o.VMMs = processes{&vmmproc.Driver{Binary: o.VMMBinary}}
	}
	m := &Manager{opts: o, log: o.Log, vmms: o.VMMs, doms: make(map[string]*domain), closed: make(chan struct{})}
	for _, d := range []string{m.domainsDir(), m.socketDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("domains: %w", err)
		}
	}
	entries, err := os.ReadDir(m.domainsDir())
	if err != nil {
		return nil, fmt.Errorf("domains: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		d, err := m.load(e.Name())
		if err != nil {
			m.log.Error("domain not loaded", zap.String("dir", filepath.Join(m.domainsDir(), e.Name())), zap.Error(err))
			continue
		}
		m.doms[d.rec.Name] = d
		m.recover(d)
	}
	return m, nil
}

func (m *Manager) domainsDir() string { return filepath.Join(m.opts.StateDir, "domains") }
func (m *Manager) socketDir() string  { return filepath.Join(m.opts.StateDir, "vmm") }
func (m *Manager) socketPath(d *domain) string {
	return filepath.Join(m.socketDir(), d.rec.UUID+".sock")
}

func (m *Manager) load(dirName string) (*domain, error) {
	dir := filepath.Join(m.domainsDir(), dirName)
	data, err := os.ReadFile(filepath.Join(dir, "domain.json"))
	if err != nil {
		return nil, err
	}
	d := &domain{dir: dir}
	if err := json.Unmarshal(data, &d.rec); err != nil {
		return nil, fmt.Errorf("domain.json: %w", err)
	}
	if d.rec.Name != dirName {
		return nil, fmt.Errorf("domain.json names %q, not its folder", d.rec.Name)
	}
	d.cfg, err = vmcfg.ParseFile(filepath.Join(dir, "vm.cfg"))
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Close lets go of the VMMs without stopping them: their exits are no
// longer waited for, and a later Open finds them again.
func (m *Manager) Close() {
	m.closing.Do(func() { close(m.closed) })
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.doms {
		d.mu.Lock()
		if d.vmm != nil {
			d.vmm.Release()
			d.vmm = nil
		}
		d.mu.Unlock()
	}
}

// isClosed says whether Close has run.
func (m *Manager) isClosed() bool {
	select {
	case <-m.closed:
		return true
	default:
		return false
	}
}

func (m *Manager) get(name string) (*domain, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.doms[name]
	if !ok {
		return nil, errorf(NotFound, "no domain named %q (domain.list shows the domains)", name)
	}
	return d, nil
}

// persist writes domain.json; the caller holds d.mu.
func (d *domain) persist() error {
	data, err := json.MarshalIndent(d.rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(d.dir, "domain.json"), data, 0o600)
}

// setState changes the state and persists it; the caller holds d.mu.
func (m *Manager) setState(d *domain, s State, reason string) {
	old := d.rec.State
	d.rec.State, d.rec.Reason = s, reason
	if err := d.persist(); err != nil {
		m.log.Error("persist domain state", zap.String("domain", d.rec.Name), zap.Error(err))
	}
	if old != s {
		m.log.Info("domain state", zap.String("domain", d.rec.Name), zap.String("from", string(old)), zap.String("to", string(s)), zap.String("reason", reason))
	}
}

// Create registers a domain from vm.cfg text; source names it in errors
// (a file path, or "vm.cfg"). The domain is stopped afterwards. Warnings
// list the unknown keys of the file.
func (m *Manager) Create(text []byte, source string) (*Info, []string, error) {
	cfg, err := vmcfg.Parse(source, text)
	if err != nil {
		return nil, nil, &Error{Kind: Invalid, Msg: err.Error()}
	}
	if err := m.checkFits(cfg); err != nil {
		return nil, nil, err
	}
	if err := m.checkFiles(cfg, filepath.Join(m.domainsDir(), cfg.Name), false); err != nil {
		return nil, nil, err
	}
	if p := m.foreignManifests(cfg, cfg.UUID); len(p) > 0 {
		return nil, nil, &Error{Kind: Exists, Msg: fmt.Sprintf("cannot create %s", cfg.Name), Problems: p}
	}
	var warnings []string
	for _, w := range cfg.Warnings {
		warnings = append(warnings, fmt.Sprintf("%s:%d: %s: %s", w.File, w.Line, w.Key, w.Message))
	}
	if cfg.VCPUs > 1 && cfg.Guest() != vmcfg.GuestOS {
		warnings = append(warnings, fmt.Sprintf("%s: vcpus = %d: this VMM runs the guest on one vCPU; the other %d are recorded but not run", source, cfg.VCPUs, cfg.VCPUs-1))
	}
	generated := cfg.UUID == ""
	if generated {
		if cfg.UUID, err = uuid.New(); err != nil {
			return nil, nil, errorf(Failed, "%s: %v", source, err)
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.doms[cfg.Name]; ok {
		return nil, nil, errorf(Exists, "a domain named %q exists already", cfg.Name)
	}
	for _, o := range m.doms {
		if strings.EqualFold(o.rec.UUID, cfg.UUID) {
			return nil, nil, errorf(Exists, "domain %q has UUID %s already", o.rec.Name, cfg.UUID)
		}
	}
	dir := filepath.Join(m.domainsDir(), cfg.Name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, nil, errorf(Failed, "create domain %s: %v", cfg.Name, err)
	}
	body := text
	if generated {
		body = append(bytes.TrimRight(append([]byte(nil), text...), "\n"), []byte(fmt.Sprintf("\n# added by ovs-agent at create\nuuid = '%s'\n", cfg.UUID))...)
	}
	d := &domain{dir: dir, cfg: cfg, rec: record{
		Name: cfg.Name, UUID: cfg.UUID, State: Stopped, Reason: "created",
		Created: time.Now().UTC(), Source: source,
	}}
	err = atomicfile.WriteFile(filepath.Join(dir, "vm.cfg"), body, 0o600)
	if err == nil {
		err = d.persist()
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, errorf(Failed, "create domain %s: %v", cfg.Name, err)
	}
	m.doms[cfg.Name] = d
	m.log.Info("domain created", zap.String("domain", cfg.Name), zap.String("uuid", cfg.UUID), zap.String("source", source))
	info := m.info(d, false)
	return &info, warnings, nil
}

// checkFits refuses a domain that could never run on this host.
func (m *Manager) checkFits(cfg *vmcfg.Config) error {
	total, err := m.opts.HostMemory()
	if err != nil {
		return errorf(Failed, "read host memory: %v", err)
	}
	avail := saturatingSub(total, m.opts.MemoryReserve)
	if need := uint64(cfg.Memory) << 20; need > avail {
		return errorf(NoResources, "domain %s wants %d MiB of memory; this host has %d MiB for domains at most (%d MiB total less memory_reserve)", cfg.Name, cfg.Memory, avail>>20, total>>20)
	}
	if cfg.VCPUs > m.opts.HostCPUs {
		return errorf(NoResources, "domain %s wants %d vCPUs; this host has %d CPUs", cfg.Name, cfg.VCPUs, m.opts.HostCPUs)
	}
	return nil
}

func saturatingSub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

// begin finds domain name, takes its operation lock and checks, under
// d.mu, that op is allowed in its state; read, when not nil, runs under the
// same hold of d.mu once the check passed. On success the caller holds
// d.opMu until it calls done; on error nothing is held.
func (m *Manager) begin(name, op string, read func(*domain)) (d *domain, done func(), err error) {
	if d, err = m.get(name); err != nil {
		return nil, nil, err
	}
	d.opMu.Lock()
	d.mu.Lock()
	if err = check(name, op, d.rec.State); err == nil && read != nil {
		read(d)
	}
	d.mu.Unlock()
	if err != nil {
		d.opMu.Unlock()
		return nil, nil, err
	}
	return d, d.opMu.Unlock, nil
}

// Delete removes a stopped domain and its folder.
func (m *Manager) Delete(name string) error {
	d, done, err := m.begin(name, "delete", nil)
	if err != nil {
		return err
	}
	defer done()
	m.mu.Lock()
	delete(m.doms, name)
	m.mu.Unlock()
	if err := os.RemoveAll(d.dir); err != nil {
		return errorf(Failed, "delete domain %s: %v", name, err)
	}
	m.log.Info("domain deleted", zap.String("domain", name))
	return nil
}

// Names lists the domains, sorted.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.doms))
	for n := range m.doms {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// committed is the host memory that is not free for ordinary (4 KiB or
// thp) guest memory besides memory_reserve: that of the domains that hold
// (or are about to hold) it, excluding skip, and the whole reserved
// huge-page pool, where the hugetlb domains' memory is (see fit); the
// caller holds m.mu.
func (m *Manager) committed(skip *domain) uint64 {
	sum, _ := m.committedMemory(skip)
	if h, err := m.opts.HostBacking(); err == nil {
		sum += hugeBytes(h.HugePages)
	}
	return sum
}

// ConsoleTailLines is how many console lines a stopped domain's record keeps.
const ConsoleTailLines = 10

// consoleTail reads the last lines of a domain's console.log.
func consoleTail(dir string, lines int) string {
	f, err := os.Open(filepath.Join(dir, control.ConsoleFile))
	if err != nil {
		return ""
	}
	defer f.Close()
	const window = 8 << 10
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := st.Size() - window
	if off < 0 {
		off = 0
	}
	buf := make([]byte, st.Size()-off)
	n, _ := f.ReadAt(buf, off)
	s := strings.TrimRight(string(buf[:n]), "\n")
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// ctlCall makes one control call to d's VMM.
func (m *Manager) ctlCall(d *domain, req control.Request, timeout time.Duration) (*control.Response, error) {
	d.mu.Lock()
	v := d.vmm
	d.mu.Unlock()
	if v == nil {
		return nil, errorf(Failed, "domain %s: no connection to its VMM", d.rec.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return v.Call(ctx, req)
}

// Offer describes a domain for a peer that is to take it: its identity,
// size, engine, vm.cfg text, this host's CPU, and its disks with the
// repository each lives on (a disk under /OVS/UUID/ is on repository UUID);
// an operating system's kernel and ramdisk come with the disks (devices
// OfferKernel and OfferRamdisk), and a running one's QEMU facts (version,
// machine type, accelerator, CPU model) with the rest.
func (m *Manager) Offer(name string) (relocation.Offer, error) {
	d, err := m.get(name)
	if err != nil {
		return relocation.Offer{}, err
	}
	text, err := os.ReadFile(filepath.Join(d.dir, "vm.cfg"))
	if err != nil {
		return relocation.Offer{}, errorf(Failed, "read vm.cfg of %s: %v", name, err)
	}
	d.mu.Lock()
	o := relocation.Offer{Name: d.rec.Name, UUID: d.rec.UUID, MemoryMiB: d.cfg.Memory, VCPUs: d.cfg.VCPUs, Engine: d.rec.Engine, Config: string(text)}
	cfg, live, v := d.cfg, d.rec.State.live(), d.vmm
	d.mu.Unlock()
	for _, disk := range offeredFiles(cfg) {
		if disk.Path == "" {
			continue
		}
		rd := relocation.Disk{Path: disk.Path, Repository: m.repositoryOf(disk.Path), Device: disk.Device}
		if _, rel, _, ok := m.repoPath(disk.Path); ok {
			rd.Rel = rel
		}
		if fileDisk(disk) {
			// Only its size and data extents are probed (no content is
			// read), and a FIFO or device never blocks the offer.
			if f, err := boundedfile.Open(disk.Path, boundedfile.Follow); err == nil {
				if st, err := f.Stat(); err == nil {
					rd.File, rd.Size = true, st.Size()
					rd.Data, _ = filexfer.DataBytes(f, st.Size())
				}
				f.Close()
			}
		}
		o.Disks = append(o.Disks, rd)
	}
	if live && v != nil && cfg.Guest() == vmcfg.GuestOS {
		// What the source's QEMU is, for the target to check it can
		// load its state.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if in, err := v.Inspect(ctx); err == nil {
			o.EngineVersion, o.Machine, o.Accel, o.CPUModel = in.EngineVersion, in.Machine, in.Accel, in.CPUModel
		}
		cancel()
	}
	if o.Engine == "" {
		o.Engine = m.engineName(cfg)
	}
	if info, err := hostinfo.Read(hostinfo.DefaultPaths); err == nil {
		o.CPUVendor, o.CPUFlags = info.CPUVendor, info.CPUFlags
	}
	return o, nil
}

// repositoryOf returns the repository UUID of a disk path, or "".
func (m *Manager) repositoryOf(path string) string {
	if m.opts.RepositoryOf == nil {
		return ""
	}
	uuid, _ := m.opts.RepositoryOf(path)
	return uuid
}

// noteRepositories records which repositories d's disks live on; it is
// called when a VMM starts or is found again, never under a repository
// manager's lock.
func (m *Manager) noteRepositories(d *domain) {
	var repos []string
	for _, disk := range offeredFiles(d.cfg) {
		if u := m.repositoryOf(disk.Path); u != "" {
			repos = append(repos, u)
		}
	}
	d.mu.Lock()
	d.repos = repos
	d.mu.Unlock()
}

// UsingRepository lists the live (or suspended) domains with a disk on
// repository uuid. It calls nothing outside this package, so a repository
// manager may call it while holding its own locks.
func (m *Manager) UsingRepository(uuid string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for name, d := range m.doms {
		d.mu.Lock()
		if d.rec.State.live() || d.rec.State == Suspended {
			for _, r := range d.repos {
				if strings.EqualFold(r, uuid) {
					out = append(out, name)
					break
				}
			}
		}
		d.mu.Unlock()
	}
	sort.Strings(out)
	return out
}
