package repository

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// MountInfo is one line of /proc/self/mountinfo (see proc(5)).
type MountInfo struct {
	ID, Parent   int
	Major, Minor uint32
	Root         string // the root of the mount within its file system
	MountPoint   string
	Options      string // per-mount options: ro/rw, noatime, nosuid, ...
	Optional     []string
	FSType       string
	Source       string
	SuperOptions string // per-file-system options
}

// HasOption reports whether the per-mount options include o.
func (m MountInfo) HasOption(o string) bool {
	for _, x := range strings.Split(m.Options, ",") {
		if x == o {
			return true
		}
	}
	return false
}

// ReadMountInfo reads this process's mount table.
func ReadMountInfo() ([]MountInfo, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	mi, err := ParseMountInfo(data)
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	return mi, nil
}

// ParseMountInfo parses the mountinfo format. Octal escapes (\040 for a
// blank, \011, \012, \134) in paths are decoded.
func ParseMountInfo(data []byte) ([]MountInfo, error) {
	var out []MountInfo
	for n, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		f := strings.Fields(string(line))
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 10 || sep < 0 || len(f) < sep+3 {
			return nil, fmt.Errorf("mountinfo line %d: want `id parent major:minor root mountpoint options [optional...] - fstype source superoptions`", n+1)
		}
		var m MountInfo
		var err error
		if m.ID, err = strconv.Atoi(f[0]); err != nil {
			return nil, fmt.Errorf("mountinfo line %d: mount id %q", n+1, clip(f[0], 20))
		}
		if m.Parent, err = strconv.Atoi(f[1]); err != nil {
			return nil, fmt.Errorf("mountinfo line %d: parent id %q", n+1, clip(f[1], 20))
		}
		maj, min, ok := strings.Cut(f[2], ":")
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo line %d: device %q is not major:minor", n+1, clip(f[2], 20))
		}
		m.Major, m.Minor = uint32(ma), uint32(mi)
		m.Root = unescapeMount(f[3])
		m.MountPoint = unescapeMount(f[4])
		m.Options = f[5]
		m.Optional = f[6:sep]
		m.FSType = unescapeMount(f[sep+1])
		m.Source = unescapeMount(f[sep+2])
		if len(f) > sep+3 {
			m.SuperOptions = f[sep+3]
		}
		out = append(out, m)
	}
	return out, nil
}

// unescapeMount decodes the kernel's \ooo escapes.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && isOctal(s, i+1) {
			v, _ := strconv.ParseUint(s[i+1:i+4], 8, 8)
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string, i int) bool {
	if i+3 > len(s) {
		return false
	}
	for _, c := range []byte(s[i : i+3]) {
		if c < '0' || c > '7' {
			return false
		}
	}
	return s[i] <= '3' // fits in a byte
}

// topMount returns the mount visible at path: of the mounts on path, the
// one no other mount on path is stacked on.
func topMount(table []MountInfo, path string) (MountInfo, bool) {
	var on []MountInfo
	for _, m := range table {
		if m.MountPoint == path {
			on = append(on, m)
		}
	}
	for _, m := range on {
		covered := false
		for _, o := range on {
			if o.Parent == m.ID {
				covered = true
				break
			}
		}
		if !covered {
			return m, true
		}
	}
	return MountInfo{}, false
}
