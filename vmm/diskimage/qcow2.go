package diskimage

import "io"

// qcow2 header fields (big-endian), QEMU's docs/interop/qcow2.txt.
const (
	qcowV2HeaderLen = 72
	qcowV3HeaderLen = 104
	maxL1Bytes      = 32 << 20 // QEMU's QCOW_MAX_L1_SIZE
	maxBackingName  = 1023

	incompatDirty      = 1 << 0
	incompatCorrupt    = 1 << 1
	incompatDataFile   = 1 << 2
	incompatCompress   = 1 << 3
	incompatExtendedL2 = 1 << 4
	incompatKnown      = incompatDirty | incompatCorrupt | incompatDataFile | incompatCompress | incompatExtendedL2

	extEnd           = 0x00000000
	extBackingFormat = 0xe2792aca
	extCrypto        = 0x0537be77
	extDataFile      = 0x44415441
)

// qcowLayout is what the reader needs of a qcow2 header.
type qcowLayout struct {
	clusterBits uint
	size        int64
	l1Offset    int64
	l1Size      int64
	compression string
	extendedL2  bool
}

// parseQCOW2 checks the qcow2 header of r (size bytes) and fills info.
func parseQCOW2(path string, r io.ReaderAt, size int64, info *Info) error {
	_, err := readQCOW2(path, r, size, info)
	return err
}

func readQCOW2(path string, r io.ReaderAt, fileSize int64, info *Info) (qcowLayout, error) {
	var l qcowLayout
	h := make([]byte, qcowV3HeaderLen+8)
	n, err := r.ReadAt(h, 0)
	if n < qcowV2HeaderLen {
		return l, refuse(path, "qcow2 header truncated (%d bytes of %d): %v", n, qcowV2HeaderLen, err)
	}
	version := be.Uint32(h[4:])
	if version == 1 {
		return l, refuse(path, "qcow (version 1) image: the engine runs raw and qcow2 only; convert it with qemu-img convert -O qcow2 %s NEW.qcow2", path)
	}
	if version != 2 && version != 3 {
		return l, refuse(path, "qcow2 version %d (only 2 and 3 are known)", version)
	}
	info.Format, info.Version = FormatQCOW2, int(version)
	cbits := be.Uint32(h[20:])
	if cbits < 9 || cbits > 21 {
		return l, refuse(path, "qcow2 cluster_bits %d outside 9..21", cbits)
	}
	l.clusterBits = uint(cbits)
	cs := int64(1) << cbits
	info.ClusterSize = cs
	vsize := be.Uint64(h[24:])
	if vsize > MaxVirtualSize {
		return l, refuse(path, "qcow2 virtual size %d bytes beyond the limit of %d", vsize, int64(MaxVirtualSize))
	}
	l.size, info.VirtualSize = int64(vsize), int64(vsize)
	if crypt := be.Uint32(h[32:]); crypt != 0 {
		info.Encrypted = true
		return l, refuse(path, "encrypted qcow2 image (crypt_method %d): not supported; decrypt it with qemu-img convert", crypt)
	}
	if err := qcowL1(path, h, fileSize, &l); err != nil {
		return l, err
	}
	hlen := int64(qcowV2HeaderLen)
	l.compression = "zlib"
	if version == 3 {
		if n < qcowV3HeaderLen {
			return l, refuse(path, "qcow2 v3 header truncated (%d bytes of %d)", n, qcowV3HeaderLen)
		}
		if hlen, err = qcowV3(path, h[:n], cs, info, &l); err != nil {
			return l, err
		}
	}
	info.Compression, info.ExtendedL2 = l.compression, l.extendedL2
	boff, blen := int64(be.Uint64(h[8:])), int64(be.Uint32(h[16:]))
	end := cs
	if boff != 0 {
		if blen > maxBackingName || boff < hlen || boff+blen > cs {
			return l, refuse(path, "qcow2 backing file name (offset %d, %d bytes) outside the first cluster or too long", boff, blen)
		}
		name := make([]byte, blen)
		if _, err := r.ReadAt(name, boff); err != nil {
			return l, refuse(path, "qcow2 backing file name unreadable: %v", err)
		}
		info.BackingFile = string(name)
		if info.BackingFile == "" {
			return l, refuse(path, "qcow2 header names an empty backing file")
		}
		end = boff
	}
	return l, qcowExtensions(path, r, hlen, end, info)
}

