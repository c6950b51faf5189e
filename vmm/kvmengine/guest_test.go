package kvmengine

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/kvm"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
	"github.com/ovs-agent/ovs-agent/vmm/workload/workloadtest"
)

// buildInfo parses workload.bin.info.
func buildInfo(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("workload.bin.info")
	if err != nil {
		t.Fatal(err)
	}
	info := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("workload.bin.info: bad line %q", line)
		}
		info[k] = v
	}
	return info
}

// TestGuestBinaryUpToDate makes the source the truth: the committed binary
// must be the one build.sh makes from src/. The source hash is checked
// everywhere; the binary is rebuilt and compared byte for byte when the
// same compiler is installed.
func TestGuestBinaryUpToDate(t *testing.T) {
	info := buildInfo(t)
	h := sha256.New()
	for _, f := range []string{"src/abi.h", "src/entry.S", "src/workload.c", "src/guest.ld", "build.sh"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != info["sources"] {
		t.Fatalf("src/ changed since workload.bin was built (sources %s, built from %s): run `go generate ./vmm/kvmengine`", got, info["sources"])
	}
	sum := sha256.Sum256(workloadBin)
	if got := hex.EncodeToString(sum[:]); got != info["binary"] {
		t.Fatalf("workload.bin (%s) is not the binary recorded in workload.bin.info (%s)", got, info["binary"])
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("gcc not installed: source hash checked, binary not rebuilt")
	}
	ver, err := exec.Command(gcc, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if first := strings.SplitN(string(ver), "\n", 2)[0]; first != info["compiler"] {
		t.Skipf("gcc here is %q, workload.bin was built with %q: source hash checked, binary not rebuilt", first, info["compiler"])
	}
	out := filepath.Join(t.TempDir(), "rebuilt.bin")
	cmd := exec.Command("sh", "build.sh", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, msg)
	}
	rebuilt, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rebuilt, workloadBin) {
		t.Fatalf("workload.bin differs from a fresh build of src/ (%d vs %d bytes): run `go generate ./vmm/kvmengine`", len(workloadBin), len(rebuilt))
	}
	if len(workloadBin) > workload.CodeMaxSize {
		t.Fatalf("guest binary of %d bytes exceeds the %d reserved", len(workloadBin), workload.CodeMaxSize)
	}
}

