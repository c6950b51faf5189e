package hostinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/vmm/kvm"
)

// Info is the static picture of the host.
type Info struct {
	Hostname      string    `xmlrpc:"hostname"`
	CPUCount      int       `xmlrpc:"cpu_count"`
	CPUModel      string    `xmlrpc:"cpu_model"`
	CPUVendor     string    `xmlrpc:"cpu_vendor"`
	CPUFlags      []string  `xmlrpc:"cpu_flags"`
	CPUMHz        float64   `xmlrpc:"cpu_mhz"`
	MemoryTotal   int64     `xmlrpc:"memory_total"`     // bytes
	MemoryFree    int64     `xmlrpc:"memory_free"`      // bytes, MemFree
	MemoryAvail   int64     `xmlrpc:"memory_available"` // bytes, MemAvailable
	Kernel        string    `xmlrpc:"kernel"`           // release
	KernelVersion string    `xmlrpc:"kernel_version"`   // build string
	Machine       string    `xmlrpc:"machine"`
	KVM           bool      `xmlrpc:"kvm_usable"`
	KVMDetail     string    `xmlrpc:"kvm_detail"`
	BootTime      time.Time `xmlrpc:"boot_time"`
}

// Paths lets tests point the reader at prepared files.
type Paths struct {
	CPUInfo, MemInfo, Stat, LoadAvg, Uptime, KVM string
}

// DefaultPaths are the real ones.
var DefaultPaths = Paths{
	CPUInfo: "/proc/cpuinfo",
	MemInfo: "/proc/meminfo",
	Stat:    "/proc/stat",
	LoadAvg: "/proc/loadavg",
	Uptime:  "/proc/uptime",
	KVM:     "/dev/kvm",
}

// Read gathers Info.
func Read(p Paths) (*Info, error) {
	info := &Info{}
	var err error
	if info.Hostname, err = os.Hostname(); err != nil {
		return nil, fmt.Errorf("host name: %w", err)
	}
	if err := readCPUInfo(p.CPUInfo, info); err != nil {
		return nil, err
	}
	mem, err := readMemInfo(p.MemInfo)
	if err != nil {
		return nil, err
	}
	info.MemoryTotal, info.MemoryFree, info.MemoryAvail = mem["MemTotal"], mem["MemFree"], mem["MemAvailable"]
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return nil, fmt.Errorf("uname: %w", err)
	}
	info.Kernel = unix.ByteSliceToString(u.Release[:])
	info.KernelVersion = unix.ByteSliceToString(u.Version[:])
	info.Machine = unix.ByteSliceToString(u.Machine[:])
	info.KVM, info.KVMDetail = ProbeKVM(p.KVM)
	if st, err := readStat(p.Stat); err == nil && st.bootTime > 0 {
		info.BootTime = time.Unix(st.bootTime, 0).UTC()
	}
	return info, nil
}

func readCPUInfo(path string, info *Info) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			info.CPUCount++
		case "model name":
			if info.CPUModel == "" {
				info.CPUModel = v
			}
		case "vendor_id":
			if info.CPUVendor == "" {
				info.CPUVendor = v
			}
		case "flags":
			if info.CPUFlags == nil {
				info.CPUFlags = strings.Fields(v)
			}
		case "cpu MHz":
			if info.CPUMHz == 0 {
				info.CPUMHz, _ = strconv.ParseFloat(v, 64)
			}
		}
	}
	if info.CPUCount == 0 {
		return fmt.Errorf("read %s: no processor entries", path)
	}
	return nil
}

// readMemInfo returns /proc/meminfo's fields in bytes.
func readMemInfo(path string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	out := make(map[string]int64)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n *= 1024
		}
		out[k] = n
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if out["MemTotal"] == 0 {
		return nil, fmt.Errorf("read %s: no MemTotal", path)
	}
	return out, nil
}

// ProbeKVM reports whether the KVM device at path opens and offers what the
// kvm engine needs, and a sentence saying why not when it does not.
func ProbeKVM(path string) (bool, string) {
	if ok, err := kvm.Available(path); !ok {
		return false, err.Error()
	}
	return true, fmt.Sprintf("%s: KVM API version %d", path, kvm.APIVersion)
}

