package repository

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Headers written at the top of a configuration file the agent creates.
const (
	repositoriesHeader = "# Storage repositories, one per line: uuid source\n" +
		"# source is an NFS export (host:/path), a block device (/dev/...) or a local directory.\n" +
		"# Managed with ovs-makerepo and ovs-offlinerepo; ovs-agent applies changes as they are saved.\n"
	optionsHeader = "# Mount options of storage repositories, one per line: uuid options\n" +
		"# options are used exactly as written, as by mount -o opt1,opt2,...\n"
)

// WriteFileAtomic replaces path with data: it writes a temporary file in
// the same directory, syncs it, renames it over path and syncs the
// directory, so a reader (or a crash) sees the old file or the new one,
// never a part. An existing file's permissions are kept; a new file gets
// perm.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	if st, err := os.Stat(path); err == nil {
		perm = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

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
	return WriteFileAtomic(path, b.Bytes(), 0o644)
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
	return removed, WriteFileAtomic(path, b.Bytes(), 0o644)
}