func newTestRAM(t *testing.T, size uint64) *guestmem.RAM {
	t.Helper()
	r, err := guestmem.NewRAM(t.Name(), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func waitDone(t *testing.T, m *Machine) error {
	t.Helper()
	select {
	case <-m.Done():
		return m.Err()
	case <-time.After(10 * time.Second):
		t.Fatal("machine did not stop")
	}
	return nil
}

func TestGuestRejectsBadParameters(t *testing.T) {
	sys := needKVM(t)
	ram := newTestRAM(t, 64<<20)
	con := &workload.Lines{}
	p := workloadtest.Params(t, "hot=4M", ram.Size())
	m, err := New(Config{RAM: ram, Params: p, Console: con, KVM: sys})
	if err != nil {
		t.Fatal(err)
	}
	ram.Bytes()[workload.ParamPageAddr+8] = 9 // version
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	err = waitDone(t, m)
	if err == nil || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("machine with a bad parameter page stopped with %v", err)
	}
	if _, _, err := con.Wait(0, time.Second, func(s string) bool { return s == "WORKLOAD fatal: bad parameter page" }); err != nil {
		t.Fatalf("no fatal line: %v", con.All())
	}
	if err := m.Pause(); err == nil {
		t.Fatal("Pause of a stopped machine succeeded")
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestGuestTripleFault(t *testing.T) {
	sys := needKVM(t)
	ram := newTestRAM(t, 64<<20)
	p := workloadtest.Params(t, "hot=4M", ram.Size())
	m, err := New(Config{RAM: ram, Params: p, KVM: sys})
	if err != nil {
		t.Fatal(err)
	}
	copy(ram.Bytes()[workload.CodeAddr:], []byte{0x0f, 0x0b}) // ud2 at the entry point
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	err = waitDone(t, m)
	if err == nil || !strings.Contains(err.Error(), "triple fault") || !strings.Contains(err.Error(), "rip=0x100000") {
		t.Fatalf("machine running ud2 stopped with %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	sys := needKVM(t)
	if _, err := New(Config{KVM: sys}); err == nil {
		t.Fatal("New without memory succeeded")
	}
	small := newTestRAM(t, 2<<20)
	if _, err := New(Config{RAM: small, KVM: sys}); err == nil {
		t.Fatal("New with 2 MiB of memory succeeded")
	}
	ram := newTestRAM(t, 64<<20)
	p := workloadtest.Params(t, "hot=4M", ram.Size())
	if _, err := New(Config{RAM: ram, Params: p, KVM: sys, SlotSize: 4096}); err == nil {
		t.Fatal("New with a 4 KiB slot size succeeded")
	}
	if _, err := New(Config{RAM: ram, Params: p, KVM: sys, State: []byte("OVSKVMMS")}); err == nil {
		t.Fatal("New with a truncated state succeeded")
	}
	if _, err := New(Config{RAM: ram, Params: p, KVM: sys, State: mustState(t, 2)}); err == nil || !strings.Contains(err.Error(), "2 vCPUs") {
		t.Fatalf("New with a 2-vCPU state: %v", err)
	}
}

func TestSlots(t *testing.T) {
	sys := needKVM(t)
	ram := newTestRAM(t, 5<<30)
	p := workloadtest.Params(t, "hot=4M", ram.Size())
	m, err := New(Config{RAM: ram, Params: p, KVM: sys})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	var want []kvm.MemoryRegion
	base := uint64(0)
	for i, gpa := range []uint64{0, 1 << 30, 2 << 30, 4 << 30, 5 << 30} {
		want = append(want, kvm.MemoryRegion{Slot: uint32(i), GuestPhysAddr: gpa, MemorySize: 1 << 30, UserspaceAddr: base})
		base += 1 << 30
	}
	got := m.MemoryRegions()
	if len(got) != len(want) {
		t.Fatalf("%d slots, want %d: %+v", len(got), len(want), got)
	}
	addr0 := got[0].UserspaceAddr
	for i := range want {
		want[i].UserspaceAddr += addr0
		if got[i] != want[i] {
			t.Errorf("slot %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func mustState(t *testing.T, n int) []byte {
	t.Helper()
	var vs []*kvm.VCPUState
	for i := 0; i < n; i++ {
		vs = append(vs, &kvm.VCPUState{Regs: kvm.Regs{RIP: uint64(i)}})
	}
	b, err := MarshalState(vs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPauseKicksSpinningGuest: a guest that never reaches a doorbell is
// kicked out of KVM_RUN by Pause and Stop.
func TestPauseKicksSpinningGuest(t *testing.T) {
	sys := needKVM(t)
	ram := newTestRAM(t, 64<<20)
	p := workloadtest.Params(t, "hot=4M", ram.Size())
	m, err := New(Config{RAM: ram, Params: p, KVM: sys})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	copy(ram.Bytes()[workload.CodeAddr:], []byte{0xeb, 0xfe}) // jmp $
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	t0 := time.Now()
	if err := m.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Logf("paused a spinning guest in %v", time.Since(t0))
	if k := m.ExitCounts().Kick; k != 1 {
		t.Fatalf("%d kicks, want 1", k)
	}
	b, err := m.SaveState()
	if err != nil {
		t.Fatal(err)
	}
	vs, err := UnmarshalState(b)
	if err != nil || vs[0].Regs.RIP != workload.CodeAddr {
		t.Fatalf("state of the spinning guest: rip %#x, %v", vs[0].Regs.RIP, err)
	}
	if err := m.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := m.Err(); err != nil {
		t.Fatalf("stopped with %v", err)
	}
}
