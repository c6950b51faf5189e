package repository

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ovs-agent/ovs-agent/internal/atomicfile"
)

// Headers written at the top of a configuration file the agent creates.
const (
	repositoriesHeader = "# Storage repositories, one per line: uuid source\n" +
		"# source is an NFS export (host:/path), a block device (/dev/...) or a local directory.\n" +
		"# Managed with ovs-makerepo and ovs-offlinerepo; ovs-agent applies changes as they are saved.\n"
	optionsHeader = "# Mount options of storage repositories, one per line: uuid options\n" +
		"# options are used exactly as written, as by mount -o opt1,opt2,...\n"
)

// appendEntry adds the line `uuid value` to a configuration file,
// creating it (and its directory) with header when missing. Everything
// already in the file is kept as it is.
func appendEntry(path, header, uuid, value string) error {
	data, err := readConfigFile(path)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if data == nil {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
			b.WriteString(header)
		}
	}
	b.Write(data)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "%s %s\n", uuid, value)
	if b.Len() > MaxConfigSize {
		return fmt.Errorf("write %s: the file would be larger than %d bytes", path, MaxConfigSize)
	}
	return atomicfile.WriteFile(path, b.Bytes(), 0o644)
}

// removeEntries deletes every line of a configuration file whose first
// field is uuid (any spelling), keeping all other lines (comments too)
// byte for byte. It reports how many lines it removed; a missing file has
// none.
func removeEntries(path, uuid string) (int, error) {
	data, err := readConfigFile(path)
	if err != nil || data == nil {
		return 0, err
	}
	k := CanonicalUUID(uuid)
	var b bytes.Buffer
	removed := 0
	for _, line := range strings.SplitAfter(string(data), "\n") {
		t := strings.Trim(line, " \t\r\n")
		if t != "" && t[0] != '#' {
			f := strings.Fields(t)
			if CheckUUID(f[0]) == nil && CanonicalUUID(f[0]) == k {
				removed++
				continue
			}
		}
		b.WriteString(line)
	}
	if removed == 0 {
		return 0, nil
	}
	return removed, atomicfile.WriteFile(path, b.Bytes(), 0o644)
}
