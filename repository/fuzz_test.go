package repository

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzParseConfig: ParseConfig never panics; what it accepts is valid,
// unique and not held, and written back as files it parses to the same
// entries without a problem.
func FuzzParseConfig(f *testing.F) {
	seeds := [][2]string{
		{"", ""},
		{"# c\n\n" + u1 + " nfs.example.com:/export/ovs\r\n" + u2 + "\t/dev/sdb1\n" + u3 + "  /srv/repo  \n", u1 + " rw,noatime,context=\"a,b\"\n"},
		{u1 + " /dev/sdb1\nnot-a-uuid /dev/sdc\n" + u2 + "\n" + u3 + " relative/path\n", u2 + " ro\n" + u2 + " rw\n"},
		{u1 + " /dev/sdb1\n" + strings.ToUpper(u1) + " /dev/sdd1\n", u1 + " rw, noatime\n"},
		{u1 + " [::1]:/x\n" + u2 + " a-b.c:/\n", u1 + " bind\n" + u3 + " ro\n"},
		{u1 + " /srv//x\n" + u2 + " /dev\n" + u3 + " h:/a/../b", u1 + "\n" + u2 + " context=\"x\n"},
		{"\x00\xff\n" + u1 + " /a b c\n", "\t" + u1 + "\t\tro\t\n"},
	}
	for _, s := range seeds {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, repos, opts []byte) {
		c := ParseConfig("r", repos, "o", opts)
		seen := map[string]bool{}
		var rb, ob bytes.Buffer
		for _, e := range c.Entries {
			k := CanonicalUUID(e.UUID)
			if err := CheckUUID(e.UUID); err != nil {
				t.Fatalf("accepted UUID %q: %v", e.UUID, err)
			}
			if seen[k] {
				t.Fatalf("UUID %s twice in Entries", e.UUID)
			}
			seen[k] = true
			if _, held := c.Held[k]; held {
				t.Fatalf("UUID %s both held and applied", e.UUID)
			}
			if s, err := ParseSource(e.Source.Raw); err != nil || s != e.Source {
				t.Fatalf("accepted source %q: %v", e.Source.Raw, err)
			}
			if e.Options != "" {
				if err := CheckOptions(e.Options); err != nil {
					t.Fatalf("accepted options %q: %v", e.Options, err)
				}
				fmt.Fprintf(&ob, "%s %s\n", e.UUID, e.Options)
			}
			fmt.Fprintf(&rb, "%s %s\n", e.UUID, e.Source.Raw)
		}
		for _, p := range c.Problems {
			if p.Error() == "" || p.Line < 0 {
				t.Fatalf("bad problem %+v", p)
			}
		}
		back := ParseConfig("r", rb.Bytes(), "o", ob.Bytes())
		if len(back.Problems) != 0 {
			t.Fatalf("entries written back have problems: %v\n%s\n%s", back.Problems, rb.Bytes(), ob.Bytes())
		}
		if len(back.Entries) != len(c.Entries) {
			t.Fatalf("written back: %d entries, want %d", len(back.Entries), len(c.Entries))
		}
		for i := range back.Entries {
			a, b := back.Entries[i], c.Entries[i]
			if a.UUID != b.UUID || a.Source != b.Source || a.Options != b.Options {
				t.Fatalf("entry %d written back = %+v, want %+v", i, a, b)
			}
		}
	})
}

// FuzzParseMetadata: a .ovsrepo file comes from storage that other hosts
// write. ParseMetadata never panics, and what it accepts round-trips.
func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte(Metadata{UUID: u1, Shared: "C", Description: "cluster root"}.Marshal()))
	f.Add([]byte("# c\r\n\r\nOVS_REPO_UUID = " + u2 + "\r\nOVS_REPO_SHARED=c\r\nOVS_REPO_VERSION=2\r\nOVS_REPO_FUTURE=x\r\nOVS_REPO_DESCRIPTION=  spaced  \r\n"))
	f.Add([]byte("OVS_REPO_UUID=" + u2 + "\nOVS_REPO_UUID=" + u1 + "\n"))
	f.Add([]byte("OVS_REPO_UUID=" + u2 + "\nOVS_REPO_SHARED=1\nOVS_REPO_DESCRIPTION=é\xff\n"))
	f.Add([]byte("garbage"))
	f.Add([]byte("OVS_REPO_UUID=" + u2 + "\nOVS_REPO_SHARED=1\nOVS_REPO_VERSION=99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMetadata("x", data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		back, err := ParseMetadata("x", m.Marshal())
		if err != nil || back != m {
			t.Fatalf("round trip: %+v -> %+v, %v\n%s", m, back, err, m.Marshal())
		}
	})
}

// FuzzParseHeartbeat: the heartbeat file is written by every server of
// the pool. Parsing never panics, accepted files round-trip, and merging
// our line into any content gives a file that parses.
func FuzzParseHeartbeat(f *testing.F) {
	f.Add([]byte("# hb\nhost-a 1700000000 2023-11-14T22:13:20Z\nhost-b 1700000005\n"))
	f.Add([]byte("host-b 1600000000\ngarbage line\nhost-c 1600000001 x\nhost-c 1600000009\n"))
	f.Add([]byte("host-a -1\n#x\n\n"))
	f.Add([]byte("h 99999999999999\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseHeartbeat(data)
		if err == nil {
			back, err := ParseHeartbeat(marshalHeartbeat(entries))
			if err != nil || !reflect.DeepEqual(back, entries) && len(entries) > 0 {
				t.Fatalf("round trip: %v -> %v, %v", entries, back, err)
			}
		}
		merged := mergeHeartbeat(data, "me", time.Unix(1700000000, 0))
		back, err := ParseHeartbeat(marshalHeartbeat(merged))
		if err != nil || len(back) != len(merged) || back[len(back)-1].HostID != "me" {
			t.Fatalf("merged file: %v, %v", back, err)
		}
	})
}

// FuzzParseMountInfo: never panics on any input.
func FuzzParseMountInfo(f *testing.F) {
	f.Add([]byte("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n41 40 0:50 /srv/with\\040blank /OVS ro,relatime master:3 shared:9 - ext4 /dev/sdb rw\n"))
	f.Add([]byte("1 1 8:1 / / rw - ext4 a\n"))
	f.Add([]byte("1 1 8:1 \\7777 \\1 rw - - - -\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		mi, err := ParseMountInfo(data)
		if err != nil {
			return
		}
		if len(mi) > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d mounts from %d lines", len(mi), bytes.Count(data, []byte("\n"))+1)
		}
		for _, m := range mi {
			topMount(mi, m.MountPoint)
		}
	})
}
