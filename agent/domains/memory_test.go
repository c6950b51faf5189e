package domains

import (
	"strings"
	"testing"
)

// The host of these tests has 1024 MiB, 128 MiB of it reserved: 896 MiB
// for domains.

// halfAndHalf makes domains a and b of 512 MiB each, of which only one
// fits, and starts a.
func halfAndHalf(t *testing.T) (*fakeVMMs, *Manager) {
	t.Helper()
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 1024)
	create(t, m, "a", 512)
	create(t, m, "b", 512)
	if err := m.Start("a"); err != nil {
		t.Fatal(err)
	}
	f.nextStart(t)
	return f, m
}

func TestStartThatDoesNotFitInFreeMemoryIsRefusedAndChangesNothing(t *testing.T) {
	f, m := halfAndHalf(t)
	err := m.Start("b")
	if KindOf(err) != NoResources || !strings.Contains(err.Error(), "it needs 512 MiB, 384 MiB are free for domains") {
		t.Fatalf("start beyond free memory: %v", err)
	}
	f.noStart(t)
	if in := info(t, m, "b"); in.State != "stopped" || in.Reason != "created" || in.LastExit != nil {
		t.Fatalf("refused domain changed: %+v", in)
	}
	if in := info(t, m, "a"); in.State != "running" {
		t.Fatalf("the running domain: %+v", in)
	}
	if got := m.Committed(); got != 512<<20 {
		t.Fatalf("committed %d MiB, want 512", got>>20)
	}
	// Once a stops, b fits.
	if err := m.Destroy("a"); err != nil {
		t.Fatal(err)
	}
	if err := m.Start("b"); err != nil {
		t.Fatalf("start once the memory is free: %v", err)
	}
}

func TestPausedDomainsHoldMemorySuspendedOnesDoNot(t *testing.T) {
	_, m := halfAndHalf(t)
	if err := m.Pause("a"); err != nil {
		t.Fatal(err)
	}
	if err := m.Start("b"); KindOf(err) != NoResources {
		t.Fatalf("start beside a paused domain: %v", err)
	}
	if err := m.Save("a", "/images/a.img"); err != nil {
		t.Fatal(err)
	}
	if err := m.Start("b"); err != nil {
		t.Fatalf("start beside a suspended domain: %v", err)
	}
	// And the suspended one cannot come back while b holds the memory.
	if err := m.Start("a"); KindOf(err) != NoResources {
		t.Fatalf("restore beyond free memory: %v", err)
	}
	if in := info(t, m, "a"); in.State != "suspended" {
		t.Fatalf("refused restore changed the domain: %+v", in)
	}
}

func TestCreateOfADomainLargerThanTheHostIsRefused(t *testing.T) {
	m := openFake(t, t.TempDir(), newFakeVMMs(), 1024)
	_, _, err := m.Create([]byte("name = 'big'\nmemory = 1000\n"), "vm.cfg")
	if KindOf(err) != NoResources || !strings.Contains(err.Error(), "896 MiB for domains at most") {
		t.Fatalf("create beyond the host: %v", err)
	}
	if names := m.Names(); len(names) != 0 {
		t.Fatalf("refused create left %v", names)
	}
	_, _, err = m.Create([]byte("name = 'wide'\nmemory = 64\nvcpus = 8\n"), "vm.cfg")
	if KindOf(err) != NoResources {
		t.Fatalf("create with more vCPUs than the host: %v", err)
	}
}
