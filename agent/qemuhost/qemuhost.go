package qemuhost

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/qemu"
)

// Options configure a Host: the [qemu] options, and the probes (nil: the
// real ones; tests give their own).
type Options struct {
	// Binary is [qemu] binary: a command name looked up in PATH, or an
	// absolute path ("": qemu.DefaultBinary).
	Binary string
	// Accel is [qemu] accel: auto, kvm or tcg ("": auto).
	Accel string

	// ProbeAccel chooses kvm or tcg for this host and says why (nil:
	// qemu.ProbeAccel).
	ProbeAccel func() (accel, why string)
	// ProbeVersion asks a binary its version (nil: qemu.ProbeVersion,
	// which refuses one older than qemu.MinVersion).
	ProbeVersion func(ctx context.Context, binary string) (qemu.Version, error)
	// Machines lists the machine types of a binary (nil: its
	// `-machine help`, see ListMachines).
	Machines func(ctx context.Context, binary string) ([]string, error)
	// LookPath finds a command name in PATH (nil: exec.LookPath).
	LookPath func(string) (string, error)
}

// Host answers what this host offers qemu domains. It is safe for
// concurrent use.
type Host struct {
	o Options

	mu    sync.Mutex
	cache map[string]*entry // by the binary's resolved path
}

// entry is what one binary answered, valid while its stamp holds.
type entry struct {
	stamp    stamp
	version  qemu.Version
	machines []string // nil until asked
}

// stamp identifies one build of a binary: an upgrade changes it.
type stamp struct {
	size  int64
	mtime time.Time
}

// New makes a Host; nothing is probed until asked.
func New(o Options) *Host {
	if o.ProbeAccel == nil {
		o.ProbeAccel = qemu.ProbeAccel
	}
	if o.ProbeVersion == nil {
		o.ProbeVersion = qemu.ProbeVersion
	}
	if o.Machines == nil {
		o.Machines = ListMachines
	}
	if o.LookPath == nil {
		o.LookPath = exec.LookPath
	}
	return &Host{o: o, cache: map[string]*entry{}}
}

// configured is the binary as [qemu] binary names it.
func (h *Host) configured() string {
	if h.o.Binary == "" {
		return qemu.DefaultBinary
	}
	return h.o.Binary
}

// resolve finds the binary and stamps it; the error says how to get one.
func (h *Host) resolve() (string, stamp, error) {
	b := h.configured()
	if !strings.Contains(b, "/") {
		p, err := h.o.LookPath(b)
		if err != nil {
			return "", stamp{}, notInstalled(b, err)
		}
		b = p
	}
	st, err := os.Stat(b)
	if err != nil {
		return "", stamp{}, notInstalled(b, err)
	}
	if st.IsDir() {
		return "", stamp{}, fmt.Errorf("QEMU binary %s is a directory: set [qemu] binary to the qemu-system-x86_64 program", b)
	}
	return b, stamp{size: st.Size(), mtime: st.ModTime()}, nil
}

func notInstalled(b string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("%s is not installed: apt-get install qemu-system-x86, or set [qemu] binary", b)
	}
	return fmt.Errorf("QEMU binary %s: %v (set [qemu] binary to a qemu-system-x86_64 this agent can run)", b, err)
}

// entry returns the cache entry of binary for st, a fresh one when the
// binary changed; the caller holds h.mu.
func (h *Host) entryLocked(binary string, st stamp) *entry {
	e := h.cache[binary]
	if e == nil || e.stamp != st {
		e = &entry{stamp: st}
		h.cache[binary] = e
	}
	return e
}

// Version is the binary's resolved path and version; an error when it is
// missing, says no version or is older than qemu.MinVersion. A version
// found is cached until the binary changes; a failure is asked again next
// time (the operator may have installed it since).
func (h *Host) Version(ctx context.Context) (string, qemu.Version, error) {
	binary, st, err := h.resolve()
	if err != nil {
		return "", qemu.Version{}, err
	}
	h.mu.Lock()
	e := h.entryLocked(binary, st)
	v := e.version
	h.mu.Unlock()
	if v != (qemu.Version{}) {
		return binary, v, nil
	}
	v, err = h.o.ProbeVersion(ctx, binary)
	if errors.Is(err, qemu.ErrTooOld) {
		return binary, v, fmt.Errorf("%w: install a newer qemu-system-x86, or set [qemu] binary to one", err)
	}
	if err != nil {
		return binary, v, err
	}
	h.mu.Lock()
	h.entryLocked(binary, st).version = v
	h.mu.Unlock()
	return binary, v, nil
}

