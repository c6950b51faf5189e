package vmcfg

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Workload says what the workload guest does with its memory. It is the
// parsed form of the ovs-agent specific `workload` option, a string of
// comma-separated key=value pairs, and the only grammar for it: the VMM
// (vmm/workload.ParamsFromSpec) takes a Workload, never the string.
//
//	workload = 'dirty=200M/s,hot=256M,pattern=random,touch=1G,verify=2s'
//
//	dirty=RATE    bytes written per second, a SIZE followed by /s, or 0;
//	              0 (the default) writes nothing after the touch fill: the
//	              guest only verifies. Otherwise at least 4K/s (one page per
//	              second) and at most 64G/s; the guest writes whole pages,
//	              RATE/4K of them per second (rounded down).
//	hot=SIZE|all  the hot set: the pages the dirtying cycles over. all (the
//	              default, the same as leaving hot out) is all the memory
//	              the guest does not keep for itself or for touch. A SIZE
//	              is a positive multiple of 4K; hot=0 is an error.
//	pattern=P     random (the default) or sequential page order
//	touch=SIZE    bytes the guest fills once at start, a multiple of 4K;
//	              default 0. The touched pages are their own range, right
//	              after the hot set; they are filled in order with the same
//	              page format as every written page (contents derived from
//	              page, generation and seed), before any dirtying, and are
//	              verified like every written page from then on.
//	verify=DUR    how often the guest verifies every page it wrote, a Go
//	              duration between 10ms and 1h (such as 500ms or 2s);
//	              default 1s
//	hb=DUR        how often the guest prints a heartbeat line, between
//	              100ms and 1h; default 1s
//	seed=N        unsigned 64-bit integer, decimal or 0x hex, from which
//	              page contents and the random pattern derive; default 1
//
// SIZE is a decimal number of bytes with an optional suffix K, M, G or T
// (either case), which are binary multiples: 1K = 1024, 1M = 1024K, and so
// on. Keys are lower case, each given at most once, in any order; spaces
// around items are ignored. hot plus touch may not exceed the domain's
// memory (checked by Config.Validate); the guest also keeps about 2 MiB,
// plus 2 MiB per GiB of hot set and touched memory, for itself, which the
// VMM checks when it lays the guest out.
type Workload struct {
	DirtyBytesPerSec int64
	// HotBytes is the hot set size; 0 means all of the memory left (hot=all).
	HotBytes       int64
	Pattern        string
	Touch          int64
	VerifyEvery    time.Duration
	HeartbeatEvery time.Duration
	Seed           uint64
}

// Workload patterns.
const (
	PatternRandom     = "random"
	PatternSequential = "sequential"
)

// WorkloadPageSize is the workload guest's page size: hot and touch are
// multiples of it and dirty is at least one of it per second.
const WorkloadPageSize = 4096

// Workload limits.
const (
	MaxDirtyBytesPerSec = 64 << 30 // 64 GiB/s: beyond any host's memory bandwidth
	MinVerifyEvery      = 10 * time.Millisecond
	MaxVerifyEvery      = time.Hour
	MinHeartbeatEvery   = 100 * time.Millisecond
	MaxHeartbeatEvery   = time.Hour
)

// Workload defaults (dirty, hot and touch default to 0).
const (
	DefaultVerifyEvery    = time.Second
	DefaultHeartbeatEvery = time.Second
	DefaultWorkloadSeed   = 1
)

// DefaultWorkload is an idle guest (no writes) over all of memory that
// verifies its memory and prints a heartbeat every second.
func DefaultWorkload() Workload {
	return Workload{Pattern: PatternRandom, VerifyEvery: DefaultVerifyEvery,
		HeartbeatEvery: DefaultHeartbeatEvery, Seed: DefaultWorkloadSeed}
}

var workloadKeys = []string{"dirty", "hot", "pattern", "touch", "verify", "hb", "seed"}

