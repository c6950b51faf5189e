package fileaccess

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrOutside is returned for a path that does not resolve inside any root.
var ErrOutside = errors.New("outside the repositories and [agent] file_dirs")

// ErrNotRegular is returned for a path that exists but is not a regular file
// (a FIFO, a device, a socket or a directory) where a file is expected.
var ErrNotRegular = errors.New("not a regular file")

// OutsideError names the path and the rule it broke.
type OutsideError struct{ Path string }

func (e *OutsideError) Error() string {
	return fmt.Sprintf("%s is outside the repositories and [agent] file_dirs; put the file in a repository (under /OVS/<uuid>/...) or list its directory in [agent] file_dirs", e.Path)
}

func (e *OutsideError) Unwrap() error { return ErrOutside }

// Resolve returns the path with every symlink resolved, checked to lie inside
// one of roots (each itself resolved). A path that does not exist yet is
// allowed when its parent directory resolves inside a root; the returned path
// is then the resolved parent joined with the base name.
func Resolve(roots []string, path string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("%s: not an absolute path", path)
	}
	clean := filepath.Clean(path)
	real, err := filepath.EvalSymlinks(clean)
	if errors.Is(err, fs.ErrNotExist) {
		if _, lerr := os.Lstat(clean); lerr == nil {
			// A dangling symlink: never follow it to create a file elsewhere.
			return "", &OutsideError{Path: path}
		}
		parent, perr := filepath.EvalSymlinks(filepath.Dir(clean))
		if perr != nil {
			return "", fmt.Errorf("%s: %w", path, perr)
		}
		real = filepath.Join(parent, filepath.Base(clean))
	} else if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	for _, r := range roots {
		if r == "" || !filepath.IsAbs(r) {
			continue
		}
		rr, err := filepath.EvalSymlinks(filepath.Clean(r))
		if err != nil {
			continue
		}
		if within(rr, real) {
			return real, nil
		}
	}
	return "", &OutsideError{Path: path}
}

func within(root, p string) bool {
	if root == "/" {
		return false // "/" is never a root
	}
	return p == root || strings.HasPrefix(p, root+string(filepath.Separator))
}

// OpenRegular resolves path inside roots and opens it read-only without
// blocking (O_NONBLOCK|O_NOCTTY), refusing anything but a regular file.
func OpenRegular(roots []string, path string) (*os.File, error) {
	real, err := Resolve(roots, path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(real, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, kind(st.Mode()))
	}
	// Reads of a regular file never block; clear O_NONBLOCK for plain use.
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// CheckRegular resolves path inside roots and, if it exists, requires it to
// be a regular file (lstat on the resolved path, never opening it). It
// returns the resolved path and whether it exists.
func CheckRegular(roots []string, path string) (string, bool, error) {
	real, err := Resolve(roots, path)
	if err != nil {
		return "", false, err
	}
	st, err := os.Lstat(real)
	if errors.Is(err, fs.ErrNotExist) {
		return real, false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return "", true, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, kind(st.Mode()))
	}
	return real, true, nil
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}
