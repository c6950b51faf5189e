package fileaccess

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
)

// ErrOutside is returned for a path that does not resolve inside any root.
var ErrOutside = errors.New("outside the repositories and [agent] file_dirs")

// ErrNotRegular is returned for a path that exists but is not a regular file
// (a FIFO, a device, a socket or a directory) where a file is expected. It
// is boundedfile's refusal, so that one errors.Is answers for both.
var ErrNotRegular = boundedfile.ErrNotRegular

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

// OpenRegular resolves path inside roots and opens the resolved file as
// boundedfile.Open does (without blocking, not through a symlink swapped in
// since), refusing anything but a regular file. Errors name path as the
// caller gave it.
func OpenRegular(roots []string, path string) (*os.File, error) {
	real, err := Resolve(roots, path)
	if err != nil {
		return nil, err
	}
	f, err := boundedfile.Open(real, boundedfile.NoFollow)
	var refused *boundedfile.Error
	if errors.As(err, &refused) {
		refused.Path = path
		return nil, refused
	}
	if err != nil {
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
		return "", true, boundedfile.NotRegular(path, st.Mode())
	}
	return real, true, nil
}
