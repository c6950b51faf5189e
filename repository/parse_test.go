package repository

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/uuid"
)

const (
	u1 = "0004fb00-0003-0000-8b2e-4f5e6a7b8c9d"
	u2 = "6A2B5E0C37B14D0A8B2E4F5E6A7B8C9D"
	u3 = "11111111-2222-4333-8444-555555555555"
)

func TestParseConfig(t *testing.T) {
	type want struct {
		entries  []string // "uuid source options"
		held     []string // canonical uuids
		problems []string // "file:line: substring"
	}
	tests := []struct {
		name        string
		repos, opts string
		want        want
	}{
		{name: "empty"},
		{
			name:  "comments, blanks, CRLF, three kinds of source",
			repos: "# repositories\n\n" + u1 + " nfs.example.com:/export/ovs\r\n   \t\n  # indented comment\n" + u2 + "\t/dev/sdb1\n" + u3 + "  /srv/repo  \n",
			want:  want{entries: []string{u1 + " nfs.example.com:/export/ovs ", u2 + " /dev/sdb1 ", u3 + " /srv/repo "}},
		},
		{
			name:  "options exactly as written, matched in any spelling",
			repos: u1 + " /dev/sdb1\n" + u2 + " host:/x\n",
			opts:  "# options\n" + strings.ToUpper(u1) + "   rw,noatime,context=\"system_u:object_r:nfs_t:s0,c1\"  \n" + "6a2b5e0c-37b1-4d0a-8b2e-4f5e6a7b8c9d ro,vers=3\n",
			want: want{entries: []string{
				u1 + " /dev/sdb1 rw,noatime,context=\"system_u:object_r:nfs_t:s0,c1\"",
				u2 + " host:/x ro,vers=3",
			}},
		},
		{
			name:  "bad lines are skipped, good ones apply",
			repos: u1 + " /dev/sdb1\nnot-a-uuid /dev/sdc\n" + u2 + "\n" + u3 + " relative/path\n",
			want: want{
				entries: []string{u1 + " /dev/sdb1 "},
				held:    []string{CanonicalUUID(u2), CanonicalUUID(u3)},
				problems: []string{
					"repositories:2: UUID \"not-a-uuid\"",
					"repositories:3: no source after the UUID",
					"repositories:4: source \"relative/path\" is neither",
				},
			},
		},
		{
			name:  "text after the source",
			repos: u1 + " /dev/sdb1 # the big disk\n",
			want:  want{held: []string{CanonicalUUID(u1)}, problems: []string{"repositories:1: unexpected \"#\" after the source"}},
		},
		{
			name:  "duplicate UUID holds both lines",
			repos: u1 + " /dev/sdb1\n" + u2 + " /dev/sdc1\n" + strings.ToUpper(u1) + " /dev/sdd1\n",
			want: want{
				entries:  []string{u2 + " /dev/sdc1 "},
				held:     []string{CanonicalUUID(u1)},
				problems: []string{"repositories:3: duplicate UUID " + strings.ToUpper(u1) + " (first on line 1)"},
			},
		},
		{
			name:  "bad options hold the repository",
			repos: u1 + " /dev/sdb1\n" + u2 + " /dev/sdc1\n" + u3 + " /dev/sdd1\n",
			opts:  u1 + " rw, noatime\n" + u2 + "\n" + u3 + " bind,ro\n",
			want: want{
				held: []string{CanonicalUUID(u1), CanonicalUUID(u2), CanonicalUUID(u3)},
				problems: []string{
					"repositories.options:1: mount options \"rw, noatime\" contain",
					"repositories.options:2: no mount options after the UUID",
					"repositories.options:3: mount option \"bind\" is not allowed",
				},
			},
		},
		{
			name:  "duplicate options line",
			repos: u1 + " /dev/sdb1\n",
			opts:  u1 + " ro\n" + u1 + " rw\n",
			want:  want{held: []string{CanonicalUUID(u1)}, problems: []string{"repositories.options:2: duplicate UUID"}},
		},
		{
			name:  "options for an unknown repository are reported, nothing held",
			repos: u1 + " /dev/sdb1\n",
			opts:  u2 + " ro\n",
			want:  want{entries: []string{u1 + " /dev/sdb1 "}, problems: []string{"repositories.options:1: options for " + u2 + ", which repositories does not list"}},
		},
		{
			name:  "unclean paths and bad hosts",
			repos: u1 + " /srv//repo\n" + u2 + " bad_host!:/x\n" + u3 + " host:relative\n",
			want: want{held: []string{CanonicalUUID(u1), CanonicalUUID(u2), CanonicalUUID(u3)}, problems: []string{
				"repositories:1: path \"/srv//repo\" is not clean",
				"repositories:2: source \"bad_host!:/x\": host",
				"repositories:3: source \"host:relative\" is neither",
			}},
		},
		{
			name:  "unterminated quote in options",
			repos: u1 + " /dev/sdb1\n",
			opts:  u1 + " context=\"abc\n",
			want:  want{held: []string{CanonicalUUID(u1)}, problems: []string{"unterminated double quote"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ParseConfig("repositories", []byte(tt.repos), "repositories.options", []byte(tt.opts))
			var got []string
			for _, e := range c.Entries {
				got = append(got, e.UUID+" "+e.Source.Raw+" "+e.Options)
			}
			if !reflect.DeepEqual(got, tt.want.entries) {
				t.Errorf("entries:\n got %q\nwant %q", got, tt.want.entries)
			}
			var held []string
			for k := range c.Held {
				held = append(held, k)
			}
			if len(held) != len(tt.want.held) {
				t.Errorf("held %v, want %v", held, tt.want.held)
			}
			for _, k := range tt.want.held {
				if _, ok := c.Held[k]; !ok {
					t.Errorf("%s not held (held: %v)", k, held)
				}
			}
			if len(c.Problems) != len(tt.want.problems) {
				t.Errorf("problems %v, want %d like %q", c.Problems, len(tt.want.problems), tt.want.problems)
			}
			for i, p := range tt.want.problems {
				if i < len(c.Problems) && !strings.Contains(c.Problems[i].Error(), p) {
					t.Errorf("problem %d = %q, want it to contain %q", i, c.Problems[i].Error(), p)
				}
			}
		})
	}
}

func TestParseConfigLineNumbersAndSourceKinds(t *testing.T) {
	c := ParseConfig("r", []byte("\n\n# c\n"+u1+" [fe80::1]:/ovs\n"+u2+" /dev/mapper/vg-ovs\n"+u3+" /srv/ovs\n"), "o", nil)
	if len(c.Entries) != 3 {
		t.Fatalf("entries %v, problems %v", c.Entries, c.Problems)
	}
	want := []struct {
		line int
		kind SourceKind
		host string
		path string
	}{{4, NFS, "[fe80::1]", "/ovs"}, {5, BlockDevice, "", "/dev/mapper/vg-ovs"}, {6, LocalDir, "", "/srv/ovs"}}
	for i, w := range want {
		e := c.Entries[i]
		if e.Line != w.line || e.Source.Kind != w.kind || e.Source.Host != w.host || e.Source.Path != w.path {
			t.Errorf("entry %d = %+v, want %+v", i, e, w)
		}
	}
	if e, ok := c.Lookup(strings.ToLower(u2)); !ok || e.UUID != u2 {
		t.Errorf("Lookup in another spelling: %v %v", e, ok)
	}
}

func TestParseSource(t *testing.T) {
	tests := []struct {
		in   string
		kind SourceKind
		err  string
	}{
		{"nfs:/x", NFS, ""},
		{"10.0.0.1:/export/ovs", NFS, ""},
		{"[::1]:/export", NFS, ""},
		{"files.example.com:/", NFS, ""},
		{"/dev/sdb1", BlockDevice, ""},
		{"/dev/disk/by-uuid/1234", BlockDevice, ""},
		{"/srv/ovs", LocalDir, ""},
		{"/", LocalDir, ""},
		{"", 0, "empty source"},
		{"/dev", 0, "not a block device"},
		{"/srv/ovs/", 0, "not clean"},
		{"/srv/../etc", 0, "not clean"},
		{"/srv/a b", 0, "blank or control"},
		{"host:", 0, "neither"},
		{"-o:/x", 0, "may not start or end with '-'"},
		{"[::1:/x", 0, "neither"},
		{"[1.2.3.4]:/x", 0, "bracketed IPv6"},
		{":/x", 0, "empty host"},
		{"LABEL=ovs", 0, "neither"},
		{"a..b:/x", 0, "not a valid host"},
		{"relative", 0, "neither"},
		{"/x\x7f", 0, "control"},
	}
	for _, tt := range tests {
		s, err := ParseSource(tt.in)
		if tt.err == "" {
			if err != nil || s.Kind != tt.kind || s.Raw != tt.in {
				t.Errorf("ParseSource(%q) = %+v, %v; want kind %v", tt.in, s, err, tt.kind)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("ParseSource(%q) error = %v, want %q", tt.in, err, tt.err)
		}
	}
}

func TestCheckUUID(t *testing.T) {
	for _, ok := range []string{u1, u2, u3, strings.ToUpper(u1), "0123456789abcdef0123456789ABCDEF"} {
		if err := CheckUUID(ok); err != nil {
			t.Errorf("CheckUUID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "0", "00000000-0000-0000-0000-000000000000", "00000000000000000000000000000000",
		"0004fb00-0003-0000-8b2e-4f5e6a7b8c9", "0004fb00x0003-0000-8b2e-4f5e6a7b8c9d", "g004fb0000030000" + "8b2e4f5e6a7b8c9d",
		"../../../../../../../../../etc/pass", "0004fb00-0003-0000-8b2e-4f5e6a7b8c9d0"} {
		if err := CheckUUID(bad); err == nil {
			t.Errorf("CheckUUID(%q) = nil", bad)
		}
	}
	if CanonicalUUID(u1) != CanonicalUUID(strings.ToUpper(strings.ReplaceAll(u1, "-", ""))) {
		t.Error("CanonicalUUID differs between spellings")
	}
	for range 100 {
		u, err := uuid.New()
		if err != nil || CheckUUID(u) != nil || len(u) != 36 || u[14] != '4' || !strings.ContainsRune("89ab", rune(u[19])) || strings.ToLower(u) != u {
			t.Fatalf("NewUUID = %q, %v", u, err)
		}
	}
}

func TestCheckOptions(t *testing.T) {
	for _, ok := range []string{"ro", "defaults", "rw,noatime,nodiratime", "vers=3,proto=tcp,hard,intr,timeo=600", `context="a,b",ro`, "X-mount.mkdir"} {
		if err := CheckOptions(ok); err != nil {
			t.Errorf("CheckOptions(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "ro noatime", "remount,ro", "rbind", "ro,move", "make-private", "rshared", `context="a`, strings.Repeat("a", MaxOptionsLen+1), "ro\x00"} {
		if err := CheckOptions(bad); err == nil {
			t.Errorf("CheckOptions(%q) = nil", bad)
		}
	}
}

func TestMetadata(t *testing.T) {
	m := Metadata{UUID: u1, Version: 1, Shared: SharedClusterRoot, Description: "cluster root = pool #1 ✓"}
	back, err := ParseMetadata(".ovsrepo", m.Marshal())
	if err != nil || back != m {
		t.Fatalf("round trip: %+v, %v\n%s", back, err, m.Marshal())
	}
	tests := []struct {
		in   string
		want Metadata
		err  string
	}{
		{in: "OVS_REPO_UUID=" + u2 + "\nOVS_REPO_SHARED=1\n", want: Metadata{UUID: u2, Version: 1, Shared: "1"}},
		{in: "# c\r\n\r\nOVS_REPO_UUID = " + u2 + "\r\nOVS_REPO_SHARED=c\r\nOVS_REPO_VERSION=2\r\nOVS_REPO_FUTURE=x\r\nOVS_REPO_DESCRIPTION=  spaced  \r\n", want: Metadata{UUID: u2, Version: 2, Shared: "C", Description: "  spaced  "}},
		{in: "OVS_REPO_SHARED=1\n", err: "no OVS_REPO_UUID"},
		{in: "OVS_REPO_UUID=" + u2 + "\n", err: "no OVS_REPO_SHARED"},
		{in: "OVS_REPO_UUID=" + u2 + "\nOVS_REPO_SHARED=2\n", err: ":2: OVS_REPO_SHARED: shared \"2\""},
		{in: "OVS_REPO_UUID=x\nOVS_REPO_SHARED=1\n", err: ":1: OVS_REPO_UUID"},
		{in: "OVS_REPO_UUID=" + u2 + "\nOVS_REPO_UUID=" + u1 + "\n", err: ":2: OVS_REPO_UUID given again"},
		{in: "garbage\n", err: ":1: want KEY=VALUE"},
		{in: "OVS_REPO_UUID=" + u2 + "\nOVS_REPO_SHARED=1\nOVS_REPO_VERSION=0\n", err: "not a positive integer"},
		{in: "OVS_REPO_UUID=" + u2 + "\nOVS_REPO_SHARED=1\nOVS_REPO_DESCRIPTION=a\x01b\n", err: "non-printable"},
	}
	for _, tt := range tests {
		got, err := ParseMetadata(".ovsrepo", []byte(tt.in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseMetadata(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseMetadata(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	if _, err := ParseShared("1"); err != nil {
		t.Error(err)
	}
	if err := CheckDescription(strings.Repeat("x", MaxDescriptionLen+1)); err == nil {
		t.Error("long description accepted")
	}
	if err := CheckDescription("a\nb"); err == nil {
		t.Error("multi-line description accepted")
	}
}

func TestHeartbeat(t *testing.T) {
	entries, err := ParseHeartbeat([]byte("# hb\nhost-a 1700000000 2023-11-14T22:13:20Z\nhost-b 1700000005\n"))
	if err != nil || len(entries) != 2 || entries[0].HostID != "host-a" || entries[1].Time.Unix() != 1700000005 {
		t.Fatalf("ParseHeartbeat = %v, %v", entries, err)
	}
	for _, bad := range []string{"host-a\n", "host-a x\n", "host-a -1\n", "a 1\na 2\n"} {
		if _, err := ParseHeartbeat([]byte(bad)); err == nil {
			t.Errorf("ParseHeartbeat(%q) accepted", bad)
		}
	}
	dir := t.TempDir()
	t0 := time.Unix(1700000000, 0)
	os.WriteFile(filepath.Join(dir, HeartbeatFile), []byte("host-b 1600000000\ngarbage line\nhost-c 1600000001 x\nhost-c 1600000009\n"), 0o644)
	if err := writeHeartbeat(dir, "host-a", t0); err != nil {
		t.Fatal(err)
	}
	if err := writeHeartbeat(dir, "host-a", t0.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := ReadHeartbeat(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []HeartbeatEntry{
		{"host-b", time.Unix(1600000000, 0).UTC()},
		{"host-c", time.Unix(1600000009, 0).UTC()},
		{"host-a", t0.Add(10 * time.Second).UTC()},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("heartbeat file = %v, want %v", got, want)
	}
	if err := CheckHostID("has space"); err == nil {
		t.Error("CheckHostID accepted a blank")
	}
}

func TestParseMountInfo(t *testing.T) {
	data := "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n" +
		"40 22 7:0 / /OVS rw,noatime - ext4 /dev/loop0 rw\n" +
		"41 40 0:50 /srv/with\\040blank /OVS ro,relatime master:3 shared:9 - ext4 /dev/sdb rw\n" +
		"42 41 7:0 / /OVS/a\\134b rw - ext4 /dev/loop0 rw\n"
	mi, err := ParseMountInfo([]byte(data))
	if err != nil || len(mi) != 4 {
		t.Fatalf("ParseMountInfo = %v, %v", mi, err)
	}
	if mi[2].Root != "/srv/with blank" || !reflect.DeepEqual(mi[2].Optional, []string{"master:3", "shared:9"}) || mi[2].FSType != "ext4" || mi[2].Source != "/dev/sdb" || !mi[2].HasOption("ro") {
		t.Errorf("line 3 = %+v", mi[2])
	}
	if mi[3].MountPoint != `/OVS/a\b` || mi[3].Major != 7 {
		t.Errorf("line 4 = %+v", mi[3])
	}
	if top, ok := topMount(mi, "/OVS"); !ok || top.ID != 41 {
		t.Errorf("topMount(/OVS) = %+v, %v; want the stacked mount 41", top, ok)
	}
	if under := mountsUnder(mi, "/OVS"); !reflect.DeepEqual(under, []string{`/OVS/a\b`}) {
		t.Errorf("mountsUnder = %v", under)
	}
	for _, bad := range []string{"1 2 3\n", "x 1 8:1 / / rw - ext4 a b\n", "1 1 8 / / rw - ext4 a b\n", "1 1 8:1 / / rw ext4 a b c d\n"} {
		if _, err := ParseMountInfo([]byte(bad)); err == nil {
			t.Errorf("ParseMountInfo(%q) accepted", bad)
		}
	}
	if _, err := ReadMountInfo(); err != nil {
		t.Fatal(err)
	}
}

func TestEditEntries(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "etc", "repositories")
	if err := appendEntry(p, repositoriesHeader, u1, "/dev/sdb1"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if !strings.HasPrefix(string(data), repositoriesHeader) || !strings.HasSuffix(string(data), u1+" /dev/sdb1\n") {
		t.Fatalf("new file:\n%s", data)
	}
	// An operator's file without a final newline, with comments.
	os.WriteFile(p, []byte("# mine\n"+u1+" /dev/sdb1\n  # indented\n"+strings.ToUpper(u2)+" host:/x"), 0o640)
	os.Chmod(p, 0o640)
	if err := appendEntry(p, repositoriesHeader, u3, "/srv/x"); err != nil {
		t.Fatal(err)
	}
	n, err := removeEntries(p, strings.ToLower(u2))
	if err != nil || n != 1 {
		t.Fatalf("removeEntries = %d, %v", n, err)
	}
	data, _ = os.ReadFile(p)
	if want := "# mine\n" + u1 + " /dev/sdb1\n  # indented\n" + u3 + " /srv/x\n"; string(data) != want {
		t.Errorf("file:\n%q\nwant\n%q", data, want)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the file's own 0640 kept", st.Mode().Perm())
	}
	if n, err := removeEntries(p, u2); n != 0 || err != nil {
		t.Errorf("removing a missing entry: %d, %v", n, err)
	}
	if n, err := removeEntries(filepath.Join(dir, "none"), u2); n != 0 || err != nil {
		t.Errorf("removing from a missing file: %d, %v", n, err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "etc", ".*tmp*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestNewMAC(t *testing.T) {
	used := map[string]bool{}
	for range 500 {
		mac, err := NewMAC(used)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(mac, "00:16:3e:") || len(mac) != 17 || mac[9] > '7' {
			t.Fatalf("NewMAC = %q: want 00:16:3e:[00-7f]:xx:xx", mac)
		}
		if used[mac] {
			t.Fatalf("NewMAC returned the used address %s", mac)
		}
		used[mac] = true
	}
}