// qcowL1 checks the L1 table's place and size against the virtual size.
func qcowL1(path string, h []byte, fileSize int64, l *qcowLayout) error {
	cs := int64(1) << l.clusterBits
	l1Size := int64(be.Uint32(h[36:]))
	l1Off := be.Uint64(h[40:])
	perL2 := cs / 8
	need := (l.size + cs*perL2 - 1) / (cs * perL2)
	if l1Size < need {
		return refuse(path, "qcow2 L1 table of %d entries does not cover the virtual size (%d needed)", l1Size, need)
	}
	if l1Size*8 > maxL1Bytes {
		return refuse(path, "qcow2 L1 table of %d entries beyond QEMU's limit of %d bytes", l1Size, maxL1Bytes)
	}
	if l1Size > 0 && (l1Off == 0 || l1Off%uint64(cs) != 0 || l1Off > uint64(fileSize) || int64(l1Off)+l1Size*8 > fileSize) {
		return refuse(path, "qcow2 L1 table offset %d (%d entries) not cluster-aligned or beyond the end of the file (%d bytes)", l1Off, l1Size, fileSize)
	}
	l.l1Offset, l.l1Size = int64(l1Off), l1Size
	return nil
}

// qcowV3 checks the version-3 fields and returns the header length.
func qcowV3(path string, h []byte, cs int64, info *Info, l *qcowLayout) (int64, error) {
	incompat := be.Uint64(h[72:])
	if unknown := incompat &^ incompatKnown; unknown != 0 {
		return 0, refuse(path, "qcow2 incompatible feature bits %#x unknown to this engine", unknown)
	}
	if incompat&incompatCorrupt != 0 {
		return 0, refuse(path, "qcow2 image marked corrupt; repair it with qemu-img check -r all %s", path)
	}
	if incompat&incompatDataFile != 0 {
		return 0, refuse(path, "qcow2 image with an external data file: not supported (it names another host file); convert it with qemu-img convert -O qcow2")
	}
	info.Dirty = incompat&incompatDirty != 0
	l.extendedL2 = incompat&incompatExtendedL2 != 0
	if order := be.Uint32(h[96:]); order > 6 {
		return 0, refuse(path, "qcow2 refcount_order %d above 6", order)
	}
	hlen := int64(be.Uint32(h[100:]))
	if hlen < qcowV3HeaderLen || hlen > cs || hlen%8 != 0 {
		return 0, refuse(path, "qcow2 header_length %d not a multiple of 8 in %d..%d", hlen, qcowV3HeaderLen, cs)
	}
	if incompat&incompatCompress != 0 {
		if hlen <= qcowV3HeaderLen || len(h) <= qcowV3HeaderLen {
			return 0, refuse(path, "qcow2 compression type bit set but no compression_type field")
		}
		switch h[qcowV3HeaderLen] {
		case 0:
		case 1:
			l.compression = "zstd"
		default:
			return 0, refuse(path, "qcow2 compression type %d unknown", h[qcowV3HeaderLen])
		}
	} else if hlen > qcowV3HeaderLen && len(h) > qcowV3HeaderLen && h[qcowV3HeaderLen] != 0 {
		return 0, refuse(path, "qcow2 compression type %d without its incompatible feature bit", h[qcowV3HeaderLen])
	}
	return hlen, nil
}

// qcowExtensions walks the header extensions in [off, end).
func qcowExtensions(path string, r io.ReaderAt, off, end int64, info *Info) error {
	buf := make([]byte, end-off)
	n, _ := r.ReadAt(buf, off)
	buf = buf[:n]
	for p := 0; p+8 <= len(buf); {
		typ, ln := be.Uint32(buf[p:]), int(be.Uint32(buf[p+4:]))
		p += 8
		if typ == extEnd {
			return nil
		}
		if ln > len(buf)-p {
			return refuse(path, "qcow2 header extension %#x of %d bytes runs past its area", typ, ln)
		}
		data := buf[p : p+ln]
		switch typ {
		case extBackingFormat:
			switch f := Format(data); f {
			case FormatRaw, FormatQCOW2:
				info.BackingFormat = f
			default:
				return refuse(path, "qcow2 backing format %q: the engine runs raw and qcow2 only", data)
			}
		case extCrypto:
			info.Encrypted = true
			return refuse(path, "qcow2 image carries an encryption header: not supported")
		case extDataFile:
			return refuse(path, "qcow2 image names an external data file %q: not supported", data)
		}
		p += (ln + 7) &^ 7
	}
	return nil
}
