package vmm

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem/hosttest"
)

// The qemu engine gives QEMU the memory backing this host chooses: the
// test guest boots on hugetlb, migrates live to an engine on 4k pages
// (the engine's RAM check reading both), is saved there and restored on
// thp, its memory checker going on after each move.
func TestQEMUEngineBackings(t *testing.T) {
	hosttest.ReserveHugePages(t, 128) // the guest's 256 MiB
	hosttest.ShmemTHP(t, "advise")
	src, srcCon := guestEngine(t, "backing")
	src.backing = guestmem.BackingHugeTLB
	if err := src.Boot(); err != nil {
		t.Fatal(err)
	}
	srcCon.waitLines(t, "OK memcheck", 0, src.Done())
	if f := src.Facts(); f.MemoryBacking != "hugetlb" || f.MemoryBackingWhy == "" {
		t.Fatalf("facts %+v, want memory on hugetlb", f)
	}

	dst, dstCon := guestEngine(t, "backing")
	dst.cfg.UUID, dst.vm.UUID = src.cfg.UUID, src.cfg.UUID
	dst.backing = guestmem.Backing4K
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		conns[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	got := make(chan error, 1)
	go func() {
		_, err := dst.Receive(ctx, conns[1], nil, ReceiveOptions{})
		got <- err
	}()
	_, err = src.Send(ctx, conns[:1], SendOptions{Live: true}, func(Progress) {})
	if rerr := <-got; err != nil || rerr != nil {
		t.Fatalf("send %v, receive %v", err, rerr)
	}
	before := dstCon.count("OK memcheck")
	if err := dst.Start(); err != nil {
		t.Fatal(err)
	}
	src.Stop()
	dstCon.waitLines(t, "OK memcheck", before, dst.Done())
	if f := dst.Facts(); f.MemoryBacking != "4k" {
		t.Fatalf("target facts %+v, want memory on 4k", f)
	}

	img, err := os.Create(filepath.Join(t.TempDir(), "backing.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if _, err := dst.Save(ctx, img, SendOptions{}, func(Progress) {}); err != nil {
		t.Fatalf("save: %v", err)
	}
	dst.Stop()
	r, rCon := guestEngine(t, "backing")
	r.cfg.UUID, r.vm.UUID = src.cfg.UUID, src.cfg.UUID
	r.backing = guestmem.BackingTHP
	if _, err := img.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(ctx, img); err != nil {
		t.Fatalf("restore: %v", err)
	}
	before = rCon.count("OK memcheck")
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	rCon.waitLines(t, "OK memcheck", before, r.Done())
	if f := r.Facts(); f.MemoryBacking != "thp" {
		t.Fatalf("restored facts %+v, want memory on thp", f)
	}
}
