package kvm

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DevicePath is the default KVM device node.
const DevicePath = "/dev/kvm"

// APIVersion is the only KVM API version this package speaks (KVM_GET_API_VERSION).
const APIVersion = 12

// Capabilities for CheckExtension (values from <linux/kvm.h>).
const (
	CapUserMemory             = 3
	CapSetTSSAddr             = 4
	CapExtCPUID               = 7
	CapNrVCPUs                = 9
	CapNrMemslots             = 10
	CapSetIdentityMapAddr     = 37
	CapVCPUEvents             = 41
	CapDebugRegs              = 50
	CapXSave                  = 55
	CapXCRs                   = 56
	CapTSCControl             = 60
	CapGetTSCKHz              = 61
	CapMaxVCPUs               = 66
	CapImmediateExit          = 136
	CapManualDirtyLogProtect2 = 168
	CapXSave2                 = 208
)

// ErrUnavailable is wrapped by Open when KVM cannot be used on this host at
// all (device missing, not permitted, wrong API version). Callers test it with
// errors.Is to fall back to the sim engine.
var ErrUnavailable = errors.New("KVM unavailable")

// System is an open /dev/kvm handle. It is safe for concurrent use.
type System struct {
	fd       int
	path     string
	mmapSize int
}

// Open opens the KVM device at path (DevicePath when empty), checks the API
// version and the capabilities this package relies on, and returns a handle.
// Errors that mean "KVM cannot work here" wrap ErrUnavailable and say what
// the operator can do about it.
func Open(path string) (*System, error) {
	if path == "" {
		path = DevicePath
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		var hint string
		switch {
		case errors.Is(err, unix.ENOENT):
			hint = "the kvm module is not loaded or the CPU has no virtualization support: " +
				"enable VT-x/AMD-V (or nested virtualization) and load kvm_intel or kvm_amd, or run the domain with the sim engine"
		case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
			hint = "permission denied: run as root or add the user to the group owning " + path + " (usually kvm)"
		case errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENODEV):
			hint = "the device exists but no KVM driver is bound to it: load kvm_intel or kvm_amd"
		default:
			hint = "check that " + path + " is the KVM character device"
		}
		return nil, fmt.Errorf("open %s: %w: %w (%s)", path, ErrUnavailable, err, hint)
	}
	s := &System{fd: fd, path: path}
	v, err := ioctl(fd, kvmGetAPIVersion, 0)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: KVM_GET_API_VERSION: %w: %w", path, ErrUnavailable, err)
	}
	if v != APIVersion {
		s.Close()
		return nil, fmt.Errorf("%s: KVM API version %d, want %d: %w (this kernel's KVM is not supported)", path, v, APIVersion, ErrUnavailable)
	}
	for _, c := range []struct {
		cap  int
		name string
	}{
		{CapUserMemory, "KVM_CAP_USER_MEMORY"},
		{CapExtCPUID, "KVM_CAP_EXT_CPUID"},
		{CapImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"},
	} {
		n, err := s.CheckExtension(c.cap)
		if err != nil {
			s.Close()
			return nil, err
		}
		if n <= 0 {
			s.Close()
			return nil, fmt.Errorf("%s: kernel lacks %s: %w (a newer kernel is needed)", path, c.name, ErrUnavailable)
		}
	}
	sz, err := ioctl(fd, kvmGetVCPUMmapSize, 0)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: KVM_GET_VCPU_MMAP_SIZE: %w", path, err)
	}
	if int(sz) < runMinSize {
		s.Close()
		return nil, fmt.Errorf("%s: KVM_GET_VCPU_MMAP_SIZE returned %d, smaller than struct kvm_run (%d)", path, sz, runMinSize)
	}
	s.mmapSize = int(sz)
	return s, nil
}

// Close releases the device handle. VMs created from it stay valid.
func (s *System) Close() error {
	if s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	if err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}

// Available reports whether KVM can be opened at path (DevicePath when
// empty), with the reason when it cannot.
func Available(path string) (bool, error) {
	s, err := Open(path)
	if err != nil {
		return false, err
	}
	s.Close()
	return true, nil
}

