package qemu

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/vmm/qmp"
)

// A save image of the qemu engine is a header of ours followed by QEMU's
// migration stream (a one-pass `migrate` of the stopped guest to the
// file), to the end of the file:
//
//	offset 0   8 bytes   SaveMagic "OVSQSAVE"
//	       8   4 bytes   format version, little endian (SaveVersion)
//	      12   4 bytes   length N of the JSON that follows (at most MaxSaveHeader)
//	      16   4 bytes   CRC-32C of that JSON
//	      20   N bytes   SaveHeader as JSON
//	    20+N             QEMU's stream (it starts with QEMU's own magic "QEVM")
//
// QEMU 7.2 writes and reads an fd: migration at the descriptor's current
// offset (a file's channel is plain read/write), so the header is written
// before `migrate` and read before `migrate-incoming`, and QEMU never
// sees it. The reader trusts nothing: sizes are bounded and checked
// before anything is allocated.
const (
	SaveMagic   = "OVSQSAVE"
	SaveVersion = 1
	// MaxSaveHeader bounds the header's JSON: a vm.cfg (at most
	// vmcfg.MaxFileSize, escaped as JSON up to 6 bytes a byte in the worst
	// case) and a few short fields.
	MaxSaveHeader = 6*vmcfg.MaxFileSize + 4096
	savePrefix    = 20
	qemuMagic     = "QEVM"
	// maxSaveField bounds the short strings of the header.
	maxSaveField = 256
)

// SaveHeader is what a save image says of itself, ahead of QEMU's state.
type SaveHeader struct {
	Config      string `json:"config"`       // the domain's vm.cfg text
	MemoryBytes uint64 `json:"memory_bytes"` // the guest's RAM
	QEMUVersion string `json:"qemu_version"` // of the QEMU that saved it, as "7.2.22"
	Machine     string `json:"machine"`      // its machine type, as "pc-i440fx-7.2"
	// ID names the image in the two-phase commit that follows a
	// migration (the same header precedes QEMU's stream on a migration
	// connection); "" in a save image made without one.
	ID string `json:"id,omitempty"`
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// WriteSaveHeader writes h at w's current position.
func WriteSaveHeader(w io.Writer, h SaveHeader) error {
	if err := h.check(); err != nil {
		return err
	}
	body, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("save image header: %w", err)
	}
	if len(body) > MaxSaveHeader {
		return fmt.Errorf("save image header: %d bytes, over the %d the reader accepts", len(body), MaxSaveHeader)
	}
	var pre [savePrefix]byte
	copy(pre[:], SaveMagic)
	binary.LittleEndian.PutUint32(pre[8:], SaveVersion)
	binary.LittleEndian.PutUint32(pre[12:], uint32(len(body)))
	binary.LittleEndian.PutUint32(pre[16:], crc32.Checksum(body, crc32c))
	if _, err := w.Write(append(pre[:], body...)); err != nil {
		return fmt.Errorf("write the save image header: %w", err)
	}
	return nil
}

// IsSaveImage says whether prefix (the first bytes of a file, at least
// len(SaveMagic)) starts a qemu engine save image.
func IsSaveImage(prefix []byte) bool { return bytes.HasPrefix(prefix, []byte(SaveMagic)) }

// ErrNotSaveImage is wrapped by ReadSaveHeader's error for a file that
// does not start with SaveMagic (a workload engine's image, say).
var ErrNotSaveImage = errors.New("not a qemu engine save image")

