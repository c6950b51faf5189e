package kvmengine

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ovs-agent/ovs-agent/vmm/kvm"
)

// Machine state record: magic, version, vCPU count, then per vCPU a
// length-prefixed kvm.VCPUState record. Little-endian.
var stateMagic = [8]byte{'O', 'V', 'S', 'K', 'V', 'M', 'M', 'S'}

const (
	stateVersion  = 1
	maxStateVCPUs = 256
	maxVCPURecord = 2 << 20
)

// MarshalState encodes the vCPU states of a machine.
func MarshalState(vcpus []*kvm.VCPUState) ([]byte, error) {
	b := append([]byte(nil), stateMagic[:]...)
	b = binary.LittleEndian.AppendUint32(b, stateVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(vcpus)))
	for i, v := range vcpus {
		rec, err := v.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("vcpu %d: %w", i, err)
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(rec)))
		b = append(b, rec...)
	}
	return b, nil
}

// UnmarshalState decodes a machine state record (untrusted input).
func UnmarshalState(b []byte) ([]*kvm.VCPUState, error) {
	if len(b) < 16 {
		return nil, fmt.Errorf("kvm machine state: %d bytes, too short", len(b))
	}
	if [8]byte(b[:8]) != stateMagic {
		return nil, errors.New("kvm machine state: bad magic (not a kvm engine state)")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != stateVersion {
		return nil, fmt.Errorf("kvm machine state: version %d, want %d", v, stateVersion)
	}
	n := binary.LittleEndian.Uint32(b[12:])
	if n == 0 || n > maxStateVCPUs {
		return nil, fmt.Errorf("kvm machine state: %d vCPUs (want 1..%d)", n, maxStateVCPUs)
	}
	p := b[16:]
	out := make([]*kvm.VCPUState, 0, n)
	for i := uint32(0); i < n; i++ {
		if len(p) < 4 {
			return nil, fmt.Errorf("kvm machine state: vcpu %d: truncated", i)
		}
		l := binary.LittleEndian.Uint32(p)
		p = p[4:]
		if l > maxVCPURecord || uint64(l) > uint64(len(p)) {
			return nil, fmt.Errorf("kvm machine state: vcpu %d: record of %d bytes, %d left", i, l, len(p))
		}
		var st kvm.VCPUState
		if err := st.UnmarshalBinary(p[:l]); err != nil {
			return nil, fmt.Errorf("kvm machine state: vcpu %d: %w", i, err)
		}
		out = append(out, &st)
		p = p[l:]
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("kvm machine state: %d trailing bytes", len(p))
	}
	return out, nil
}
