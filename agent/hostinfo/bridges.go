package hostinfo

import (
	"os"
	"path/filepath"
	"sort"
)

// SysClassNet is where the kernel lists network interfaces.
const SysClassNet = "/sys/class/net"

// Bridges lists the network bridges of this host (interfaces under dir,
// normally SysClassNet, that have a bridge/ folder), sorted.
func Bridges(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if st, err := os.Stat(filepath.Join(dir, e.Name(), "bridge")); err == nil && st.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}
