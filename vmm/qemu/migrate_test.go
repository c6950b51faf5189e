package qemu

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/vmm/qmp"
	"github.com/ovs-agent/ovs-agent/vmm/ramcheck"
)

// A live migration of the running test guest between two QEMUs over a
// socketpair: the target loads it paused, both ends of the connection
// then carry bytes of ours (the target first: the RAM check, then a
// commit message), and the guest's memory checker goes on on the target
// without a CORRUPT line.
func TestMigrationLeavesTheConnection(t *testing.T) {
	src := migBoot(t, 64)
	src.waitOK(t, 1, "the source's first OK lines")
	dst := migBoot(t, 64, "-incoming", "defer", "-S")
	dst.wantRunState(t, qmp.StatusInMigrate)
	conns, files := connPair(t)

	loaded := make(chan error, 1)
	go func() { loaded <- MigrateIn(context.Background(), dst.qc, files[1]) }()
	var reports []Figures
	f, err := MigrateOut(context.Background(), src.qc, files[0], MigrateOptions{}, func(f Figures) { reports = append(reports, f) })
	if err != nil {
		t.Fatal(err)
	}
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	t.Logf("migrated: %+v (%d reports)", f, len(reports))
	if f.Status != qmp.MigrationCompleted || f.Transferred == 0 || f.Total < 200<<20 || f.Rounds < 1 || f.TotalTime == 0 {
		t.Errorf("final figures %+v", f)
	}
	for i := 1; i < len(reports); i++ {
		a, b := reports[i-1], reports[i]
		if b.Transferred < a.Transferred || b.Rounds < a.Rounds || b.TotalTime < a.TotalTime {
			t.Errorf("progress ran backwards: %+v then %+v", a, b)
		}
	}
	src.wantRunState(t, qmp.StatusPostMigrate)
	dst.wantRunState(t, qmp.StatusPaused)
	for i, c := range conns {
		if flags := fileFlags(t, c); flags&unix.O_NONBLOCK == 0 {
			t.Errorf("connection %d is blocking after the migration (flags %#x): its deadlines would not work", i, flags)
		}
	}
	// What the engine does before the commit: compare the paused source's
	// RAM with the loaded target's over the same connection (the target
	// first) and mend what differs. Plain QEMU on tcg has been seen to
	// leave kernel pages behind here (the target then oopsed).
	res := checkRAM(t, src, dst, conns)
	t.Logf("RAM check: %+v", res)
	exchange(t, conns[0], conns[1], "commit from the source")

	before := dst.okLines(t)
	if err := Resume(dst.qc); err != nil {
		t.Fatal(err)
	}
	dst.waitOK(t, before+2, "OK lines on the target after the migration")
}

// checkRAM runs ramcheck between the paused source and the loaded,
// paused target over conns (source end first) and fails the test unless
// both sides say the target's RAM now equals the source's.
func checkRAM(t *testing.T, src, dst *migQEMU, conns [2]net.Conn) ramcheck.Result {
	t.Helper()
	srcRAM, err := ramcheck.Map(src.ram, migRAMBytes, false)
	if err != nil {
		t.Fatal(err)
	}
	defer srcRAM.Close()
	dstRAM, err := ramcheck.Map(dst.ram, migRAMBytes, true)
	if err != nil {
		t.Fatal(err)
	}
	defer dstRAM.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a safety net
	defer cancel()
	type outcome struct {
		res ramcheck.Result
		err error
	}
	target := make(chan outcome, 1)
	go func() {
		res, err := ramcheck.Target(ctx, conns[1], dstRAM.Bytes(), ramcheck.Options{})
		target <- outcome{res, err}
	}()
	res, err := ramcheck.Source(ctx, conns[0], srcRAM.Bytes(), ramcheck.Options{})
	tgt := <-target
	if err != nil || tgt.err != nil {
		t.Fatalf("RAM check: source %v, target %v", err, tgt.err)
	}
	if res.DifferentPages != tgt.res.DifferentPages || res.Chunks != migRAMBytes/ramcheck.DefaultChunkSize {
		t.Fatalf("RAM check: source %+v, target %+v", res, tgt.res)
	}
	return res
}

// exchange writes msg on from and reads it whole on to.
func exchange(t *testing.T, from, to net.Conn, msg string) {
	t.Helper()
	from.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := from.Write([]byte(msg)); err != nil {
		t.Fatalf("write %q after the migration: %v", msg, err)
	}
	to.SetReadDeadline(time.Now().Add(30 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(to, got); err != nil || string(got) != msg {
		t.Fatalf("read %q after the migration: %q, %v", msg, got, err)
	}
}

func fileFlags(t *testing.T, c net.Conn) int {
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	rc.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	if err != nil {
		t.Fatal(err)
	}
	return flags
}

// A migration cancelled mid-way (a slow rate cap keeps it going) leaves
// the guest running on the source, its checker still printing.
func TestMigrationCancelledLeavesTheSourceRunning(t *testing.T) {
	src := migBoot(t, 64)
	src.waitOK(t, 1, "the source's first OK lines")
	dst := migBoot(t, 64, "-incoming", "defer", "-S")
	_, files := connPair(t)
	go MigrateIn(context.Background(), dst.qc, files[1])

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := MigrateOut(ctx, src.qc, files[0], MigrateOptions{RateLimit: 4 << 20}, func(f Figures) {
		if f.Transferred > 8<<20 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled migration: %v, want context.Canceled", err)
	}
	t.Logf("cancelled: %v", err)
	src.wantRunState(t, qmp.StatusRunning)
	before := src.okLines(t)
	src.waitOK(t, before+2, "OK lines on the source after the cancel")
}

// A target that dies mid-way fails the migration with QEMU's reason and
// leaves the guest running on the source.
func TestMigrationFailingTargetLeavesTheSourceRunning(t *testing.T) {
	src := migBoot(t, 64)
	src.waitOK(t, 1, "the source's first OK lines")
	dst := migBoot(t, 64, "-incoming", "defer", "-S")
	conns, files := connPair(t)
	go MigrateIn(context.Background(), dst.qc, files[1])

	_, err := MigrateOut(context.Background(), src.qc, files[0], MigrateOptions{RateLimit: 4 << 20}, func(f Figures) {
		if f.Transferred > 8<<20 && conns[1] != nil {
			// Ours closed, QEMU's dies with it: the connection ends.
			conns[1].Close()
			files[1].Close()
			conns[1] = nil
			dst.cmd.Process.Kill()
		}
	})
	var qe *Error
	if !errors.As(err, &qe) {
		t.Fatalf("migration to a killed target: %v, want a *qemu.Error", err)
	}
	t.Logf("failed: %v", err)
	src.wantRunState(t, qmp.StatusRunning)
	before := src.okLines(t)
	src.waitOK(t, before+2, "OK lines on the source after the failure")
}

// A target fed something that is not a migration stream fails the load
// with an error that says QEMU ended.
func TestMigrateInRefusesGarbage(t *testing.T) {
	dst := migBoot(t, 0, "-incoming", "defer", "-S")
	conns, files := connPair(t)
	go func() {
		conns[0].Write([]byte(strings.Repeat("not a QEMU migration stream\n", 100)))
		conns[0].Close()
	}()
	err := MigrateIn(context.Background(), dst.qc, files[1])
	if err == nil {
		t.Fatal("MigrateIn loaded garbage")
	}
	t.Logf("garbage: %v", err)
}
