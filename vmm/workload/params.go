package workload

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
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
		return "random"
	case PatternSequential:
		return "sequential"
	}
	return fmt.Sprintf("pattern(%d)", uint64(p))
}

// Params is the workload configuration (vm.cfg `workload`).
type Params struct {
	// DirtyRate is the page-write rate in bytes per second (0: write nothing,
	// only verify). Pages per second is DirtyRate/PageSize.
	DirtyRate uint64
	// HotSize is the size of the set of pages written, in bytes. 0 means the
	// default (DefaultHotSize, or all usable RAM when less); HotAll means all
	// usable RAM.
	HotSize uint64
	HotAll  bool
	Pattern Pattern
	// VerifyInterval is how often a full verification round starts.
	VerifyInterval time.Duration
	// HeartbeatInterval is how often an HB line is printed.
	HeartbeatInterval time.Duration
	// Seed feeds the page fill and the random pattern.
	Seed uint64
}

// Defaults and limits.
const (
	DefaultDirtyRate         = 4 << 20 // 4 MiB/s
	DefaultHotSize           = 64 << 20
	DefaultVerifyInterval    = time.Second
	DefaultHeartbeatInterval = time.Second
	DefaultSeed              = 1
	MaxDirtyRate             = 64 << 30 // 64 GiB/s: beyond any host
	MinVerifyInterval        = 10 * time.Millisecond
	MinHeartbeatInterval     = 100 * time.Millisecond
	MaxInterval              = time.Hour
)

// DefaultParams returns the parameters used for keys the option leaves out.
func DefaultParams() Params {
	return Params{
		DirtyRate:         DefaultDirtyRate,
		Pattern:           PatternRandom,
		VerifyInterval:    DefaultVerifyInterval,
		HeartbeatInterval: DefaultHeartbeatInterval,
		Seed:              DefaultSeed,
	}
}

// PagesPerSecond returns the write rate in pages per second.
func (p Params) PagesPerSecond() uint64 { return p.DirtyRate / PageSize }

// ParseParams parses a workload option such as
// "dirty=200M/s,hot=256M,pattern=random". Keys:
//
//	dirty    write rate: size per second ("200M/s", "64K/s", "0"); K, M, G, T are powers of 1024
//	hot      hot-set size ("256M", a multiple of 4 KiB), or "all" for all usable RAM
//	pattern  "random" or "sequential"
//	verify   verification interval ("1s", "500ms"; a bare number is seconds)
//	hb       heartbeat interval (same form)
//	seed     unsigned integer (decimal or 0x hex)
//
// Keys may appear once each, in any order; whitespace around items is
// ignored; missing keys take DefaultParams. The empty string is all defaults.
func ParseParams(s string) (Params, error) {
	p := DefaultParams()
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if !ok {
			return Params{}, fmt.Errorf("workload: %q is not key=value", item)
		}
		if seen[k] {
			return Params{}, fmt.Errorf("workload: %s given twice", k)
		}
		seen[k] = true
		var err error
		switch k {
		case "dirty":
			p.DirtyRate, err = parseRate(v)
		case "hot":
			if strings.EqualFold(v, "all") {
				p.HotAll, p.HotSize = true, 0
				break
			}
			p.HotSize, err = parseSize(v)
			if err == nil && (p.HotSize == 0 || p.HotSize%PageSize != 0) {
				err = fmt.Errorf("must be a positive multiple of %d bytes", PageSize)
			}
		case "pattern":
			switch strings.ToLower(v) {
			case "random":
				p.Pattern = PatternRandom
			case "sequential":
				p.Pattern = PatternSequential
			default:
				err = errors.New(`want "random" or "sequential"`)
			}
		case "verify":
			p.VerifyInterval, err = parseInterval(v, MinVerifyInterval)
		case "hb":
			p.HeartbeatInterval, err = parseInterval(v, MinHeartbeatInterval)
		case "seed":
			p.Seed, err = strconv.ParseUint(v, 0, 64)
			if err != nil {
				err = errors.New("want an unsigned integer")
			}
		default:
			return Params{}, fmt.Errorf("workload: unknown key %q (known: dirty, hot, pattern, verify, hb, seed)", k)
		}
		if err != nil {
			return Params{}, fmt.Errorf("workload: %s=%q: %w", k, v, err)
		}
	}
	return p, nil
}

