package kvm

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl request numbers for x86-64 (checked against <linux/kvm.h>).
const (
	kvmGetAPIVersion       = 0xAE00
	kvmCreateVM            = 0xAE01
	kvmGetMSRIndexList     = 0xC004AE02
	kvmCheckExtension      = 0xAE03
	kvmGetVCPUMmapSize     = 0xAE04
	kvmGetSupportedCPUID   = 0xC008AE05
	kvmCreateVCPU          = 0xAE41
	kvmGetDirtyLog         = 0x4010AE42
	kvmSetUserMemoryRegion = 0x4020AE46
	kvmSetTSSAddr          = 0xAE47
	kvmSetIdentityMapAddr  = 0x4008AE48
	kvmRun                 = 0xAE80
	kvmGetRegs             = 0x8090AE81
	kvmSetRegs             = 0x4090AE82
	kvmGetSregs            = 0x8138AE83
	kvmSetSregs            = 0x4138AE84
	kvmGetMSRs             = 0xC008AE88
	kvmSetMSRs             = 0x4008AE89
	kvmGetFPU              = 0x81A0AE8C
	kvmSetFPU              = 0x41A0AE8D
	kvmSetCPUID2           = 0x4008AE90
	kvmGetCPUID2           = 0xC008AE91
	kvmGetVCPUEvents       = 0x8040AE9F
	kvmSetVCPUEvents       = 0x4040AEA0
	kvmGetDebugRegs        = 0x8080AEA1
	kvmSetDebugRegs        = 0x4080AEA2
	kvmSetTSCKHz           = 0xAEA2
	kvmGetTSCKHz           = 0xAEA3
	kvmEnableCap           = 0x4068AEA3
	kvmGetXSave            = 0x9000AEA4
	kvmSetXSave            = 0x5000AEA5
	kvmGetXCRs             = 0x8188AEA6
	kvmSetXCRs             = 0x4188AEA7
	kvmClearDirtyLog       = 0xC018AEC0
	kvmGetXSave2           = 0x9000AECF
)

// Struct sizes from the uapi headers.
const (
	sizeofRegs        = 144
	sizeofSregs       = 312
	sizeofFPU         = 416
	sizeofXSave       = 4096
	sizeofXCRs        = 392
	sizeofVCPUEvents  = 64
	sizeofDebugRegs   = 128
	sizeofCPUIDEntry2 = 40
	sizeofMSREntry    = 16
)

// ioctl issues an ioctl whose argument is a plain integer.
func ioctl(fd int, req uintptr, arg uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

// ioctlPtr issues an ioctl whose argument points at p. The pointer is
// converted in the call expression so the object stays alive and pinned for
// the duration of the system call.
func ioctlPtr(fd int, req uintptr, p unsafe.Pointer) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(p))
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

// ioctlName gives a readable name for error messages.
func ioctlName(req uintptr) string {
	switch req {
	case kvmGetAPIVersion:
		return "KVM_GET_API_VERSION"
	case kvmCreateVM:
		return "KVM_CREATE_VM"
	case kvmGetMSRIndexList:
		return "KVM_GET_MSR_INDEX_LIST"
	case kvmCheckExtension:
		return "KVM_CHECK_EXTENSION"
	case kvmGetVCPUMmapSize:
		return "KVM_GET_VCPU_MMAP_SIZE"
	case kvmGetSupportedCPUID:
		return "KVM_GET_SUPPORTED_CPUID"
	case kvmCreateVCPU:
		return "KVM_CREATE_VCPU"
	case kvmGetDirtyLog:
		return "KVM_GET_DIRTY_LOG"
	case kvmSetUserMemoryRegion:
		return "KVM_SET_USER_MEMORY_REGION"
	case kvmSetTSSAddr:
		return "KVM_SET_TSS_ADDR"
	case kvmSetIdentityMapAddr:
		return "KVM_SET_IDENTITY_MAP_ADDR"
	case kvmRun:
		return "KVM_RUN"
	case kvmGetRegs:
		return "KVM_GET_REGS"
	case kvmSetRegs:
		return "KVM_SET_REGS"
	case kvmGetSregs:
		return "KVM_GET_SREGS"
	case kvmSetSregs:
		return "KVM_SET_SREGS"
	case kvmGetMSRs:
		return "KVM_GET_MSRS"
	case kvmSetMSRs:
		return "KVM_SET_MSRS"
	case kvmGetFPU:
		return "KVM_GET_FPU"
	case kvmSetFPU:
		return "KVM_SET_FPU"
	case kvmSetCPUID2:
		return "KVM_SET_CPUID2"
	case kvmGetCPUID2:
		return "KVM_GET_CPUID2"
	case kvmGetVCPUEvents:
		return "KVM_GET_VCPU_EVENTS"
	case kvmSetVCPUEvents:
		return "KVM_SET_VCPU_EVENTS"
	case kvmGetDebugRegs:
		return "KVM_GET_DEBUGREGS"
	case kvmSetDebugRegs:
		return "KVM_SET_DEBUGREGS"
	case kvmSetTSCKHz:
		return "KVM_SET_TSC_KHZ"
	case kvmGetTSCKHz:
		return "KVM_GET_TSC_KHZ"
	case kvmEnableCap:
		return "KVM_ENABLE_CAP"
	case kvmGetXSave:
		return "KVM_GET_XSAVE"
	case kvmSetXSave:
		return "KVM_SET_XSAVE"
	case kvmGetXCRs:
		return "KVM_GET_XCRS"
	case kvmSetXCRs:
		return "KVM_SET_XCRS"
	case kvmClearDirtyLog:
		return "KVM_CLEAR_DIRTY_LOG"
	case kvmGetXSave2:
		return "KVM_GET_XSAVE2"
	}
	return fmt.Sprintf("ioctl %#x", req)
}

func keepAlive(x any) { runtime.KeepAlive(x) }