// ReadSaveHeader reads the header at r's current position, exactly: r is
// left at the first byte of QEMU's stream. It refuses a header that is
// too large, damaged (its CRC) or of another version.
func ReadSaveHeader(r io.Reader) (SaveHeader, error) {
	var pre [savePrefix]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return SaveHeader{}, fmt.Errorf("read the save image header: %w", unexpected(err))
	}
	if !IsSaveImage(pre[:]) {
		return SaveHeader{}, fmt.Errorf("%w (it starts with %q, want %q)", ErrNotSaveImage, pre[:len(SaveMagic)], SaveMagic)
	}
	if v := binary.LittleEndian.Uint32(pre[8:]); v != SaveVersion {
		return SaveHeader{}, fmt.Errorf("save image format version %d; this ovs-vmm reads version %d", v, SaveVersion)
	}
	n := binary.LittleEndian.Uint32(pre[12:])
	if n == 0 || n > MaxSaveHeader {
		return SaveHeader{}, fmt.Errorf("save image header of %d bytes (1..%d): the file is damaged", n, MaxSaveHeader)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return SaveHeader{}, fmt.Errorf("read the save image header: %w", unexpected(err))
	}
	if crc32.Checksum(body, crc32c) != binary.LittleEndian.Uint32(pre[16:]) {
		return SaveHeader{}, errors.New("save image header: checksum mismatch: the file is damaged")
	}
	var h SaveHeader
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&h); err != nil {
		return SaveHeader{}, fmt.Errorf("save image header: %w", err)
	}
	if d.More() {
		return SaveHeader{}, errors.New("save image header: data after the JSON object")
	}
	return h, h.check()
}

// check bounds what a header may say.
func (h SaveHeader) check() error {
	switch {
	case len(h.Config) > vmcfg.MaxFileSize:
		return fmt.Errorf("save image header: a vm.cfg of %d bytes (at most %d)", len(h.Config), vmcfg.MaxFileSize)
	case h.MemoryBytes == 0:
		return errors.New("save image header: no memory size")
	case len(h.QEMUVersion) > maxSaveField || len(h.Machine) > maxSaveField || len(h.ID) > maxSaveField:
		return fmt.Errorf("save image header: a QEMU version, machine type or ID over %d bytes", maxSaveField)
	}
	return nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Save writes a save image of the guest of the QEMU on c to f, at its
// current position: h, then QEMU's state, in one pass with the guest
// stopped (not live). On success the guest is left paused (postmigrate;
// Resume gives it back); on failure or when ctx ends, it runs again if it
// ran before. progress as MigrateOut's.
func Save(ctx context.Context, c *qmp.Client, f *os.File, h SaveHeader, progress func(Figures)) (Figures, error) {
	st, err := status(c)
	if err != nil {
		return Figures{}, fmt.Errorf("save: %w", err)
	}
	if st.Running {
		if err := command(c, c.Stop); err != nil {
			return Figures{}, fmt.Errorf("save: pause the guest: %w", err)
		}
	}
	fail := func(err error) (Figures, error) {
		if rerr := ensureRunning(c, st.Running); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return Figures{}, err
	}
	if err := WriteSaveHeader(f, h); err != nil {
		return fail(fmt.Errorf("save: %w", err))
	}
	fig, err := migrateOut(ctx, c, f, MigrateOptions{}, progress, st.Running)
	if err != nil {
		return fig, fmt.Errorf("save: %w", err)
	}
	return fig, nil
}

// Restore loads the QEMU stream of a save image into the QEMU on c
// (started with -incoming defer -S), from f's current position: the
// caller has read the header there with ReadSaveHeader (and checked it
// against the domain). It checks QEMU's own magic first, so that a file
// whose header is followed by something else fails with a clear error,
// then returns as MigrateIn: the guest loaded and paused.
func Restore(ctx context.Context, c *qmp.Client, f *os.File) error {
	var magic [len(qemuMagic)]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return fmt.Errorf("restore %s: read QEMU's stream: %w", f.Name(), unexpected(err))
	}
	if string(magic[:]) != qemuMagic {
		return fmt.Errorf("restore %s: after the header comes %q, not QEMU's stream (%q): the file is damaged", f.Name(), magic[:], qemuMagic)
	}
	if _, err := f.Seek(-int64(len(magic)), io.SeekCurrent); err != nil {
		return fmt.Errorf("restore %s: %w", f.Name(), err)
	}
	if err := MigrateIn(ctx, c, f); err != nil {
		return fmt.Errorf("restore %s: %w", f.Name(), err)
	}
	return nil
}