// Accel is the accelerator qemu domains get and why: [qemu] accel = tcg
// as set; kvm only when the probe agrees (an error saying what to set
// otherwise); auto as the probe chooses.
func (h *Host) Accel() (accel, why string, err error) {
	switch h.o.Accel {
	case qemu.AccelTCG:
		return qemu.AccelTCG, "[qemu] accel = tcg", nil
	case qemu.AccelKVM:
		a, why := h.o.ProbeAccel()
		if a != qemu.AccelKVM {
			return "", why, fmt.Errorf("[qemu] accel = kvm, but this host has no usable hardware virtualization: %s (set [qemu] accel = auto or tcg)", why)
		}
		return qemu.AccelKVM, "[qemu] accel = kvm; " + why, nil
	default:
		a, why := h.o.ProbeAccel()
		return a, "auto: " + why, nil
	}
}

// Ready is what a qemu domain starts with: the binary (resolved) and the
// accelerator, or why it cannot start.
func (h *Host) Ready(ctx context.Context) (binary, accel string, err error) {
	binary, _, err = h.Version(ctx)
	if err != nil {
		return "", "", err
	}
	accel, _, err = h.Accel()
	if err != nil {
		return "", "", err
	}
	return binary, accel, nil
}

// Machines lists the machine types the binary knows (aliases included),
// cached until the binary changes.
func (h *Host) Machines(ctx context.Context) ([]string, error) {
	binary, st, err := h.resolve()
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	ms := h.entryLocked(binary, st).machines
	h.mu.Unlock()
	if ms != nil {
		return ms, nil
	}
	ms, err = h.o.Machines(ctx, binary)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.entryLocked(binary, st).machines = ms
	h.mu.Unlock()
	return ms, nil
}

// Facts are what host.info shows of QEMU on this host.
type Facts struct {
	// Binary is the program as resolved (as configured when it is not
	// found).
	Binary string `xmlrpc:"binary"`
	// Version is as "QEMU 7.2.22" ("" when it cannot be asked).
	Version    string `xmlrpc:"version,omitempty"`
	MinVersion string `xmlrpc:"min_version"`
	// Usable says qemu domains can start here; Problem why not.
	Usable  bool   `xmlrpc:"usable"`
	Problem string `xmlrpc:"problem,omitempty"`
	// Accel is what qemu domains get (kvm or tcg; "" when [qemu] accel
	// = kvm cannot be had), AccelReason why.
	Accel       string `xmlrpc:"accel,omitempty"`
	AccelReason string `xmlrpc:"accel_reason"`
}

// Facts probes (or recalls) everything host.info shows.
func (h *Host) Facts(ctx context.Context) Facts {
	f := Facts{Binary: h.configured(), MinVersion: fmt.Sprintf("%d.%d", qemu.MinVersion.Major, qemu.MinVersion.Minor)}
	binary, v, verr := h.Version(ctx)
	if binary != "" {
		f.Binary = binary
	}
	if v != (qemu.Version{}) {
		f.Version = v.String()
	}
	accel, why, aerr := h.Accel()
	f.Accel, f.AccelReason = accel, why
	switch {
	case verr != nil:
		f.Problem = verr.Error()
	case aerr != nil:
		f.Problem = aerr.Error()
	default:
		f.Usable = true
	}
	return f
}

// ParseVersion reads a version as Facts and the engine report it
// ("QEMU 7.2.22"); false when s is not one.
func ParseVersion(s string) (qemu.Version, bool) {
	var v qemu.Version
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), "QEMU ")
	if !ok {
		return v, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return v, false
	}
	for i, p := range []*int{&v.Major, &v.Minor, &v.Micro} {
		if i >= len(parts) {
			break
		}
		n, ok := smallNumber(parts[i])
		if !ok {
			return qemu.Version{}, false
		}
		*p = n
	}
	return v, true
}

// smallNumber reads 1 to 5 decimal digits.
func smallNumber(s string) (int, bool) {
	if len(s) == 0 || len(s) > 5 {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
