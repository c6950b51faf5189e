package vmm

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// TestShutdownPressesTheButton: a shutdown of a guest with a power button
// presses it and leaves the guest to power itself off; the VMM ends with
// shutdown only when the guest has.
func TestShutdownPressesTheButton(t *testing.T) {
	eng := newFakeEngine()
	eng.acpi = true
	f := startFake(t, eng)
	f.call(t, control.Request{Op: control.OpShutdown})
	if s := f.state(t); s != control.StateStopping {
		t.Fatalf("after the button: state %s, want stopping", s)
	}
	select {
	case e := <-f.exit:
		t.Fatalf("the VMM ended before the guest powered off: %+v", e)
	case <-time.After(50 * time.Millisecond):
	}
	if eng.pressed != 1 {
		t.Fatalf("button pressed %d times", eng.pressed)
	}
	eng.crash(nil) // the guest powers off
	f.ended(t, control.ExitShutdown)
}

// TestGuestRebootExitsRebooted: a guest that reboots itself ends the VMM
// with reason rebooted (the agent applies on_reboot).
func TestGuestRebootExitsRebooted(t *testing.T) {
	f := startFake(t, newFakeEngine())
	f.eng.crash(ErrGuestRebooted)
	f.ended(t, control.ExitRebooted)
}

// TestConsoleInputAndMemory: typed bytes reach the engine, too many at
// once are refused, and set-memory reaches the balloon.
func TestConsoleInputAndMemory(t *testing.T) {
	f := startFake(t, newFakeEngine())
	f.call(t, control.Request{Op: control.OpConsoleInput, Data: "ls\r"})
	if _, err := f.c.Call(context.Background(), control.Request{Op: control.OpConsoleInput, Data: strings.Repeat("x", control.MaxConsoleInput+1)}); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("oversized input: %v", err)
	}
	typed := func() string {
		f.eng.mu.Lock()
		defer f.eng.mu.Unlock()
		s := string(f.eng.typed)
		f.eng.typed = nil
		return s
	}
	if s := typed(); s != "ls\r" {
		t.Fatalf("typed %q", s)
	}
	// Bytes that are not UTF-8 (a Latin-1 key, a raw 0xff) arrive as
	// they were sent, and Bytes wins over Data.
	raw := []byte{0x03, 0xe9, 0xff, 0x1b, '[', 'A'}
	f.call(t, control.Request{Op: control.OpConsoleInput, Bytes: raw, Data: string(raw)})
	if s := typed(); s != string(raw) {
		t.Fatalf("typed %q, want %q", s, raw)
	}
	info := f.call(t, control.Request{Op: control.OpSetMemory, MemoryBytes: 64 << 20}).Info
	if info.BalloonBytes != 64<<20 || info.Accel != "tcg" || info.VNC == "" {
		t.Fatalf("info after set-memory: %+v", info)
	}
}
