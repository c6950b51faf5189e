// Package testguest finds the project's QEMU test guest for the tests of
// every package that boots it (vmm/qemu, vmm, test): it runs
// test/guest/build.sh (a Debian kernel as a PVH vmlinux and a busybox
// initrd, cached between runs; see its header) once per test binary and
// says which accelerator the guest runs on. It owns nothing else and
// imports only the standard library; only tests import it. Its
// subpackage records reads the log the guest's recorder writes.
package testguest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var built struct {
	sync.Once
	dir, disk string
	err       error
	disked    sync.Once
	diskErr   error
}

// script is the path of one of test/guest's scripts, found from this
// file's place in the repository (tests run in their own package's
// directory).
func script(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "test", "guest", name)
}

// run runs a script of test/guest and returns the path it prints.
func run(name string) (string, string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(script(name))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", stderr.String(), fmt.Errorf("test/guest/%s: %v\n%s", name, err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out)), stderr.String(), nil
}

// Dir builds the test guest, or finds it in its cache, and returns the
// directory holding vmlinux, vmlinuz and initrd.
func Dir(tb testing.TB) string {
	tb.Helper()
	built.Do(func() {
		start := time.Now()
		var log string
		built.dir, log, built.err = run("build.sh")
		if built.err == nil {
			tb.Logf("test guest %s ready in %v\n%s", built.dir, time.Since(start).Round(time.Millisecond), log)
		}
	})
	if built.err != nil {
		tb.Fatal(built.err)
	}
	return built.dir
}

// Disk returns the test guest's bootable disk image (test/guest/disk.sh:
// MBR, ext4, GRUB; cd.iso, a bootable CD-ROM, is beside it), built once;
// tests boot a copy of the disk.
func Disk(tb testing.TB) string {
	tb.Helper()
	Dir(tb)
	built.disked.Do(func() { built.disk, _, built.diskErr = run("disk.sh") })
	if built.diskErr != nil {
		tb.Fatal(built.diskErr)
	}
	return built.disk
}

// Accelerator is Accel without the log line: OVS_TESTGUEST_ACCEL, else tcg.
func Accelerator() string {
	if a := os.Getenv("OVS_TESTGUEST_ACCEL"); a != "" {
		return a
	}
	return "tcg"
}

// Accel is the accelerator the test guest runs on: tcg unless
// OVS_TESTGUEST_ACCEL says otherwise (kvm on a host with hardware
// virtualization); /dev/kvm from the PVM hypervisor makes QEMU crawl. It
// logs which and why, so a run says it did not use KVM.
func Accel(tb testing.TB) string {
	accel, why := Accelerator(), "set by OVS_TESTGUEST_ACCEL"
	if os.Getenv("OVS_TESTGUEST_ACCEL") == "" {
		why = "software emulation, the default for the test guest"
		if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
			why += "; /dev/kvm here is PVM (nested, no VMX/SVM), where QEMU with KVM crawls"
		}
	}
	tb.Logf("QEMU accelerator %s (%s)", accel, why)
	return accel
}
