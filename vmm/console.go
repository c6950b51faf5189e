package vmm

import (
	"os"
	"sync"
)

// Console keeps the newest bytes of the guest's serial output in a ring and
// appends everything to a log file that is cut back when it grows past
// its limit. Offsets count bytes since the VMM started.
type Console struct {
	mu   sync.Mutex
	ring []byte
	end  int64 // offset just past the newest byte

	file      *os.File
	fileBytes int64
	fileLimit int64
}

// NewConsole makes a ring of size bytes; path, when not empty, is the log
// file, kept under limit bytes (the older half is dropped when it grows
// past it).
func NewConsole(size int, path string, limit int64) (*Console, error) {
	c := &Console{ring: make([]byte, size), fileLimit: limit}
	if path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, err
		}
		c.file = f
	}
	return c, nil
}

// Write appends p (the engines write whole lines).
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	src := p
	if len(src) > len(c.ring) {
		c.end += int64(len(src) - len(c.ring))
		src = src[len(src)-len(c.ring):]
	}
	for len(src) > 0 {
		at := int(c.end % int64(len(c.ring)))
		k := copy(c.ring[at:], src)
		src = src[k:]
		c.end += int64(k)
	}
	if c.file != nil {
		if c.fileLimit > 0 && c.fileBytes+int64(n) > c.fileLimit {
			c.rotate()
		}
		if k, err := c.file.Write(p); err == nil {
			c.fileBytes += int64(k)
		}
	}
	return n, nil
}

// rotate keeps the newest half of the file's limit: the ring already holds
// it, so the file is rewritten from the ring.
func (c *Console) rotate() {
	keep := c.fileLimit / 2
	if keep > int64(len(c.ring)) {
		keep = int64(len(c.ring))
	}
	start, data := c.readLocked(c.end-keep, int(keep))
	_ = start
	if err := c.file.Truncate(0); err != nil {
		return
	}
	if _, err := c.file.Seek(0, 0); err != nil {
		return
	}
	k, _ := c.file.Write(data)
	c.fileBytes = int64(k)
}

// Read returns up to max bytes from offset off. When off has already left
// the ring, the data starts at the oldest byte kept, and start says where.
// A negative off asks for the latest output: the last max bytes (a tail).
func (c *Console) Read(off int64, max int) (start int64, data []byte, next int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start, data = c.readLocked(off, max)
	return start, data, start + int64(len(data))
}

func (c *Console) readLocked(off int64, max int) (int64, []byte) {
	oldest := c.end - int64(len(c.ring))
	if oldest < 0 {
		oldest = 0
	}
	if off < 0 && max > 0 {
		off = c.end - int64(max)
	}
	if off < oldest {
		off = oldest
	}
	if off > c.end {
		off = c.end
	}
	n := c.end - off
	if max > 0 && n > int64(max) {
		n = int64(max)
	}
	out := make([]byte, n)
	for i := int64(0); i < n; {
		at := int((off + i) % int64(len(c.ring)))
		k := copy(out[i:], c.ring[at:])
		if int64(k) > n-i {
			k = int(n - i)
		}
		i += int64(k)
	}
	return off, out
}

// End is the offset just past the newest byte.
func (c *Console) End() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.end
}

// Close closes the log file.
func (c *Console) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.file != nil {
		return c.file.Close()
	}
	return nil
}
