package kvm

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Memory region flags for SetUserMemoryRegion.
const (
	MemLogDirtyPages = 1 << 0 // KVM_MEM_LOG_DIRTY_PAGES
	MemReadonly      = 1 << 1 // KVM_MEM_READONLY
)

// PageSize is the granularity of KVM memory slots and of the dirty log.
const PageSize = 4096

// MemoryRegion describes one KVM memory slot (struct kvm_userspace_memory_region).
type MemoryRegion struct {
	Slot          uint32
	Flags         uint32
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
}

// Pages returns the number of guest pages in the region.
func (r MemoryRegion) Pages() uint64 { return r.MemorySize / PageSize }

// BitmapWords returns the number of 64-bit words a dirty bitmap of the region takes.
func (r MemoryRegion) BitmapWords() int { return int((r.Pages() + 63) / 64) }

// VM is one KVM virtual machine. Methods may be called from any goroutine;
// memory-slot changes are serialised.
type VM struct {
	fd       int
	sys      *System
	mmapSize int

	mu    sync.Mutex
	slots map[uint32]MemoryRegion
	vcpus []*VCPU
	msrs  []uint32 // StateMSRs this kernel supports, cached
}

// Fd returns the VM file descriptor (for diagnostics; do not close it).
func (vm *VM) Fd() int { return vm.fd }

// CheckExtension returns KVM_CHECK_EXTENSION on the VM (some capabilities
// are per-VM).
func (vm *VM) CheckExtension(cap int) (int, error) {
	r, err := ioctl(vm.fd, kvmCheckExtension, uintptr(cap))
	if err != nil {
		return 0, fmt.Errorf("vm KVM_CHECK_EXTENSION(%d): %w", cap, err)
	}
	return int(r), nil
}

// SetTSSAddr places the three-page TSS region Intel VMX needs for real-mode
// emulation (KVM_SET_TSS_ADDR). The range must not overlap guest RAM or
// MMIO. It is harmless on AMD. Call before creating vCPUs.
func (vm *VM) SetTSSAddr(addr uint64) error {
	if _, err := ioctl(vm.fd, kvmSetTSSAddr, uintptr(addr)); err != nil {
		return fmt.Errorf("KVM_SET_TSS_ADDR(%#x): %w", addr, err)
	}
	return nil
}

// SetIdentityMapAddr places the one-page identity map Intel VMX needs for
// real mode (KVM_SET_IDENTITY_MAP_ADDR). Call before creating vCPUs.
func (vm *VM) SetIdentityMapAddr(addr uint64) error {
	a := addr
	if _, err := ioctlPtr(vm.fd, kvmSetIdentityMapAddr, unsafe.Pointer(&a)); err != nil {
		return fmt.Errorf("KVM_SET_IDENTITY_MAP_ADDR(%#x): %w", addr, err)
	}
	return nil
}

// SetUserMemoryRegion creates, changes the flags of, or (MemorySize 0)
// deletes a memory slot. UserspaceAddr must be page aligned and stay mapped
// for as long as the slot exists.
func (vm *VM) SetUserMemoryRegion(r MemoryRegion) error {
	if r.GuestPhysAddr%PageSize != 0 || r.MemorySize%PageSize != 0 || r.UserspaceAddr%PageSize != 0 {
		return fmt.Errorf("memory slot %d: gpa %#x size %#x addr %#x must all be %d-byte aligned",
			r.Slot, r.GuestPhysAddr, r.MemorySize, r.UserspaceAddr, PageSize)
	}
	vm.mu.Lock()
	defer vm.mu.Unlock()
	arg := r
	if _, err := ioctlPtr(vm.fd, kvmSetUserMemoryRegion, unsafe.Pointer(&arg)); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d gpa %#x size %#x flags %#x: %w",
			r.Slot, r.GuestPhysAddr, r.MemorySize, r.Flags, err)
	}
	if r.MemorySize == 0 {
		delete(vm.slots, r.Slot)
	} else {
		vm.slots[r.Slot] = r
	}
	return nil
}

// MemoryRegions returns the current slots.
func (vm *VM) MemoryRegions() []MemoryRegion {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	out := make([]MemoryRegion, 0, len(vm.slots))
	for _, r := range vm.slots {
		out = append(out, r)
	}
	return out
}

// SetDirtyLogging turns KVM_MEM_LOG_DIRTY_PAGES on or off for a slot.
// Turning it on starts with a clean log: only writes after this call are
// reported.
func (vm *VM) SetDirtyLogging(slot uint32, on bool) error {
	vm.mu.Lock()
	r, ok := vm.slots[slot]
	vm.mu.Unlock()
	if !ok {
		return fmt.Errorf("set dirty logging: no memory slot %d", slot)
	}
	if on {
		r.Flags |= MemLogDirtyPages
	} else {
		r.Flags &^= MemLogDirtyPages
	}
	return vm.SetUserMemoryRegion(r)
}

type dirtyLog struct {
	slot   uint32
	_      uint32
	bitmap uint64
}