// ParseWorkload reads a workload spec. The empty spec is DefaultWorkload.
// The memory limits are checked by Config.Validate, which knows the
// domain's memory.
func ParseWorkload(spec string) (Workload, error) {
	w := DefaultWorkload()
	seen := map[string]bool{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, val, ok := strings.Cut(item, "=")
		if !ok {
			return w, fmt.Errorf("%s is not a key=value pair", quote(item))
		}
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if seen[k] {
			return w, fmt.Errorf("%s is given twice", k)
		}
		seen[k] = true
		var err error
		switch k {
		case "dirty":
			w.DirtyBytesPerSec, err = parseRate(val)
		case "hot":
			if val == "all" {
				w.HotBytes = 0
				break
			}
			w.HotBytes, err = parseSize(val)
			if err == nil && w.HotBytes == 0 {
				err = fmt.Errorf("an empty hot set; leave hot out or write hot=all for all of memory")
			}
		case "touch":
			w.Touch, err = parseSize(val)
		case "pattern":
			w.Pattern = val
		case "verify":
			w.VerifyEvery, err = parseDuration(val)
		case "hb":
			w.HeartbeatEvery, err = parseDuration(val)
		case "seed":
			w.Seed, err = parseSeed(val)
		default:
			return w, fmt.Errorf("unknown key %s (known: %s)", quote(k), strings.Join(workloadKeys, ", "))
		}
		if err != nil {
			return w, fmt.Errorf("%s=%s: %w", k, val, err)
		}
	}
	if err := w.Validate(); err != nil {
		return w, err
	}
	return w, nil
}

// Validate checks the fields on their own (not against memory): what
// ParseWorkload accepts, for a Workload built or changed in code.
func (w Workload) Validate() error {
	if w.DirtyBytesPerSec < 0 || w.DirtyBytesPerSec > MaxDirtyBytesPerSec {
		return fmt.Errorf("dirty=%s/s is out of range (0 to %s/s)", formatSize(w.DirtyBytesPerSec), formatSize(MaxDirtyBytesPerSec))
	}
	if w.DirtyBytesPerSec != 0 && w.DirtyBytesPerSec < WorkloadPageSize {
		return fmt.Errorf("dirty=%s/s is less than one page (4K) per second", formatSize(w.DirtyBytesPerSec))
	}
	if w.HotBytes < 0 {
		return fmt.Errorf("hot=%d is negative", w.HotBytes)
	}
	if w.HotBytes%WorkloadPageSize != 0 {
		return fmt.Errorf("hot=%s is not a multiple of the 4K page size", formatSize(w.HotBytes))
	}
	if w.Touch < 0 {
		return fmt.Errorf("touch=%d is negative", w.Touch)
	}
	if w.Touch%WorkloadPageSize != 0 {
		return fmt.Errorf("touch=%s is not a multiple of the 4K page size", formatSize(w.Touch))
	}
	switch w.Pattern {
	case PatternRandom, PatternSequential:
	default:
		return fmt.Errorf("pattern=%s is not random or sequential", w.Pattern)
	}
	if w.VerifyEvery < MinVerifyEvery || w.VerifyEvery > MaxVerifyEvery {
		return fmt.Errorf("verify=%s is out of range (%s to %s)", w.VerifyEvery, MinVerifyEvery, MaxVerifyEvery)
	}
	if w.HeartbeatEvery < MinHeartbeatEvery || w.HeartbeatEvery > MaxHeartbeatEvery {
		return fmt.Errorf("hb=%s is out of range (%s to %s)", w.HeartbeatEvery, MinHeartbeatEvery, MaxHeartbeatEvery)
	}
	return nil
}

