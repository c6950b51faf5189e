package qemu

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/vmm/qmp"
)

// Save the running test guest to a file, restore it into a fresh QEMU:
// the header comes back as written, and the memory checker goes on.
func TestSaveRestore(t *testing.T) {
	src := migBoot(t, 64)
	src.waitOK(t, 1, "the first OK lines")
	path := filepath.Join(t.TempDir(), "guest.save")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	h := SaveHeader{Config: "name = 'g'\nmemory = 256\n", MemoryBytes: 256 << 20, QEMUVersion: "7.2.22", Machine: "pc-i440fx-7.2"}
	fig, err := Save(context.Background(), src.qc, f, h, nil)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	t.Logf("saved %d bytes: %+v", st.Size(), fig)
	src.wantRunState(t, qmp.StatusPostMigrate)

	dst := migBoot(t, 64, "-incoming", "defer", "-S")
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := ReadSaveHeader(r)
	if err != nil || got != h {
		t.Fatalf("header read back: %+v, %v; want %+v", got, err, h)
	}
	if err := Restore(context.Background(), dst.qc, r); err != nil {
		t.Fatal(err)
	}
	dst.wantRunState(t, qmp.StatusPaused)
	before := dst.okLines(t)
	if err := Resume(dst.qc); err != nil {
		t.Fatal(err)
	}
	dst.waitOK(t, before+2, "OK lines after the restore")
}

// A save whose file fails under QEMU (a pipe whose reader goes away
// mid-stream) leaves the guest running, as it was.
func TestSaveFailureResumes(t *testing.T) {
	src := migBoot(t, 16)
	src.waitOK(t, 0, "the first OK line")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	go func() {
		io.CopyN(io.Discard, r, 1<<20)
		r.Close()
	}()
	_, err = Save(context.Background(), src.qc, w, SaveHeader{MemoryBytes: 256 << 20}, nil)
	var qe *Error
	if !errors.As(err, &qe) {
		t.Fatalf("save into a broken pipe: %v, want QEMU's failure", err)
	}
	t.Logf("failed: %v", err)
	src.wantRunState(t, qmp.StatusRunning)
}

func TestSaveHeaderRefusesDamage(t *testing.T) {
	var buf bytes.Buffer
	h := SaveHeader{Config: "name = 'g'\n", MemoryBytes: 1 << 30, QEMUVersion: "7.2.22", Machine: "pc-i440fx-7.2"}
	if err := WriteSaveHeader(&buf, h); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	cases := map[string]func([]byte) []byte{
		"magic":     func(b []byte) []byte { b[0] = 'X'; return b },
		"version":   func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 2); return b },
		"huge":      func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 1<<31); return b },
		"zero":      func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 0); return b },
		"crc":       func(b []byte) []byte { b[len(b)-2] ^= 1; return b },
		"truncated": func(b []byte) []byte { return b[:len(b)-3] },
		"empty":     func([]byte) []byte { return nil },
	}
	for name, damage := range cases {
		b := damage(append([]byte(nil), good...))
		if _, err := ReadSaveHeader(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: a damaged header was accepted", name)
		}
	}
	r := bytes.NewReader(append(append([]byte(nil), good...), "QEVM"...))
	if got, err := ReadSaveHeader(r); err != nil || got != h {
		t.Fatalf("good header: %+v, %v", got, err)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "QEVM" {
		t.Errorf("the reader went past the header: %q left", rest)
	}
	if _, err := ReadSaveHeader(strings.NewReader("PXFRxxxxxxxxxxxxxxxxxxxx")); !errors.Is(err, ErrNotSaveImage) {
		t.Errorf("another format: %v, want ErrNotSaveImage", err)
	}
	if err := WriteSaveHeader(io.Discard, SaveHeader{}); err == nil {
		t.Error("a header without a memory size was written")
	}
}

// FuzzReadSaveHeader: whatever a file holds, ReadSaveHeader returns a
// header or an error, reads no more than the header says, and a header it
// accepts writes back to the same bytes.
func FuzzReadSaveHeader(f *testing.F) {
	var buf bytes.Buffer
	WriteSaveHeader(&buf, SaveHeader{Config: "name = 'g'\n", MemoryBytes: 1 << 30, QEMUVersion: "7.2.22", Machine: "pc"})
	f.Add(buf.Bytes())
	f.Add([]byte(SaveMagic + "\x01\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		h, err := ReadSaveHeader(r)
		if err != nil {
			return
		}
		used := len(b) - r.Len()
		var again bytes.Buffer
		if err := WriteSaveHeader(&again, h); err != nil {
			t.Fatalf("an accepted header does not write back: %v", err)
		}
		if got, err := ReadSaveHeader(&again); err != nil || got != h {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, h)
		}
		if used > savePrefix+MaxSaveHeader {
			t.Fatalf("read %d bytes", used)
		}
	})
}
