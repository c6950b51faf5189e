package bootloader

import (
	"errors"
	"fmt"
	"io"
)

// device is a read-only window [off, off+size) of the disk image. Every
// read is checked against the window and, when budget is set, against the
// bytes Load may still read (metadata and config files; the kernel and
// initrd are bounded by their own limits instead).
type device struct {
	r      io.ReaderAt
	off    int64
	size   int64
	what   string // "the disk", "partition 2"
	budget *budget
}

// budget counts the bytes Load reads from the image.
type budget struct{ left int64 }

func (b *budget) take(n int) error {
	if b == nil {
		return nil
	}
	if int64(n) > b.left {
		return fmt.Errorf("read more than %d MiB of metadata from the image; it is corrupt or hostile", maxMetaRead>>20)
	}
	b.left -= int64(n)
	return nil
}

// sub is the window [off, off+size) of d, with d's budget.
func (d *device) sub(off, size int64, what string) *device {
	return &device{r: d.r, off: d.off + off, size: size, what: what, budget: d.budget}
}

// readAt fills p from offset off of the window.
func (d *device) readAt(p []byte, off int64) error {
	if off < 0 || off > d.size || int64(len(p)) > d.size-off {
		return fmt.Errorf("read of %d bytes at offset %d is outside %s (%d bytes)", len(p), off, d.what, d.size)
	}
	if err := d.budget.take(len(p)); err != nil {
		return err
	}
	n, err := d.r.ReadAt(p, d.off+off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %s at offset %d: %w", d.what, off, err)
}

// read returns n bytes at offset off.
func (d *device) read(off int64, n int) ([]byte, error) {
	p := make([]byte, n)
	return p, d.readAt(p, off)
}
