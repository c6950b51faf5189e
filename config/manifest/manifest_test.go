package manifest

import (
	"strings"
	"testing"
	"time"
)

const uuid = "3f2a9c1e-0b7d-4e55-9a21-6c8d0e4f1a2b"
const repo = "0004fb00-0001-0000-0000-00000000abcd"

func sample() *Manifest {
	return &Manifest{
		Version: Version, Name: "web1", UUID: uuid, DetachedAt: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
		DetachedFrom: "hostA", AgentVersion: "dev",
		Config:     "name = 'web1'\nuuid = '" + uuid + "'\nmemory = 256\ndisk = ['file:/OVS/x/running_pool/web1/System.img,xvda,w']\n",
		Folder:     "running_pool/web1",
		Repository: repo,
		Disks:      []Disk{{Device: "xvda", Path: "running_pool/web1/System.img", Repository: repo, Size: 1 << 30, Digest: "sha256-blocks:" + strings.Repeat("ab", 32)}},
		Requires:   Requires{Engine: "kvm", MemoryMiB: 256, VCPUs: 1, Bridges: []string{"xenbr0"}},
	}
}

func TestRoundTrip(t *testing.T) {
	data, err := sample().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse("m", data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "web1" || len(m.Disks) != 1 || m.Disks[0].Size != 1<<30 {
		t.Errorf("round trip: %+v", m)
	}
}

func TestRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(m *Manifest)
		want string
	}{
		{"absolute disk path", func(m *Manifest) { m.Disks[0].Path = "/etc/shadow" }, "not a clean path"},
		{"escaping disk path", func(m *Manifest) { m.Disks[0].Path = "running_pool/../../etc/shadow" }, "not a clean path"},
		{"dotdot folder", func(m *Manifest) { m.Folder = ".." }, "not a clean path"},
		{"unclean path", func(m *Manifest) { m.Disks[0].Path = "running_pool//web1/System.img" }, "not a clean path"},
		{"version", func(m *Manifest) { m.Version = 2 }, "version 2"},
		{"bad uuid", func(m *Manifest) { m.UUID = "nope" }, "not a UUID"},
		{"config name mismatch", func(m *Manifest) { m.Name = "web2" }, "names the domain"},
		{"config uuid mismatch", func(m *Manifest) { m.UUID = repo }, "config has uuid"},
		{"bad config", func(m *Manifest) { m.Config = "name = (" }, "config:"},
		{"digest", func(m *Manifest) { m.Disks[0].Digest = "md5:00" }, "digest"},
		{"bridge", func(m *Manifest) { m.Requires.Bridges = []string{"br0; rm -rf /"} }, "interface name"},
		{"duplicate disk", func(m *Manifest) { m.Disks = append(m.Disks, m.Disks[0]) }, "twice"},
		{"no memory", func(m *Manifest) { m.Requires.MemoryMiB = 0 }, "positive"},
	} {
		m := sample()
		c.edit(m)
		data, _ := m.Marshal()
		_, err := Parse("m", data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", c.name, err, c.want)
		}
	}
	for _, bad := range []string{"", "{", "[]", `{"version":1,"extra":true}`, `{"version":1}{}`, strings.Repeat(" ", MaxSize+1)} {
		if _, err := Parse("m", []byte(bad)); err == nil {
			t.Errorf("Parse(%.20q) accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	good, _ := sample().Marshal()
	f.Add(good)
	f.Add([]byte(`{"version":1,"disks":[{"path":"../x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fuzz", data)
		if err != nil {
			return
		}
		// Whatever parses keeps every path inside its repository.
		for _, d := range m.Disks {
			if CheckPath(d.Path) != nil || strings.HasPrefix(d.Path, "/") || strings.Contains("/"+d.Path+"/", "/../") {
				t.Fatalf("accepted escaping path %q", d.Path)
			}
		}
		if CheckPath(m.Folder) != nil {
			t.Fatalf("accepted escaping folder %q", m.Folder)
		}
		if _, err := m.Marshal(); err != nil {
			t.Fatal(err)
		}
	})
}
