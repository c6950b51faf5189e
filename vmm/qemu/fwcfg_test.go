package qemu

import (
	"slices"
	"strings"
	"testing"
)

func TestSpecArgvFwCfg(t *testing.T) {
	s := baseSpec()
	s.FwCfg = []FwCfg{
		{Name: FwCfgGeneration, Value: "-42"},
		{Name: FwCfgHost, Value: "agent-b"},
		{Name: FwCfgDomain, Value: "web,01 x"},
	}
	r, err := s.resolve()
	if err != nil {
		t.Fatal(err)
	}
	argv := r.argv("/m/x.ram", nil)
	var got []string
	for i, a := range argv {
		if a == "-fw_cfg" {
			got = append(got, argv[i+1])
		}
	}
	want := []string{
		"name=opt/org.ovs-agent/generation,string=-42",
		"name=opt/org.ovs-agent/host,string=agent-b",
		"name=opt/org.ovs-agent/domain,string=web,,01 x", // the comma doubled
	}
	if !slices.Equal(got, want) {
		t.Errorf("-fw_cfg\n got %q\nwant %q", got, want)
	}
	if none, _ := baseSpec().resolve(); slices.Contains(none.argv("/m/x.ram", nil), "-fw_cfg") {
		t.Error("-fw_cfg without fw_cfg files")
	}
	// resolve copies the list: the caller's later edits do not reach argv.
	s.FwCfg[1].Value = "changed"
	if strings.Contains(strings.Join(r.argv("/m/x.ram", nil), " "), "changed") {
		t.Error("argv sees an edit of the caller's FwCfg after resolve")
	}
}

func TestSpecResolveRefusesFwCfg(t *testing.T) {
	long := strings.Repeat("x", MaxFwCfgValue+1)
	for name, tc := range map[string]struct {
		files []FwCfg
		want  string
	}{
		"outside the prefix": {[]FwCfg{{Name: "opt/org.other/x", Value: "1"}}, "is not opt/org.ovs-agent/"},
		"prefix alone":       {[]FwCfg{{Name: FwCfgPrefix, Value: "1"}}, "is not opt/org.ovs-agent/"},
		"key with a slash":   {[]FwCfg{{Name: FwCfgPrefix + "a/b", Value: "1"}}, "a key"},
		"key with a comma":   {[]FwCfg{{Name: FwCfgPrefix + "a,b", Value: "1"}}, "a key"},
		"upper case key":     {[]FwCfg{{Name: FwCfgPrefix + "Host", Value: "1"}}, "a key"},
		"name too long":      {[]FwCfg{{Name: FwCfgPrefix + strings.Repeat("k", 40), Value: "1"}}, "at most 55"},
		"twice":              {[]FwCfg{{Name: FwCfgHost, Value: "a"}, {Name: FwCfgHost, Value: "b"}}, "twice"},
		"empty value":        {[]FwCfg{{Name: FwCfgHost}}, "want 1 to 1024"},
		"long value":         {[]FwCfg{{Name: FwCfgHost, Value: long}}, "want 1 to 1024"},
		"newline":            {[]FwCfg{{Name: FwCfgHost, Value: "a\nb"}}, "not printable ASCII (0x0a)"},
		"non-ASCII":          {[]FwCfg{{Name: FwCfgDomain, Value: "caf\u00e9"}}, "not printable ASCII (0xc3)"},
		"generation word":    {[]FwCfg{{Name: FwCfgGeneration, Value: "one"}}, "not a decimal int64"},
		"generation plus":    {[]FwCfg{{Name: FwCfgGeneration, Value: "+1"}}, "not a decimal int64"},
		"generation zeros":   {[]FwCfg{{Name: FwCfgGeneration, Value: "007"}}, "not a decimal int64"},
		"generation big":     {[]FwCfg{{Name: FwCfgGeneration, Value: "9223372036854775808"}}, "not a decimal int64"},
		"too many": {func() []FwCfg {
			var f []FwCfg
			for i := range MaxFwCfgFiles + 1 {
				f = append(f, FwCfg{Name: FwCfgPrefix + "k" + itoa(i), Value: "v"})
			}
			return f
		}(), "more than the 16"},
	} {
		s := baseSpec()
		s.FwCfg = tc.files
		_, err := s.resolve()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
}

func TestSpecArgvSharedDisk(t *testing.T) {
	s := baseSpec()
	s.Disks = []Disk{{Path: "/r/shared.img", Format: "raw", Shared: true}, {Path: "/r/own.img", Format: "raw"}}
	r, err := s.resolve()
	if err != nil {
		t.Fatal(err)
	}
	argv := r.argv("/m/x.ram", []string{"file", "host_device"})
	for i, want := range []string{
		`{"driver":"file","filename":"/r/shared.img","locking":"off","node-name":"disk0-file","read-only":false}`,
		`{"driver":"raw","file":"disk0-file","node-name":"disk0","read-only":false}`,
		`{"driver":"host_device","filename":"/r/own.img","node-name":"disk1-file","read-only":false}`,
	} {
		if got := argAfter(t, argv, "-blockdev", i); got != want {
			t.Errorf("-blockdev %d:\n got %s\nwant %s", i, got, want)
		}
	}
}
