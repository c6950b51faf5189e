package boundedfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ErrNotRegular is the refusal of a path that is not a regular file (a
// FIFO, a device, a socket or a directory) where a file is expected.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is the refusal of a file larger than the caller's bound.
var ErrTooLarge = errors.New("larger than the limit")

// Error is a refusal: which file, and why (Err is ErrNotRegular or
// ErrTooLarge).
type Error struct {
	Path string
	Err  error
	Mode fs.FileMode // what the file is, for ErrNotRegular
	Max  int64       // the bound, for ErrTooLarge
}

func (e *Error) Error() string {
	if e.Err == ErrTooLarge {
		return fmt.Sprintf("%s: larger than %d bytes", e.Path, e.Max)
	}
	return fmt.Sprintf("%s: %v (%s)", e.Path, e.Err, Kind(e.Mode))
}

func (e *Error) Unwrap() error { return e.Err }

// NotRegular is the refusal of path, found to be of mode m.
func NotRegular(path string, m fs.FileMode) *Error {
	return &Error{Path: path, Err: ErrNotRegular, Mode: m}
}

// Kind names what a file that is not regular is.
func Kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	}
	return "not a regular file"
}

// Symlinks says whether a path's last component may be a symlink.
type Symlinks bool

const (
	// Follow opens the file a symlink points to.
	Follow Symlinks = true
	// NoFollow refuses a symlink (O_NOFOLLOW), for a path already
	// resolved and checked by the caller.
	NoFollow Symlinks = false
)

const openFlags = os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_NOCTTY

// Open opens path read-only without blocking and returns it if it is a
// regular file; the returned file reads blocking. Errors of the system
// calls name the file (*fs.PathError); a file that is not regular is
// closed again and refused with an *Error.
func Open(path string, s Symlinks) (*os.File, error) {
	flags := openFlags
	if s == NoFollow {
		flags |= syscall.O_NOFOLLOW
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, err
	}
	return regular(f, path)
}

// OpenIn is Open for name inside root (symlinks are followed while they
// stay inside root). Errors name the file as name.
func OpenIn(root *os.Root, name string) (*os.File, error) {
	f, err := root.OpenFile(name, openFlags, 0)
	if err != nil {
		return nil, err
	}
	return regular(f, name)
}

// regular returns f if it is a regular file, switched back to blocking
// reads (which never block on a regular file); otherwise it closes f.
func regular(f *os.File, name string) (*os.File, error) {
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, NotRegular(name, st.Mode())
	}
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

// ReadAll reads r to its end, refusing with an *Error naming name when it
// holds more than max bytes (at most max+1 are read).
func ReadAll(r io.Reader, name string, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, &Error{Path: name, Err: ErrTooLarge, Max: max}
	}
	return data, nil
}

// ReadFile opens path as Open does and reads it whole, at most max bytes.
func ReadFile(path string, max int64, s Symlinks) ([]byte, error) {
	f, err := Open(path, s)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(f, path, max)
}

// ReadFileIn is ReadFile for name inside root.
func ReadFileIn(root *os.Root, name string, max int64) ([]byte, error) {
	f, err := OpenIn(root, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(f, name, max)
}
