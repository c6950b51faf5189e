package qemu

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ovs-agent/ovs-agent/internal/testguest/records"
)

// The HA tests' evidence, end to end on real QEMU: the test guest's
// recorder (test/guest/recorder.c) learns its domain, host and generation
// from the Spec's fw_cfg files and logs them on a shared raw disk;
// internal/testguest/records reads the log back.

const recordsDomain = "ha,1" // a comma: QEMU's option escaping reaches the guest

// recordsSpec is the test guest writing records to disk as generation gen
// on host.
func recordsSpec(t *testing.T, console *lines, disk string, gen int64, host string) Spec {
	s := guestSpec(t, console, 0)
	s.Name = fmt.Sprintf("records-%d", gen)
	s.Cmdline += " testguest_records=/dev/vda"
	s.Disks = []Disk{{Path: disk, Format: "raw", Shared: true}}
	s.FwCfg = []FwCfg{
		{Name: FwCfgGeneration, Value: fmt.Sprint(gen)},
		{Name: FwCfgHost, Value: host},
		{Name: FwCfgDomain, Value: recordsDomain},
	}
	return s
}

// recordsDisk is an empty sparse raw disk of 16 MiB (32768 records, 27
// minutes of them).
func recordsDisk(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "records.img")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 16<<20); err != nil {
		t.Fatal(err)
	}
	return p
}

// recordsLine is the guest's latest "RECORDS n=" line; it fails on a
// "RECORDS FAILED" line.
func recordsLine(t *testing.T, c *lines) string {
	t.Helper()
	last := ""
	for _, l := range c.all() {
		if strings.HasPrefix(l, "RECORDS FAILED") {
			t.Fatalf("guest console: %s\n%s", l, strings.Join(c.all(), "\n"))
		}
		if strings.HasPrefix(l, "RECORDS n=") {
			last = l
		}
	}
	return last
}

// TestRecordsHandover: a guest killed with SIGKILL as generation 1 on
// host a and started again as generation 2 on host b continues the same
// log, and the log says so; two guests writing the disk at once
// (generations 3 and 4) are reported as two writers.
func TestRecordsHandover(t *testing.T) {
	disk := recordsDisk(t)

	c1 := &lines{}
	m1 := startMachine(t, recordsSpec(t, c1, disk, 1, "a"))
	c1.waitLines(t, m1, "RECORDS n=20 ", 0)
	if l := recordsLine(t, c1); !strings.Contains(l, " gen=1 host=a domain="+recordsDomain+" ") {
		t.Errorf("generation 1 says %q", l)
	}
	m1.Abandon() // kill -9: a power loss for the guest
	if err := waitDone(t, m1, "SIGKILL"); err != nil {
		t.Fatalf("QEMU after SIGKILL: %v", err)
	}
	one, err := records.Verify(disk)
	if err != nil || !slices.Equal(one.Generations(), []int64{1}) || one.Records < 20 {
		t.Fatalf("after generation 1: %v; %v", err, one)
	}

	c2 := &lines{}
	m2 := startMachine(t, recordsSpec(t, c2, disk, 2, "b"))
	c2.waitLines(t, m2, "RECORDS n=20 ", 0)
	if l := recordsLine(t, c2); !strings.Contains(l, " gen=2 host=b ") {
		t.Errorf("generation 2 says %q", l)
	}
	if err := m2.Kill(); err != nil {
		t.Fatal(err)
	}
	s, err := records.Verify(disk)
	t.Logf("after generations 1 and 2: %v", s)
	if err != nil {
		t.Fatalf("one writer at a time, yet: %v", err)
	}
	if len(s.Runs) != 2 || s.Domain != recordsDomain {
		t.Fatalf("want generation 1 then 2 of %q: %v", recordsDomain, s)
	}
	a, b := s.Runs[0], s.Runs[1]
	if a.Generation != 1 || a.Host != "a" || b.Generation != 2 || b.Host != "b" {
		t.Errorf("runs %+v, %+v: want generation 1 on a, then 2 on b", a, b)
	}
	if a.Records != one.Records || a.FirstSeq != 1 || b.FirstSector != a.LastSector+1 || b.FirstSeq != a.LastSeq+1 || b.Records < 20 || a.Boot == b.Boot {
		t.Errorf("generation 2 does not continue generation 1's log (%d records after the kill): %+v, %+v", one.Records, a, b)
	}

	// Two writers at once.
	var (
		wg       sync.WaitGroup
		consoles = [2]*lines{{}, {}}
		ms       [2]*Machine
	)
	for i, gen := range []int64{3, 4} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms[i] = startMachine(t, recordsSpec(t, consoles[i], disk, gen, fmt.Sprintf("h%d", gen)))
		}()
	}
	wg.Wait()
	if ms[0] == nil || ms[1] == nil {
		t.FailNow() // startMachine said why
	}
	// Both write (the line after the first record); then each writes its
	// next 20 (the next line) while the other is writing.
	for i := range ms {
		consoles[i].waitLines(t, ms[i], "RECORDS n=", 0)
	}
	for i := range ms {
		consoles[i].waitLines(t, ms[i], "RECORDS n=", consoles[i].count(t, "RECORDS n="))
	}
	for _, m := range ms {
		if err := m.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	s, err = records.Verify(disk)
	t.Logf("after generations 3 and 4 at once: %v\n%v", s, err)
	var e *records.Error
	if !errors.As(err, &e) {
		t.Fatalf("two writers at once not reported: %v", err)
	}
	if e.Sector <= b.LastSector || e.Record == nil || e.Previous == nil || e.Record.Generation < 3 || e.Previous.Generation < 3 {
		t.Errorf("the first violation %v is not between generations 3 and 4 after sector %d", e, b.LastSector)
	}
	older := 0
	for _, v := range s.Violations {
		if errors.Is(v, records.ErrGeneration) && v.Record.Generation == 3 && v.Previous.Generation == 4 {
			older++
		}
	}
	if older == 0 {
		t.Errorf("no record of generation 3 after one of 4 among %d violations: %v", len(s.Violations), s.Violations)
	}
	if !slices.Equal(s.Generations()[:2], []int64{1, 2}) {
		t.Errorf("the log no longer starts with generations 1 and 2: %v", s)
	}
}

// TestRecordsKeepEvidence: a sector that is neither empty nor a record
// where the log ends (damage, or another program's data) stops the
// recorder; it never writes over it, so the disk still shows what it
// found.
func TestRecordsKeepEvidence(t *testing.T) {
	disk := recordsDisk(t)
	first, err := records.Encode(records.Record{Generation: 1, Host: "a", Boot: "b", Sequence: 1, Domain: recordsDomain})
	if err != nil {
		t.Fatal(err)
	}
	junk := []byte(strings.Repeat("not a record ", 40))[:records.SectorSize]
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt(append(first, junk...), 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}

	c := &lines{}
	m := startMachine(t, recordsSpec(t, c, disk, 2, "b"))
	c.waitLines(t, m, "RECORDS FAILED", 0)
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	var failed string
	for _, l := range c.all() {
		if strings.HasPrefix(l, "RECORDS") {
			failed = l
			break
		}
	}
	if failed != "RECORDS FAILED sector=1 is neither empty nor a record: stopping" {
		t.Errorf("the recorder's first RECORDS line is %q, want its refusal of sector 1", failed)
	}
	after, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, after) {
		t.Error("the recorder changed the disk")
	}
	s, err := records.Verify(disk)
	if !errors.Is(err, records.ErrInvalid) || s.Records != 1 || s.End != 1 {
		t.Errorf("Verify: %v; %v; want one record and sector 1 invalid", s, err)
	}
}
