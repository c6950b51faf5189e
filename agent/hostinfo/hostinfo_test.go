package hostinfo

import (
	"os"
	"path/filepath"
	"testing"
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
