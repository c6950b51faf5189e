package workload

import (
	"fmt"
	"strconv"
	"time"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
)

// Pattern selects which hot-set page the workload writes next.
type Pattern uint64

// Patterns.
const (
	PatternRandom     Pattern = 0 // uniformly random page of the hot set
	PatternSequential Pattern = 1 // hot-set pages in order, wrapping around
)

func (p Pattern) String() string {
	switch p {
	case PatternRandom:
		return vmcfg.PatternRandom
	case PatternSequential:
		return vmcfg.PatternSequential
	}
	return fmt.Sprintf("pattern(%d)", uint64(p))
}

// Params is the workload configuration in the engines' terms. It is made
// from the vm.cfg `workload` option, parsed by config/vmcfg (the one
// grammar for it), by ParamsFromSpec.
type Params struct {
	// DirtyRate is the page-write rate in bytes per second (0: write nothing
	// after the touch fill, only verify). Pages per second is
	// DirtyRate/PageSize.
	DirtyRate uint64
	// HotSize is the size of the set of pages written, in bytes, a multiple
	// of PageSize. 0 means all of RAM that the guest does not keep for its
	// own tables or for the touched region (vm.cfg hot=all, the default).
	HotSize uint64
	// TouchSize is the size of the touched region, in bytes, a multiple of
	// PageSize: pages right after the hot set that the guest fills once at
	// start (generation 1), before it writes anything else, and verifies
	// from then on.
	TouchSize uint64
	Pattern   Pattern
	// VerifyInterval is how often a full verification round starts.
	VerifyInterval time.Duration
	// HeartbeatInterval is how often an HB line is printed.
	HeartbeatInterval time.Duration
	// Seed feeds the page fill and the random pattern.
	Seed uint64
}

// Limits and defaults: those of the vm.cfg workload option.
const (
	MaxDirtyRate             = vmcfg.MaxDirtyBytesPerSec
	MinVerifyInterval        = vmcfg.MinVerifyEvery
	MinHeartbeatInterval     = vmcfg.MinHeartbeatEvery
	MaxInterval              = vmcfg.MaxVerifyEvery
	DefaultVerifyInterval    = vmcfg.DefaultVerifyEvery
	DefaultHeartbeatInterval = vmcfg.DefaultHeartbeatEvery
	DefaultSeed              = vmcfg.DefaultWorkloadSeed
)

// The spec's page size is the guest's (a compile-time check: a negative
// constant does not convert to uint).
const (
	_ = uint(vmcfg.WorkloadPageSize - PageSize)
	_ = uint(PageSize - vmcfg.WorkloadPageSize)
	_ = uint(vmcfg.MaxHeartbeatEvery - MaxInterval)
	_ = uint(MaxInterval - vmcfg.MaxHeartbeatEvery)
)

// DefaultParams returns the parameters of the default workload spec
// (vmcfg.DefaultWorkload): no writes, hot set all of memory, nothing
// touched, verify and heartbeat every second, seed 1.
func DefaultParams() Params { return paramsOf(vmcfg.DefaultWorkload()) }

// ParamsFromSpec turns a parsed workload spec into the parameters of a
// guest with ramSize bytes of RAM, and checks that the guest fits: its own
// tables, the hot set and the touched region (NewLayout).
func ParamsFromSpec(w vmcfg.Workload, ramSize uint64) (Params, error) {
	if err := w.Validate(); err != nil {
		return Params{}, fmt.Errorf("workload: %w", err)
	}
	p := paramsOf(w)
	if _, err := NewLayout(ramSize, p); err != nil {
		return Params{}, err
	}
	return p, nil
}

// paramsOf converts a valid spec.
func paramsOf(w vmcfg.Workload) Params {
	p := Params{
		DirtyRate:         uint64(w.DirtyBytesPerSec),
		HotSize:           uint64(w.HotBytes),
		TouchSize:         uint64(w.Touch),
		Pattern:           PatternRandom,
		VerifyInterval:    w.VerifyEvery,
		HeartbeatInterval: w.HeartbeatEvery,
		Seed:              w.Seed,
	}
	if w.Pattern == vmcfg.PatternSequential {
		p.Pattern = PatternSequential
	}
	return p
}

// Spec returns the workload spec that p was made from: ParamsFromSpec
// of it gives p back.
func (p Params) Spec() vmcfg.Workload {
	return vmcfg.Workload{
		DirtyBytesPerSec: toInt64(p.DirtyRate),
		HotBytes:         toInt64(p.HotSize),
		Pattern:          p.Pattern.String(),
		Touch:            toInt64(p.TouchSize),
		VerifyEvery:      p.VerifyInterval,
		HeartbeatEvery:   p.HeartbeatInterval,
		Seed:             p.Seed,
	}
}

// toInt64 converts a size, saturating (Validate then rejects it).
func toInt64(n uint64) int64 {
	if n > 1<<63-1 {
		return -1
	}
	return int64(n)
}

// String renders the parameters as the canonical workload spec, for logs
// ("" for the default workload).
func (p Params) String() string { return p.Spec().String() }

// PagesPerSecond returns the write rate in pages per second.
func (p Params) PagesPerSecond() uint64 { return p.DirtyRate / PageSize }

// Validate checks the parameters against the limits of the workload spec
// (ParamsFromSpec output always passes).
func (p Params) Validate() error {
	if err := p.Spec().Validate(); err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	return nil
}

// formatSize renders n bytes with the largest binary suffix that divides
// it, as the workload spec writes sizes.
func formatSize(n uint64) string {
	for _, u := range []struct {
		s string
		m uint64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n != 0 && n%u.m == 0 {
			return strconv.FormatUint(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatUint(n, 10)
}
