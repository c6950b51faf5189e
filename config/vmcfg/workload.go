package vmcfg

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Workload says what the workload guest does with its memory. It is the
// parsed form of the ovs-agent specific `workload` option, a string of
// comma-separated key=value pairs:
//
//	workload = 'dirty=200M/s,hot=256M,pattern=random,touch=1G,verify=2s'
//
//	dirty=RATE    bytes dirtied per second, a SIZE followed by /s (or 0);
//	              0 (the default) is an idle guest
//	hot=SIZE      the part of memory the dirtying cycles over;
//	              0 (the default) is all of memory
//	pattern=P     random (the default) or sequential page order
//	touch=SIZE    bytes written once at start; default 0
//	verify=DUR    how often the guest verifies its memory, a Go duration
//	              between 1ms and 1h (such as 500ms or 2s); default 1s
//
// SIZE is a decimal number of bytes with an optional suffix K, M, G or T
// (either case), which are binary multiples: 1K = 1024, 1M = 1024K, and so
// on. hot and touch may not exceed the domain's memory.
type Workload struct {
	DirtyBytesPerSec int64
	HotBytes         int64
	Pattern          string
	Touch            int64
	VerifyEvery      time.Duration
}

// Workload patterns.
const (
	PatternRandom     = "random"
	PatternSequential = "sequential"
)

// Workload limits.
const (
	MaxDirtyBytesPerSec = 1 << 40 // 1 TiB/s
	MinVerifyEvery      = time.Millisecond
	MaxVerifyEvery      = time.Hour
)

// DefaultWorkload is an idle guest that verifies its memory every second.
func DefaultWorkload() Workload {
	return Workload{Pattern: PatternRandom, VerifyEvery: time.Second}
}

var workloadKeys = []string{"dirty", "hot", "pattern", "touch", "verify"}

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
			w.HotBytes, err = parseSize(val)
		case "touch":
			w.Touch, err = parseSize(val)
		case "pattern":
			w.Pattern = val
		case "verify":
			w.VerifyEvery, err = time.ParseDuration(val)
			if err != nil {
				err = fmt.Errorf("%s is not a duration such as 500ms or 2s", quote(val))
			}
		default:
			return w, fmt.Errorf("unknown key %s (known: %s)", quote(k), strings.Join(workloadKeys, ", "))
		}
		if err != nil {
			return w, fmt.Errorf("%s=%s: %w", k, val, err)
		}
	}
	if err := w.check(); err != nil {
		return w, err
	}
	return w, nil
}

// check validates the fields on their own (not against memory).
func (w Workload) check() error {
	if w.DirtyBytesPerSec < 0 || w.DirtyBytesPerSec > MaxDirtyBytesPerSec {
		return fmt.Errorf("dirty=%s/s is out of range (0 to %s/s)", formatSize(w.DirtyBytesPerSec), formatSize(MaxDirtyBytesPerSec))
	}
	if w.HotBytes < 0 {
		return fmt.Errorf("hot=%d is negative", w.HotBytes)
	}
	if w.Touch < 0 {
		return fmt.Errorf("touch=%d is negative", w.Touch)
	}
	switch w.Pattern {
	case PatternRandom, PatternSequential:
	default:
		return fmt.Errorf("pattern=%s is not random or sequential", w.Pattern)
	}
	if w.VerifyEvery < MinVerifyEvery || w.VerifyEvery > MaxVerifyEvery {
		return fmt.Errorf("verify=%s is out of range (%s to %s)", w.VerifyEvery, MinVerifyEvery, MaxVerifyEvery)
	}
	return nil
}

// checkMemory checks the sizes against the domain's memory.
func (w Workload) checkMemory(memoryMiB int) error {
	mem := int64(memoryMiB) << 20
	if w.HotBytes > mem {
		return fmt.Errorf("hot=%s is larger than memory (%d MiB)", formatSize(w.HotBytes), memoryMiB)
	}
	if w.Touch > mem {
		return fmt.Errorf("touch=%s is larger than memory (%d MiB)", formatSize(w.Touch), memoryMiB)
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
