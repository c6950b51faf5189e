package sparsecopy

import (
	"context"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Copy copies size bytes of src to dst (new, empty), data ranges only;
// the rest stays a hole. ctx is checked between data ranges.
func Copy(ctx context.Context, dst, src *os.File, size int64) error {
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	var off int64
	for off < size {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := unix.Seek(sfd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break // only a hole is left
		}
		if err != nil {
			// No SEEK_DATA on this file system: copy everything.
			data = off
		}
		hole, err := unix.Seek(sfd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		if hole > size {
			hole = size
		}
		if err := copyRange(dfd, src, dst, data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return dst.Truncate(size)
}

// copyRange copies n bytes at off from src to the same offset of dst.
func copyRange(dfd int, src, dst *os.File, off, n int64) error {
	sfd := int(src.Fd())
	roff, woff := off, off
	for n > 0 {
		chunk := min(n, 1<<30)
		c, err := unix.CopyFileRange(sfd, &roff, dfd, &woff, int(chunk), 0)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			if err == unix.EXDEV || err == unix.ENOSYS || err == unix.EINVAL || err == unix.EOPNOTSUPP {
				return copyPlain(src, dst, roff, n)
			}
			return err
		}
		if c == 0 {
			return io.ErrUnexpectedEOF
		}
		n -= int64(c)
	}
	return nil
}

func copyPlain(src, dst *os.File, off, n int64) error {
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := int(min(n, int64(len(buf))))
		r, err := src.ReadAt(buf[:k], off)
		if r > 0 {
			if _, werr := dst.WriteAt(buf[:r], off); werr != nil {
				return werr
			}
			off += int64(r)
			n -= int64(r)
		}
		if err != nil {
			if err == io.EOF && n > 0 {
				return io.ErrUnexpectedEOF
			}
			if err != io.EOF {
				return err
			}
		}
	}
	return nil
}