// checkMemory checks the sizes against the domain's memory.
func (w Workload) checkMemory(memoryMiB int) error {
	mem := int64(memoryMiB) << 20
	switch {
	case w.HotBytes > mem:
		return fmt.Errorf("hot=%s is larger than memory (%d MiB)", formatSize(w.HotBytes), memoryMiB)
	case w.Touch > mem:
		return fmt.Errorf("touch=%s is larger than memory (%d MiB)", formatSize(w.Touch), memoryMiB)
	case w.Touch >= mem:
		return fmt.Errorf("touch=%s leaves no memory for a hot set (memory is %d MiB)", formatSize(w.Touch), memoryMiB)
	case w.HotBytes+w.Touch > mem:
		return fmt.Errorf("hot=%s plus touch=%s is larger than memory (%d MiB)", formatSize(w.HotBytes), formatSize(w.Touch), memoryMiB)
	}
	return nil
}

// String renders the spec canonically: the keys that differ from
// DefaultWorkload, in a fixed order. The default workload renders as "".
func (w Workload) String() string {
	d := DefaultWorkload()
	var items []string
	if w.DirtyBytesPerSec != d.DirtyBytesPerSec {
		items = append(items, "dirty="+formatSize(w.DirtyBytesPerSec)+"/s")
	}
	if w.HotBytes != d.HotBytes {
		items = append(items, "hot="+formatSize(w.HotBytes))
	}
	if w.Pattern != d.Pattern {
		items = append(items, "pattern="+w.Pattern)
	}
	if w.Touch != d.Touch {
		items = append(items, "touch="+formatSize(w.Touch))
	}
	if w.VerifyEvery != d.VerifyEvery {
		items = append(items, "verify="+w.VerifyEvery.String())
	}
	if w.HeartbeatEvery != d.HeartbeatEvery {
		items = append(items, "hb="+w.HeartbeatEvery.String())
	}
	if w.Seed != d.Seed {
		items = append(items, "seed="+strconv.FormatUint(w.Seed, 10))
	}
	return strings.Join(items, ",")
}

var sizeUnits = []struct {
	suffix byte
	shift  uint
}{{'T', 40}, {'G', 30}, {'M', 20}, {'K', 10}}

// parseSize reads a SIZE: decimal digits and an optional K/M/G/T suffix
// (binary multiples, either case).
func parseSize(s string) (int64, error) {
	num := s
	var shift uint
	if n := len(s); n > 0 {
		c := s[n-1] &^ 0x20 // upper case
		for _, u := range sizeUnits {
			if c == u.suffix {
				shift = u.shift
				num = s[:n-1]
				break
			}
		}
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, fmt.Errorf("%s is not a size such as 4096, 512K, 256M or 1G", quote(s))
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v > (1<<62)>>shift {
		return 0, fmt.Errorf("%s is too large", quote(s))
	}
	return v << shift, nil
}

// parseRate reads SIZE/s, or 0.
func parseRate(s string) (int64, error) {
	if s == "0" {
		return 0, nil
	}
	num, ok := strings.CutSuffix(s, "/s")
	if !ok {
		return 0, fmt.Errorf("%s is not a rate such as 200M/s", quote(s))
	}
	return parseSize(num)
}

// parseDuration reads a Go duration; the range is checked by Validate.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s is not a duration such as 500ms or 2s", quote(s))
	}
	return d, nil
}

// parseSeed reads an unsigned 64-bit integer, decimal or 0x hex. (Not
// strconv's base 0, which would read a leading 0 as octal.)
func parseSeed(s string) (uint64, error) {
	digits, base := s, 10
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		digits, base = h, 16
	}
	v, err := strconv.ParseUint(digits, base, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is not an unsigned 64-bit integer (decimal, or hex with 0x)", quote(s))
	}
	return v, nil
}

// formatSize renders n with the largest binary suffix that divides it.
func formatSize(n int64) string {
	if n != 0 {
		for _, u := range sizeUnits {
			if n%(1<<u.shift) == 0 {
				return strconv.FormatInt(n>>u.shift, 10) + string(u.suffix)
			}
		}
	}
	return strconv.FormatInt(n, 10)
}
