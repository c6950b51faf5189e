package diskimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// qemuImg runs qemu-img, failing the test when it is missing or fails.
func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Fatalf("qemu-img not installed (apt-get install qemu-utils): %v", err)
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// wantRefused checks that err is a refusal whose reason contains each part.
func wantRefused(t *testing.T, err error, parts ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v, want a refused image", err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not say %q", err, p)
		}
	}
}

func TestInspectRawAndQCOW2(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.img")
	qemuImg(t, "create", "-q", "-f", "raw", raw, "5M")
	info, err := Inspect(raw)
	if err != nil || info.Format != FormatRaw || info.VirtualSize != 5<<20 {
		t.Fatalf("raw: %+v %v", info, err)
	}
	for _, c := range []struct {
		compat  string
		version int
	}{{"0.10", 2}, {"1.1", 3}} {
		q := filepath.Join(dir, "v"+c.compat+".qcow2")
		qemuImg(t, "create", "-q", "-f", "qcow2", "-o", "compat="+c.compat+",cluster_size=4096", q, "3G")
		info, err := Inspect(q)
		if err != nil {
			t.Fatal(err)
		}
		if info.Format != FormatQCOW2 || info.Version != c.version || info.VirtualSize != 3<<30 || info.ClusterSize != 4096 || info.BackingFile != "" {
			t.Fatalf("qcow2 compat %s: %+v", c.compat, info)
		}
		if _, err := InspectFor(q, "tap:qcow2:"); err != nil {
			t.Fatalf("tap:qcow2: on a qcow2: %v", err)
		}
	}
	z := filepath.Join(dir, "zstd.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", z, "1M")
	if info, err := Inspect(z); err != nil || info.Compression != "zstd" {
		t.Fatalf("zstd qcow2: %+v %v", info, err)
	}
}

func TestInspectDeclaredFormat(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.img")
	qemuImg(t, "create", "-q", "-f", "raw", raw, "1M")
	for _, p := range []string{"tap:qcow2:", "tap:qcow", "TAP:QCOW2"} {
		_, err := InspectFor(raw, p)
		wantRefused(t, err, "declared qcow2", "not qcow2")
	}
	for _, p := range []string{"file:", "phy", "tap:aio:", ""} {
		if info, err := InspectFor(raw, p); err != nil || info.Format != FormatRaw {
			t.Fatalf("%s: %+v %v", p, info, err)
		}
	}
	if _, err := InspectFor(raw, "tap:vmdk:"); err == nil {
		t.Fatal("tap:vmdk: accepted")
	}
}

func TestInspectBackingFile(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	top := filepath.Join(dir, "top.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", base, "8M")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", top)
	_, err := Inspect(top)
	wantRefused(t, err, `backing file "base.qcow2"`, "not allowed")
	info, err := InspectWith(top, Options{AllowBacking: true})
	if err != nil {
		t.Fatal(err)
	}
	if info.BackingFormat != FormatQCOW2 || info.Backing == nil || info.Backing.Path != base || info.VirtualSize != 8<<20 {
		t.Fatalf("top: %+v", info)
	}
	// A backing format that lies about the backing file is refused.
	lie := filepath.Join(dir, "lie.qcow2")
	raw := filepath.Join(dir, "raw.img")
	qemuImg(t, "create", "-q", "-f", "raw", raw, "8M")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", raw, "-u", lie, "8M")
	_, err = InspectWith(lie, Options{AllowBacking: true})
	wantRefused(t, err, "not qcow2")
}

// TestInspectRawCarryingQCOW2Header: a guest wrote a qcow2 header naming
// /etc/shadow into its raw disk. Detection must not follow it.
func TestInspectRawCarryingQCOW2Header(t *testing.T) {
	dir := t.TempDir()
	evil := filepath.Join(dir, "evil.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/etc/shadow", "-u", evil, "1M")
	hdr, err := os.ReadFile(evil)
	if err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "guest.img")
	img := make([]byte, 4<<20)
	copy(img, hdr)
	if err := os.WriteFile(raw, img, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"file:", "tap:aio:", ""} {
		_, err := InspectFor(raw, p)
		wantRefused(t, err, "/etc/shadow", "not allowed")
	}
	// Declared raw, it is raw data and nothing is followed.
	if info, err := InspectWith(raw, Options{Declared: FormatRaw}); err != nil || info.Format != FormatRaw || info.BackingFile != "" {
		t.Fatalf("declared raw: %+v %v", info, err)
	}
}

func TestInspectForeignFormats(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"vmdk", "vdi", "vpc", "vhdx", "qed", "parallels"} {
		p := filepath.Join(dir, "disk."+f)
		qemuImg(t, "create", "-q", "-f", f, p, "4M")
		_, err := Inspect(p)
		name := map[string]string{"vpc": "vpc (vhd)"}[f]
		if name == "" {
			name = f
		}
		wantRefused(t, err, name+" image", "qemu-img convert")
	}
	// qemu-img's LUKS key-derivation benchmark fails on a busy host
	// ("Unable to get accurate CPU usage"): a LUKS header's magic is enough.
	p := filepath.Join(dir, "disk.luks")
	if err := os.WriteFile(p, append([]byte("LUKS\xba\xbe\x00\x02"), make([]byte, 4096)...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Inspect(p)
	wantRefused(t, err, "luks image")
}

// TestInspectEncryptedQCOW2 sets crypt_method in a qcow2 qemu-img made
// (1: AES, 2: LUKS), as qemu-img's LUKS benchmark is unreliable here.
func TestInspectEncryptedQCOW2(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", plain, "4M")
	b, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []uint32{1, 2} {
		binary.BigEndian.PutUint32(b[32:], method)
		p := filepath.Join(dir, "enc.qcow2")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Inspect(p)
		wantRefused(t, err, "encrypted")
	}
}

func TestInspectBadHeaders(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", good, "64M")
	hdr, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func([]byte) []byte
		want string
	}{
		{"truncated", func(b []byte) []byte { return b[:40] }, "truncated"},
		{"v3 truncated", func(b []byte) []byte { return b[:90] }, "truncated"},
		{"version 4", func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 4); return b }, "version 4"},
		{"version 1", func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 1); return b }, "qcow (version 1)"},
		{"cluster bits", func(b []byte) []byte { binary.BigEndian.PutUint32(b[20:], 30); return b }, "cluster_bits 30"},
		{"huge", func(b []byte) []byte { binary.BigEndian.PutUint64(b[24:], 1<<60); return b }, "beyond the limit"},
		{"l1 too small", func(b []byte) []byte { binary.BigEndian.PutUint64(b[24:], 1<<40); return b }, "does not cover"},
		{"l1 past eof", func(b []byte) []byte { binary.BigEndian.PutUint64(b[40:], 1<<30); return b }, "beyond the end"},
		{"corrupt", func(b []byte) []byte { b[79] |= incompatCorrupt; return b }, "marked corrupt"},
		{"data file", func(b []byte) []byte { b[79] |= incompatDataFile; return b }, "external data file"},
		{"unknown feature", func(b []byte) []byte { b[78] |= 1; return b }, "unknown"},
		{"cut file", func(b []byte) []byte { return b[:0x30000] }, "beyond the end"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
			if err := os.WriteFile(p, c.edit(bytes.Clone(hdr)), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Inspect(p)
			wantRefused(t, err, c.want)
		})
	}
}
