package bootloader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

const chunkSize = 1 << 20

// extData is the content of one file: its block runs and size.
type extData struct {
	fs   *extFS
	runs []run
	size int64
}

// open maps in's data, refusing what cannot be read.
func (fs *extFS) open(in *inode) (*extData, error) {
	if err := fs.checkReadable(in); err != nil {
		return nil, err
	}
	if in.size > 1<<62 {
		return nil, fmt.Errorf("inode %d claims %d bytes", in.num, in.size)
	}
	runs, err := fs.runs(in)
	if err != nil {
		return nil, err
	}
	return &extData{fs: fs, runs: runs, size: int64(in.size)}, nil
}

// writeTo streams the file to w through dev (which may have no budget:
// the caller bounded the size).
func (d *extData) writeTo(dev *device, w io.Writer) (int64, error) {
	bs := d.fs.bs
	buf := make([]byte, min(chunkSize, max(d.size, 1)))
	var done int64
	ri := 0
	for done < d.size {
		lblk := uint64(done / bs)
		for ri < len(d.runs) && d.runs[ri].logical+d.runs[ri].n <= lblk {
			ri++
		}
		n := min(int64(len(buf)), d.size-done)
		var p []byte
		switch {
		case ri == len(d.runs) || d.runs[ri].logical > lblk: // a hole
			if ri < len(d.runs) {
				n = min(n, int64(d.runs[ri].logical)*bs-done)
			}
			p = buf[:n]
			clear(p)
		default:
			r := d.runs[ri]
			inRun := done - int64(r.logical)*bs
			n = min(n, int64(r.n)*bs-inRun)
			p = buf[:n]
			if r.zero {
				clear(p)
			} else if err := dev.readAt(p, int64(r.phys)*bs+inRun); err != nil {
				return done, err
			}
		}
		m, err := w.Write(p)
		done += int64(m)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// readAll reads a small file (config, directory, slow symlink) whole,
// refusing one larger than limit.
func (fs *extFS) readAll(in *inode, limit int64, what string) ([]byte, error) {
	if in.size > uint64(limit) {
		return nil, fmt.Errorf("%s is %d bytes, over the limit of %d", what, in.size, limit)
	}
	d, err := fs.open(in)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if _, err := d.writeTo(fs.dev, &b); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return b.Bytes(), nil
}

// lookup finds name in directory dir, reading it linearly (an htree
// directory's index blocks look like empty entries to a linear reader).
func (fs *extFS) lookup(dir *inode, name string) (uint64, bool, error) {
	b, err := fs.readAll(dir, maxDirBytes, fmt.Sprintf("directory inode %d", dir.num))
	if err != nil {
		return 0, false, err
	}
	le := binary.LittleEndian
	for blk := int64(0); blk < int64(len(b)); blk += fs.bs {
		block := b[blk:min(blk+fs.bs, int64(len(b)))]
		for off := 0; off+8 <= len(block); {
			ino, reclen := le.Uint32(block[off:]), int(le.Uint16(block[off+4:]))
			nlen := int(block[off+6])
			if fs.incompat&incompatFiletype == 0 {
				nlen |= int(block[off+7]) << 8
			}
			if reclen < 8 || reclen%4 != 0 || off+reclen > len(block) || 8+nlen > reclen {
				return 0, false, fmt.Errorf("directory inode %d has a corrupt entry at byte %d", dir.num, blk+int64(off))
			}
			if ino != 0 && string(block[off+8:off+8+nlen]) == name {
				return uint64(ino), true, nil
			}
			off += reclen
		}
	}
	return 0, false, nil
}

// symlinkTarget reads a fast (in the inode) or slow (in a block) symlink.
func (fs *extFS) symlinkTarget(in *inode) (string, error) {
	if in.size == 0 || in.size > maxSymlinkLen {
		return "", fmt.Errorf("symlink inode %d has a target of %d bytes", in.num, in.size)
	}
	eaBlocks := uint64(0)
	if in.fileACL != 0 {
		eaBlocks = uint64(fs.bs / 512)
	}
	if in.size < 60 && in.flags&(flagExtents|flagInlineData) == 0 && in.blocks <= eaBlocks {
		return string(in.block[:in.size]), nil
	}
	b, err := fs.readAll(in, maxSymlinkLen, fmt.Sprintf("symlink inode %d", in.num))
	return string(b), err
}

var errNotFound = errors.New("no such file or directory")

// resolve follows path from the filesystem's root, symlinks included
// (absolute targets start again at this filesystem's root).
func (fs *extFS) resolve(path string) (*inode, error) {
	root, err := fs.inode(rootInode)
	if err != nil {
		return nil, err
	}
	todo := splitPath(path)
	cur, hops := root, 0
	for steps := 0; len(todo) > 0; steps++ {
		if steps == maxPathSteps {
			return nil, fmt.Errorf("%s: more than %d path steps (a directory loop?)", path, maxPathSteps)
		}
		name := todo[0]
		todo = todo[1:]
		if cur.typ() != modeDir {
			return nil, fmt.Errorf("%s: a component before %q is not a directory", path, name)
		}
		num, ok, err := fs.lookup(cur, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if !ok {
			return nil, fmt.Errorf("%s: %w", path, errNotFound)
		}
		next, err := fs.inode(num)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if next.typ() != modeSymlink {
			cur = next
			continue
		}
		if hops++; hops > maxSymlinkHops {
			return nil, fmt.Errorf("%s: more than %d symbolic links (a symlink loop?)", path, maxSymlinkHops)
		}
		target, err := fs.symlinkTarget(next)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if strings.HasPrefix(target, "/") {
			cur = root
		}
		todo = append(splitPath(target), todo...)
	}
	return cur, nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}