// Stats is the changing picture of the host.
type Stats struct {
	Time           time.Time `xmlrpc:"time"`
	UptimeSeconds  float64   `xmlrpc:"uptime_seconds"`
	Load1          float64   `xmlrpc:"load1"`
	Load5          float64   `xmlrpc:"load5"`
	Load15         float64   `xmlrpc:"load15"`
	CPUCount       int       `xmlrpc:"cpu_count"`
	CPUBusyPercent float64   `xmlrpc:"cpu_busy_percent"` // all CPUs, over IntervalSeconds
	IntervalSecs   float64   `xmlrpc:"cpu_interval_seconds"`
	MemoryTotal    int64     `xmlrpc:"memory_total"`
	MemoryFree     int64     `xmlrpc:"memory_free"`
	MemoryAvail    int64     `xmlrpc:"memory_available"`
	SwapTotal      int64     `xmlrpc:"swap_total"`
	SwapFree       int64     `xmlrpc:"swap_free"`
	Processes      int64     `xmlrpc:"processes_running"`
}

type statSample struct {
	busy, total uint64
	bootTime    int64
	running     int64
	at          time.Time
}

func readStat(path string) (statSample, error) {
	var s statSample
	data, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("read %s: %w", path, err)
	}
	s.at = time.Now()
	for _, line := range bytes.Split(data, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "cpu":
			// user nice system idle iowait irq softirq steal guest guest_nice
			for i, v := range f[1:] {
				n, _ := strconv.ParseUint(v, 10, 64)
				if i >= 8 { // guest time is already in user/nice
					break
				}
				s.total += n
				if i != 3 && i != 4 {
					s.busy += n
				}
			}
		case "btime":
			s.bootTime, _ = strconv.ParseInt(f[1], 10, 64)
		case "procs_running":
			s.running, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if s.total == 0 {
		return s, fmt.Errorf("read %s: no cpu line", path)
	}
	return s, nil
}

// Sampler computes host.stats. CPU use is measured between consecutive
// calls (at least MinInterval apart; closer calls reuse the last figure),
// or, once Every set a period, over fixed windows of that period that the
// Sampler closes itself: then every caller reads the same figure, the
// busy percent of the last whole window, however often it asks.
type Sampler struct {
	Paths       Paths
	MinInterval time.Duration

	ctl    sync.Mutex // serialises Every and Close
	period time.Duration
	stop   chan struct{}
	done   chan struct{}

	mu       sync.Mutex
	last     statSample
	lastBusy float64
	lastIntv float64
	periodic bool
}

// MaxPeriod bounds Every's period.
const MaxPeriod = time.Hour

// Every makes the Sampler read the CPU counters itself every d and report
// the busy percent of the last whole window of d (until the first window
// ends, the figure it had). d == 0 stops that: CPU use is measured between
// calls again. A d below a second or above MaxPeriod is refused.
func (s *Sampler) Every(d time.Duration) error {
	if d != 0 && (d < time.Second || d > MaxPeriod) {
		return fmt.Errorf("statistics period %v: give 0 (measure between calls) or 1 s to %v", d, MaxPeriod)
	}
	s.ctl.Lock()
	defer s.ctl.Unlock()
	if d != 0 && d == s.period && s.stop != nil {
		return nil // the same period again: its window goes on
	}
	if d != 0 {
		// read first: a Sampler that cannot read is not changed
		st, err := readStat(s.Paths.Stat)
		if err != nil {
			return err
		}
		s.halt()
		s.mu.Lock()
		if s.last.total == 0 && st.total > 0 {
			// the figure until the first window ends: since boot
			s.lastBusy = min(100, 100*float64(st.busy)/float64(st.total))
			s.lastIntv = uptime(s.Paths.Uptime)
		}
		s.last, s.periodic = st, true
		s.mu.Unlock()
		s.period, s.stop, s.done = d, make(chan struct{}), make(chan struct{})
		go s.run(d, s.stop, s.done)
		return nil
	}
	s.halt()
	return nil
}