// String renders the parameters in the form ParseParams reads.
func (p Params) String() string {
	hot := "default"
	switch {
	case p.HotAll:
		hot = "all"
	case p.HotSize != 0:
		hot = formatSize(p.HotSize)
	}
	parts := []string{
		"dirty=" + formatSize(p.DirtyRate) + "/s",
	}
	if hot != "default" {
		parts = append(parts, "hot="+hot)
	}
	parts = append(parts,
		"pattern="+p.Pattern.String(),
		"verify="+p.VerifyInterval.String(),
		"hb="+p.HeartbeatInterval.String(),
		"seed="+strconv.FormatUint(p.Seed, 10))
	return strings.Join(parts, ",")
}

// Validate checks ranges (ParseParams output always passes).
func (p Params) Validate() error {
	if p.DirtyRate > MaxDirtyRate {
		return fmt.Errorf("workload: dirty rate %d B/s above the limit of %d", p.DirtyRate, uint64(MaxDirtyRate))
	}
	if p.DirtyRate != 0 && p.DirtyRate < PageSize {
		return fmt.Errorf("workload: dirty rate %d B/s is less than one page per second", p.DirtyRate)
	}
	if p.HotSize%PageSize != 0 {
		return fmt.Errorf("workload: hot set %d bytes is not a multiple of %d", p.HotSize, PageSize)
	}
	if p.Pattern != PatternRandom && p.Pattern != PatternSequential {
		return fmt.Errorf("workload: unknown pattern %d", uint64(p.Pattern))
	}
	if p.VerifyInterval < MinVerifyInterval || p.VerifyInterval > MaxInterval {
		return fmt.Errorf("workload: verify interval %v outside %v..%v", p.VerifyInterval, MinVerifyInterval, MaxInterval)
	}
	if p.HeartbeatInterval < MinHeartbeatInterval || p.HeartbeatInterval > MaxInterval {
		return fmt.Errorf("workload: heartbeat interval %v outside %v..%v", p.HeartbeatInterval, MinHeartbeatInterval, MaxInterval)
	}
	return nil
}

func parseRate(v string) (uint64, error) {
	num, ok := strings.CutSuffix(v, "/s")
	if !ok && v != "0" {
		return 0, errors.New(`want a size per second such as "200M/s"`)
	}
	r, err := parseSize(num)
	if err != nil {
		return 0, err
	}
	if r > MaxDirtyRate {
		return 0, fmt.Errorf("above the limit of %s/s", formatSize(MaxDirtyRate))
	}
	if r != 0 && r < PageSize {
		return 0, fmt.Errorf("less than one %d-byte page per second", PageSize)
	}
	return r, nil
}

// parseSize reads "123", "64K", "256M", "1G", "2T", with optional "B"/"iB"
// after the unit; units are powers of 1024.
func parseSize(v string) (uint64, error) {
	s := strings.TrimSpace(v)
	if s == "" {
		return 0, errors.New("empty size")
	}
	u := strings.ToUpper(s)
	u = strings.TrimSuffix(u, "IB")
	u = strings.TrimSuffix(u, "B")
	mult := uint64(1)
	if n := len(u); n > 0 {
		switch u[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			u = u[:n-1]
		}
	}
	if u == "" || u[0] == '+' || u[0] == '-' {
		return 0, fmt.Errorf("%q is not a size", v)
	}
	n, err := strconv.ParseUint(u, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size", v)
	}
	if n > math.MaxUint64/mult {
		return 0, fmt.Errorf("%q is too large", v)
	}
	return n * mult, nil
}

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

func parseInterval(v string, min time.Duration) (time.Duration, error) {
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		if n > uint64(MaxInterval/time.Second) {
			return 0, fmt.Errorf("longer than %v", MaxInterval)
		}
		d = time.Duration(n) * time.Second
	} else {
		d, err = time.ParseDuration(v)
		if err != nil {
			return 0, errors.New(`want a duration such as "1s" or "250ms"`)
		}
	}
	if d < min || d > MaxInterval {
		return 0, fmt.Errorf("want %v to %v", min, MaxInterval)
	}
	return d, nil
}
