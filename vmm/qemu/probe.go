package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultBinary is Debian's qemu-system-x86 package's emulator.
const DefaultBinary = "/usr/bin/qemu-system-x86_64"

// Accelerators.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// Paths ProbeAccel reads; variables so that the tests can point them at
// files of their own.
var (
	kvmDevice  = "/dev/kvm"
	cpuinfo    = "/proc/cpuinfo"
	pvmModule  = "/sys/module/kvm_pvm"
	maxCPUInfo = int64(4 << 20) // /proc/cpuinfo of a large host is well under this
)

// ProbeAccel chooses the accelerator for QEMU on this host: kvm only where
// /dev/kvm opens read-write, the CPU has hardware virtualization (vmx or
// svm in /proc/cpuinfo) and /dev/kvm is not the PVM hypervisor's (PVM
// gives a /dev/kvm without VMX/SVM under which QEMU crawls: SeaBIOS alone
// takes 40 s); tcg otherwise. why names the test that decided, for
// host.info and the log.
func ProbeAccel() (accel, why string) {
	f, err := os.OpenFile(kvmDevice, os.O_RDWR, 0)
	if err != nil {
		return AccelTCG, fmt.Sprintf("%s does not open (%v)", kvmDevice, err)
	}
	f.Close()
	flags, err := cpuFlags(cpuinfo)
	if err != nil {
		return AccelTCG, fmt.Sprintf("cannot read the CPU flags: %v", err)
	}
	if !flags["vmx"] && !flags["svm"] {
		return AccelTCG, fmt.Sprintf("%s opens but %s has neither vmx nor svm (no hardware virtualization)", kvmDevice, cpuinfo)
	}
	if _, err := os.Stat(pvmModule); err == nil {
		return AccelTCG, fmt.Sprintf("%s is the PVM hypervisor's (%s exists), under which QEMU with KVM crawls", kvmDevice, pvmModule)
	}
	return AccelKVM, fmt.Sprintf("%s opens, the CPU has hardware virtualization and it is not PVM", kvmDevice)
}

// cpuFlags reads the flags of the first processor in a /proc/cpuinfo.
func cpuFlags(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCPUInfo))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "flags" {
			continue
		}
		flags := map[string]bool{}
		for _, fl := range strings.Fields(v) {
			flags[fl] = true
		}
		return flags, nil
	}
	return nil, fmt.Errorf("%s has no flags line", path)
}

// Version is a QEMU version as `qemu-system-x86_64 --version` says it.
type Version struct {
	Major, Minor, Micro int
	Package             string // the distribution's build, as "Debian 1:7.2+dfsg-7+deb12u18+b2"
}

func (v Version) String() string { return fmt.Sprintf("QEMU %d.%d.%d", v.Major, v.Minor, v.Micro) }

// Less says whether v is older than w.
func (v Version) Less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Micro < w.Micro
}

// MinVersion is the oldest QEMU this package runs. 7.2 (Debian 12's) is the
// version it is tested against, and what it relies on is all there: guest
// RAM as a file backend named by -machine memory-backend= (5.0), QMP on an
// inherited socket with -chardev socket,fd= (the fd option's client mode),
// -incoming defer with migrate-incoming (2.4), SHUTDOWN's reason field
// (4.0: guest-shutdown versus guest-reset under -no-reboot), GUEST_PANICKED
// from a pvpanic-pci device (4.0), set_password for VNC, query-balloon,
// query-blockstats and the migration parameters the migration uses
// (downtime-limit, max-bandwidth, auto-converge throttling). Older
// releases miss one or another of these; a migration stream also only
// loads into a QEMU at least as new as the one that wrote it.
var MinVersion = Version{Major: 7, Minor: 2}

// maxVersionOutput bounds what ProbeVersion reads of --version.
const maxVersionOutput = 64 << 10

var versionRE = regexp.MustCompile(`^QEMU emulator version (\d+)\.(\d+)(?:\.(\d+))?(?:\s*\(([^)\n]*)\))?\s*$`)

// ErrTooOld is wrapped by ProbeVersion's error for a QEMU older than
// MinVersion.
var ErrTooOld = errors.New("QEMU is too old")

// ProbeVersion runs binary --version and returns its version; an error
// when the binary is missing, does not answer (ctx), says something else
// or is older than MinVersion.
func ProbeVersion(ctx context.Context, binary string) (Version, error) {
	if binary == "" {
		binary = DefaultBinary
	}
	if _, err := os.Stat(binary); err != nil {
		return Version{}, fmt.Errorf("QEMU binary %s: %w (install Debian's qemu-system-x86 or set the engine binary)", binary, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "--version")
	out := &limitedBuffer{max: maxVersionOutput}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return Version{}, fmt.Errorf("%s --version: %w: %s", binary, err, excerpt(out.Bytes()))
	}
	if out.dropped {
		return Version{}, fmt.Errorf("%s --version: said more than %d bytes, not a QEMU: %s", binary, maxVersionOutput, excerpt(out.Bytes()))
	}
	v, err := ParseVersion(out.Bytes())
	if err != nil {
		return Version{}, fmt.Errorf("%s --version: %w", binary, err)
	}
	if v.Less(MinVersion) {
		return v, fmt.Errorf("%s is %s: %w (need %d.%d or newer)", binary, v, ErrTooOld, MinVersion.Major, MinVersion.Minor)
	}
	return v, nil
}

// ParseVersion reads the first line of `qemu-system-x86_64 --version`:
// "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b2)".
func ParseVersion(out []byte) (Version, error) {
	line, _, _ := bytes.Cut(out, []byte("\n"))
	m := versionRE.FindSubmatch(bytes.TrimSpace(line))
	if m == nil {
		return Version{}, fmt.Errorf("not a QEMU version line: %s", excerpt(line))
	}
	var v Version
	var err error
	for i, p := range []*int{&v.Major, &v.Minor, &v.Micro} {
		if len(m[i+1]) == 0 {
			continue
		}
		if *p, err = strconv.Atoi(string(m[i+1])); err != nil || *p > 1<<16 {
			return Version{}, fmt.Errorf("not a QEMU version line: %s", excerpt(line))
		}
	}
	v.Package = string(m[4])
	return v, nil
}

// limitedBuffer keeps the first max bytes written to it and drops the
// rest, so that a program that writes without end cannot fill memory.
type limitedBuffer struct {
	bytes.Buffer
	max     int
	dropped bool // more than max was written
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	room := b.max - b.Len()
	if len(p) > room {
		b.dropped = true
		p = p[:max(room, 0)]
	}
	b.Buffer.Write(p)
	return n, nil
}

// excerpt quotes the start of b for an error.
func excerpt(b []byte) string {
	const n = 200
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "..."
	}
	return strconv.Quote(s)
}
