package hostinfo

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReadReal(t *testing.T) {
	info, err := Read(DefaultPaths)
	if err != nil {
		t.Fatal(err)
	}
	if info.CPUCount < 1 || info.MemoryTotal < 64<<20 || info.Kernel == "" || info.Hostname == "" {
		t.Fatalf("implausible host info: %+v", info)
	}
	if _, err := os.Stat("/dev/kvm"); err == nil && !info.KVM {
		t.Errorf("/dev/kvm exists but KVM reported unusable: %s", info.KVMDetail)
	}
}

func TestFixture(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := Paths{
		CPUInfo: write("cpuinfo", "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu vme svm\ncpu MHz\t\t: 2000.5\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\n"),
		MemInfo: write("meminfo", "MemTotal:       2048 kB\nMemFree:        1024 kB\nMemAvailable:   1536 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"),
		Stat:    write("stat", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\nbtime 1700000000\nprocs_running 3\n"),
		LoadAvg: write("loadavg", "0.50 0.25 0.10 1/100 1234\n"),
		Uptime:  write("uptime", "1000.00 1800.00\n"),
		KVM:     filepath.Join(dir, "no-kvm"),
	}
	info, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if info.CPUCount != 2 || info.CPUVendor != "AuthenticAMD" || info.CPUModel != "AMD EPYC" || len(info.CPUFlags) != 3 || info.CPUMHz != 2000.5 {
		t.Fatalf("cpu: %+v", info)
	}
	if info.MemoryTotal != 2048*1024 || info.MemoryAvail != 1536*1024 {
		t.Fatalf("memory: %+v", info)
	}
	if info.KVM || info.KVMDetail == "" {
		t.Fatalf("missing /dev/kvm reported usable: %q", info.KVMDetail)
	}
	s := &Sampler{Paths: p, MinInterval: 1}
	st, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUBusyPercent != 20 || st.Load1 != 0.5 || st.CPUCount != 2 || st.Processes != 3 || st.UptimeSeconds != 1000 {
		t.Fatalf("stats: %+v", st)
	}
	// 100 more busy jiffies out of 200: 50%.
	write("stat", "cpu  150 0 150 900 0 0 0 0 0 0\nbtime 1700000000\n")
	st, err = s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUBusyPercent != 50 {
		t.Fatalf("cpu busy over the interval = %v, want 50", st.CPUBusyPercent)
	}
}

// With a period set, the CPU figure is the last whole window's, the same
// for every caller, and callers do not move the window.
func TestSamplerEvery(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := Paths{
		CPUInfo: write("cpuinfo", "processor\t: 0\n"),
		MemInfo: write("meminfo", "MemTotal: 2048 kB\nMemFree: 1024 kB\nMemAvailable: 1536 kB\n"),
		Stat:    write("stat", "cpu  100 0 100 800 0 0 0 0 0 0\nbtime 1700000000\n"),
		LoadAvg: write("loadavg", "0.50 0.25 0.10 1/100 1234\n"),
		Uptime:  write("uptime", "1000.00 1800.00\n"),
	}
	s := &Sampler{Paths: p}
	defer s.Close()
	for _, d := range []time.Duration{time.Millisecond, 2 * MaxPeriod, -time.Second} {
		if err := s.Every(d); err == nil || s.Period() != 0 {
			t.Fatalf("Every(%v) taken (period %v)", d, s.Period())
		}
	}
	bad := &Sampler{Paths: Paths{Stat: filepath.Join(dir, "missing")}}
	if err := bad.Every(time.Second); err == nil || bad.Period() != 0 {
		t.Fatalf("Every without a readable stat file: %v, period %v", err, bad.Period())
	}
	if err := s.Every(time.Second); err != nil {
		t.Fatal(err)
	}
	if s.Period() != time.Second {
		t.Fatalf("Period = %v", s.Period())
	}
	st, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUBusyPercent != 20 {
		t.Fatalf("before the first window ends: %v%%, want the 20%% since boot", st.CPUBusyPercent)
	}
	// 100 busy jiffies of 200 in the window; a caller's Sample now does
	// not close it.
	write("stat", "cpu  150 0 150 900 0 0 0 0 0 0\nbtime 1700000000\n")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, err = s.Sample(); err != nil {
			t.Fatal(err)
		}
		if st.CPUBusyPercent != 20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.CPUBusyPercent != 50 || st.IntervalSecs < 0.5 || st.IntervalSecs > 5 {
		t.Fatalf("after a window: %v%% over %v s, want 50%% over about 1 s", st.CPUBusyPercent, st.IntervalSecs)
	}
	// callers more than MinInterval apart do not move the figure while
	// a window is open (measured between calls, they would: 100%)
	if err := s.Every(MaxPeriod); err != nil {
		t.Fatal(err)
	}
	if err := s.Every(MaxPeriod); err != nil || s.Period() != MaxPeriod { // the same again: the window goes on
		t.Fatal(err, s.Period())
	}
	write("stat", "cpu  200 0 200 900 0 0 0 0 0 0\nbtime 1700000000\n")
	time.Sleep(1100 * time.Millisecond)
	for i := 0; i < 2; i++ {
		if st, err = s.Sample(); err != nil || st.CPUBusyPercent != 50 {
			t.Fatalf("call %d within an open window: %v%% (%v), want the last window's 50%%", i, st.CPUBusyPercent, err)
		}
		time.Sleep(1100 * time.Millisecond)
	}
	if err := s.Every(time.Second); err != nil {
		t.Fatal(err)
	}
	// nothing more was busy: the next window reads 0, whoever asks meanwhile
	write("stat", "cpu  200 0 200 1100 0 0 0 0 0 0\nbtime 1700000000\n")
	for st.CPUBusyPercent == 50 && time.Now().Before(deadline.Add(10*time.Second)) {
		time.Sleep(50 * time.Millisecond)
		if st, err = s.Sample(); err != nil {
			t.Fatal(err)
		}
	}
	if st.CPUBusyPercent != 0 {
		t.Fatalf("second window: %v%%, want 0", st.CPUBusyPercent)
	}
	s.Close()
	if s.Period() != 0 {
		t.Fatalf("Period after Close = %v", s.Period())
	}
	// between calls again: 100 busy of 100 since the last window
	write("stat", "cpu  250 0 250 1100 0 0 0 0 0 0\nbtime 1700000000\n")
	time.Sleep(time.Second)
	if st, err = s.Sample(); err != nil || st.CPUBusyPercent != 100 {
		t.Fatalf("after Close: %v%% (%v), want 100%% measured since the last window", st.CPUBusyPercent, err)
	}
}