// GetDirtyLog fetches and clears the dirty bitmap of a slot
// (KVM_GET_DIRTY_LOG): bit i of dst (little-endian words) is set when guest
// page i of the slot was written since the previous call. dst must hold at
// least MemoryRegion.BitmapWords words; it is overwritten, not ORed.
// Without KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 enabled the call also
// re-protects the pages, so the next call reports only newer writes.
func (vm *VM) GetDirtyLog(slot uint32, dst []uint64) error {
	vm.mu.Lock()
	r, ok := vm.slots[slot]
	vm.mu.Unlock()
	if !ok {
		return fmt.Errorf("KVM_GET_DIRTY_LOG: no memory slot %d", slot)
	}
	if r.Flags&MemLogDirtyPages == 0 {
		return fmt.Errorf("KVM_GET_DIRTY_LOG slot %d: dirty logging is not enabled on the slot", slot)
	}
	if len(dst) < r.BitmapWords() {
		return fmt.Errorf("KVM_GET_DIRTY_LOG slot %d: bitmap of %d words, need %d", slot, len(dst), r.BitmapWords())
	}
	arg := dirtyLog{slot: slot, bitmap: uint64(uintptr(unsafe.Pointer(&dst[0])))}
	_, err := ioctlPtr(vm.fd, kvmGetDirtyLog, unsafe.Pointer(&arg))
	keepAlive(dst)
	if err != nil {
		return fmt.Errorf("KVM_GET_DIRTY_LOG slot %d: %w", slot, err)
	}
	return nil
}

type clearDirtyLog struct {
	slot      uint32
	numPages  uint32
	firstPage uint64
	bitmap    uint64
}

// ClearDirtyLog re-protects the pages whose bits are set in bits, for pages
// [firstPage, firstPage+numPages) of the slot (KVM_CLEAR_DIRTY_LOG). Only
// meaningful after EnableManualDirtyLogProtect. firstPage must be a multiple
// of 64 and numPages a multiple of 64 unless the range ends at the slot end.
func (vm *VM) ClearDirtyLog(slot uint32, firstPage uint64, numPages uint32, bits []uint64) error {
	if int(numPages+63)/64 > len(bits) {
		return fmt.Errorf("KVM_CLEAR_DIRTY_LOG slot %d: %d pages need %d words, have %d", slot, numPages, (numPages+63)/64, len(bits))
	}
	if numPages == 0 {
		return nil
	}
	arg := clearDirtyLog{slot: slot, numPages: numPages, firstPage: firstPage,
		bitmap: uint64(uintptr(unsafe.Pointer(&bits[0])))}
	_, err := ioctlPtr(vm.fd, kvmClearDirtyLog, unsafe.Pointer(&arg))
	keepAlive(bits)
	if err != nil {
		return fmt.Errorf("KVM_CLEAR_DIRTY_LOG slot %d pages %d+%d: %w", slot, firstPage, numPages, err)
	}
	return nil
}

type enableCap struct {
	cap   uint32
	flags uint32
	args  [4]uint64
	_     [64]byte
}

// EnableCap enables a VM capability (KVM_ENABLE_CAP on the VM fd).
func (vm *VM) EnableCap(cap uint32, flags uint32, args ...uint64) error {
	if len(args) > 4 {
		return fmt.Errorf("KVM_ENABLE_CAP(%d): %d args, at most 4", cap, len(args))
	}
	arg := enableCap{cap: cap, flags: flags}
	copy(arg.args[:], args)
	if _, err := ioctlPtr(vm.fd, kvmEnableCap, unsafe.Pointer(&arg)); err != nil {
		return fmt.Errorf("KVM_ENABLE_CAP(%d): %w", cap, err)
	}
	return nil
}

// Manual dirty-log protection modes (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 args[0]).
const (
	DirtyLogManualProtectEnable = 1 << 0
	DirtyLogInitiallySet        = 1 << 1
)

// EnableManualDirtyLogProtect switches the VM to KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2
// mode: GetDirtyLog then only reads the log and ClearDirtyLog re-protects.
// Must be called before memory slots are created.
func (vm *VM) EnableManualDirtyLogProtect(initiallySet bool) error {
	n, err := vm.sys.CheckExtension(CapManualDirtyLogProtect2)
	if err != nil {
		return err
	}
	if n&DirtyLogManualProtectEnable == 0 {
		return fmt.Errorf("KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 not supported by this kernel")
	}
	mode := uint64(DirtyLogManualProtectEnable)
	if initiallySet {
		if n&DirtyLogInitiallySet == 0 {
			return fmt.Errorf("KVM_DIRTY_LOG_INITIALLY_SET not supported by this kernel")
		}
		mode |= DirtyLogInitiallySet
	}
	return vm.EnableCap(CapManualDirtyLogProtect2, 0, mode)
}

// CreateVCPU creates vCPU id and maps its kvm_run area.
func (vm *VM) CreateVCPU(id int) (*VCPU, error) {
	fd, err := ioctl(vm.fd, kvmCreateVCPU, uintptr(id))
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VCPU(%d): %w", id, err)
	}
	unix.CloseOnExec(int(fd))
	run, err := unix.Mmap(int(fd), 0, vm.mmapSizeOrSys(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(int(fd))
		return nil, fmt.Errorf("mmap kvm_run of vcpu %d: %w", id, err)
	}
	c := &VCPU{fd: int(fd), id: id, run: run, vm: vm}
	vm.mu.Lock()
	vm.vcpus = append(vm.vcpus, c)
	vm.mu.Unlock()
	return c, nil
}

func (vm *VM) mmapSizeOrSys() int {
	if vm.mmapSize > 0 {
		return vm.mmapSize
	}
	return vm.sys.mmapSize
}

// Close closes every vCPU created from the VM and then the VM itself. The
// guest memory stays with its owner.
func (vm *VM) Close() error {
	vm.mu.Lock()
	vcpus := vm.vcpus
	vm.vcpus = nil
	vm.mu.Unlock()
	var errs []error
	for _, c := range vcpus {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if vm.fd >= 0 {
		if err := unix.Close(vm.fd); err != nil {
			errs = append(errs, fmt.Errorf("close vm: %w", err))
		}
		vm.fd = -1
	}
	return errors.Join(errs...)
}