// Period is the period Every set; 0 when CPU use is measured between calls.
func (s *Sampler) Period() time.Duration {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	return s.period
}

// Close stops the Sampler's own reading (Every(0)).
func (s *Sampler) Close() { _ = s.Every(0) }

// halt stops the running period, if any; with ctl held.
func (s *Sampler) halt() {
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop, s.done = nil, nil
	}
	s.period = 0
	s.mu.Lock()
	s.periodic = false
	s.mu.Unlock()
}

func (s *Sampler) run(d time.Duration, stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			st, err := readStat(s.Paths.Stat)
			if err != nil {
				continue // the window goes on to the next reading
			}
			s.mu.Lock()
			s.window(st)
			s.mu.Unlock()
		}
	}
}

// window closes the window that began at s.last with reading st; with mu
// held.
func (s *Sampler) window(st statSample) {
	if st.total < s.last.total || st.busy < s.last.busy {
		s.last = st // counters that went back (a reset): a window starts here
		return
	}
	if st.total == s.last.total {
		return
	}
	// idle or iowait may go back a little (proc(5)): never above 100%
	s.lastBusy = min(100, 100*float64(st.busy-s.last.busy)/float64(st.total-s.last.total))
	s.lastIntv = st.at.Sub(s.last.at).Seconds()
	s.last = st
}

// Sample returns the current Stats.
func (s *Sampler) Sample() (*Stats, error) {
	p := s.Paths
	st, err := readStat(p.Stat)
	if err != nil {
		return nil, err
	}
	mem, err := readMemInfo(p.MemInfo)
	if err != nil {
		return nil, err
	}
	out := &Stats{
		Time:        st.at.UTC().Truncate(time.Second),
		MemoryTotal: mem["MemTotal"], MemoryFree: mem["MemFree"], MemoryAvail: mem["MemAvailable"],
		SwapTotal: mem["SwapTotal"], SwapFree: mem["SwapFree"],
		Processes: st.running,
	}
	if data, err := os.ReadFile(p.LoadAvg); err == nil {
		f := strings.Fields(string(data))
		if len(f) >= 3 {
			out.Load1, _ = strconv.ParseFloat(f[0], 64)
			out.Load5, _ = strconv.ParseFloat(f[1], 64)
			out.Load15, _ = strconv.ParseFloat(f[2], 64)
		}
	}
	if data, err := os.ReadFile(p.Uptime); err == nil {
		if f := strings.Fields(string(data)); len(f) > 0 {
			out.UptimeSeconds, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	var ci Info
	if readCPUInfo(p.CPUInfo, &ci) == nil {
		out.CPUCount = ci.CPUCount
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	min := s.MinInterval
	if min <= 0 {
		min = time.Second
	}
	switch {
	case s.periodic:
		out.CPUBusyPercent, out.IntervalSecs = s.lastBusy, s.lastIntv
	case s.last.total == 0:
		// First call: the average since boot.
		out.CPUBusyPercent = 100 * float64(st.busy) / float64(st.total)
		out.IntervalSecs = out.UptimeSeconds
		s.last, s.lastBusy, s.lastIntv = st, out.CPUBusyPercent, out.IntervalSecs
	case st.at.Sub(s.last.at) < min || st.total <= s.last.total:
		out.CPUBusyPercent, out.IntervalSecs = s.lastBusy, s.lastIntv
	default:
		s.window(st)
		out.CPUBusyPercent, out.IntervalSecs = s.lastBusy, s.lastIntv
	}
	return out, nil
}

// uptime is /proc/uptime's first figure, in seconds (0 when unreadable).
func uptime(path string) float64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// MemoryTotal returns the host's total memory in bytes.
func MemoryTotal() (uint64, error) {
	m, err := readMemInfo(DefaultPaths.MemInfo)
	if err != nil {
		return 0, err
	}
	return uint64(m["MemTotal"]), nil
}