// CheckExtension returns KVM_CHECK_EXTENSION for cap on the system handle:
// 0 when unsupported, otherwise a capability-specific positive value.
func (s *System) CheckExtension(cap int) (int, error) {
	r, err := ioctl(s.fd, kvmCheckExtension, uintptr(cap))
	if err != nil {
		return 0, fmt.Errorf("%s: KVM_CHECK_EXTENSION(%d): %w", s.path, cap, err)
	}
	return int(r), nil
}

// VCPUMmapSize returns the size of the kvm_run area mapped for each vCPU.
func (s *System) VCPUMmapSize() int { return s.mmapSize }

// CPUIDEntry is one struct kvm_cpuid_entry2.
type CPUIDEntry struct {
	Function uint32
	Index    uint32
	Flags    uint32
	EAX      uint32
	EBX      uint32
	ECX      uint32
	EDX      uint32
	_        [3]uint32
}

// CPUID entry flags.
const (
	CPUIDFlagSignificantIndex = 1 << 0
)

// SupportedCPUID returns KVM_GET_SUPPORTED_CPUID: the CPUID leaves KVM can
// present to a guest on this host. A guest's CPUID must be built from this
// (not from the host's own CPUID, which a nested hypervisor may not honour).
func (s *System) SupportedCPUID() ([]CPUIDEntry, error) {
	for n := 64; n <= 4096; n *= 2 {
		buf := make([]byte, 8+n*sizeofCPUIDEntry2)
		*(*uint32)(unsafe.Pointer(&buf[0])) = uint32(n)
		_, err := ioctlPtr(s.fd, kvmGetSupportedCPUID, unsafe.Pointer(&buf[0]))
		if errors.Is(err, unix.E2BIG) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: KVM_GET_SUPPORTED_CPUID: %w", s.path, err)
		}
		got := int(*(*uint32)(unsafe.Pointer(&buf[0])))
		if got > n {
			return nil, fmt.Errorf("%s: KVM_GET_SUPPORTED_CPUID returned %d entries for a buffer of %d", s.path, got, n)
		}
		out := make([]CPUIDEntry, got)
		for i := range out {
			out[i] = *(*CPUIDEntry)(unsafe.Pointer(&buf[8+i*sizeofCPUIDEntry2]))
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: KVM_GET_SUPPORTED_CPUID: more than 4096 entries", s.path)
}

// MSRIndexList returns KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves and
// restores for a guest.
func (s *System) MSRIndexList() ([]uint32, error) {
	for n := 256; n <= 1<<16; n *= 2 {
		buf := make([]uint32, 1+n)
		buf[0] = uint32(n)
		_, err := ioctlPtr(s.fd, kvmGetMSRIndexList, unsafe.Pointer(&buf[0]))
		if errors.Is(err, unix.E2BIG) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: KVM_GET_MSR_INDEX_LIST: %w", s.path, err)
		}
		got := int(buf[0])
		if got > n {
			return nil, fmt.Errorf("%s: KVM_GET_MSR_INDEX_LIST returned %d entries for a buffer of %d", s.path, got, n)
		}
		return append([]uint32(nil), buf[1:1+got]...), nil
	}
	return nil, fmt.Errorf("%s: KVM_GET_MSR_INDEX_LIST: too many MSRs", s.path)
}

// CreateVM creates a new virtual machine with no memory and no vCPUs.
func (s *System) CreateVM() (*VM, error) {
	var fd uintptr
	var err error
	for i := 0; i < 100; i++ { // KVM_CREATE_VM may fail with EINTR under signal load
		fd, err = ioctl(s.fd, kvmCreateVM, 0)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: KVM_CREATE_VM: %w", s.path, err)
	}
	unix.CloseOnExec(int(fd))
	return &VM{fd: int(fd), sys: s, mmapSize: s.mmapSize, slots: map[uint32]MemoryRegion{}}, nil
}
