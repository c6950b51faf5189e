package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ovs-agent/ovs-agent/config/ini"
	"github.com/ovs-agent/ovs-agent/internal/atomicfile"
)

// Change sets one option, as `ovs-agent configure` asks for it.
type Change struct {
	Section, Key, Value string
}

// NewFileMode is the mode EditFile gives an agent.ini it creates: the file
// holds the password hash.
const NewFileMode fs.FileMode = 0o600

// EditFile applies changes to the agent.ini at path and writes it back,
// keeping its comments and layout (see package ini), and returns the
// configuration the new file means. It refuses, writing nothing, if an
// option is unknown, a value cannot be written or the edited file would
// not pass Parse; that error is a *ValidationError or names the change.
//
// The write is atomic: a temporary file in the same directory with the
// old file's mode and owner is written, synced and renamed over the old
// one, and the directory is synced. A symbolic link at path is followed
// and its target replaced. If path does not exist it is created from
// ExampleINI with mode NewFileMode. If nothing changes, nothing is
// written.
//
// Concurrent edits of the same file are not serialised: the last writer
// wins.
func EditFile(path string, changes []Change) (*Config, error) {
	return editFile(path, changes, readConfigFile)
}

func editFile(path string, changes []Change, read func(string) ([]byte, error)) (*Config, error) {
	target := path
	exists := true
	if t, err := filepath.EvalSymlinks(path); err == nil {
		target = t
	} else if errors.Is(err, fs.ErrNotExist) {
		// A dangling symlink is an error rather than something to replace.
		if _, lerr := os.Lstat(path); lerr == nil {
			return nil, fmt.Errorf("edit %s: %w", path, err)
		}
		exists = false
	} else {
		return nil, fmt.Errorf("edit %s: %w", path, err)
	}

	var (
		old  []byte
		mode = NewFileMode
		uid  = -1
		gid  = -1
	)
	if exists {
		data, err := read(target)
		if err != nil {
			return nil, fmt.Errorf("edit %s: %w", path, err)
		}
		fi, err := os.Stat(target)
		if err != nil {
			return nil, fmt.Errorf("edit %s: %w", path, err)
		}
		old, mode = data, fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	} else {
		old = ExampleINI
	}

	f, err := ini.Parse(target, old)
	if err != nil {
		return nil, fmt.Errorf("edit %s: the file does not parse, fix it by hand first:\n%w", path, err)
	}
	d := Default()
	for _, ch := range changes {
		section, key := strings.ToLower(ch.Section), strings.ToLower(ch.Key)
		if d.option(section, key) == nil {
			return nil, fmt.Errorf("edit %s: [%s] %s: %s", path, section, key, unknownKey(section, key))
		}
		if err := f.Set(section, key, ch.Value); err != nil {
			return nil, fmt.Errorf("edit %s: %w", path, err)
		}
	}
	data := f.Bytes()
	c, err := parse(target, data, read)
	if err != nil {
		return nil, fmt.Errorf("edit %s: not written, the result would be invalid:\n%w", path, err)
	}
	if exists && bytes.Equal(data, old) {
		return c, nil
	}
	if err := atomicfile.WriteFileOwned(target, data, mode, uid, gid); err != nil {
		return nil, fmt.Errorf("edit %s: %w", path, err)
	}
	return c, nil
}
