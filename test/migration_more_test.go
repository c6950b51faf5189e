package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/relocation"
)

// TestMigrationRateCap moves a 64 MiB hot set capped at 8 MB/s and checks
// it arrives intact. The rate achieved against the cap is a figure, not an
// assert: BenchmarkMigrationRateCap reports it (rate/cap).
func TestMigrationRateCap(t *testing.T) {
	src, dst := pair(t, "sim", "sim", "memory_reserve = 0")
	src.call(t, "domain.create", nil, vmcfgText("cap", 128, "dirty=128M/s,hot=64M"))
	src.call(t, "domain.start", nil, "cap")
	src.waitInfo(t, "cap", "the hot set written", func(i domInfo) bool { return i.Written*4096 >= 96<<20 })
	var id string
	src.call(t, "domain.migrate", &id, "cap", dst.Reloc, migrateOpts(map[string]any{"rate": 8}))
	st := waitMigration(t, src, id)
	if st.Phase != "completed" {
		t.Fatalf("capped migration: %+v", st)
	}
	t.Logf("capped at 8 MB/s: %.2f MB/s measured", float64(st.BytesSent)/st.Transfer/1e6)
	verifiesCleanly(t, dst, "cap")
}

// TestMigrationTLS moves a domain over the TLS relocation port, pinning
// the target's certificate.
func TestMigrationTLS(t *testing.T) {
	src := startAgent(t, agentConf{Listen: "127.0.0.2", RelocPort: freePort(t, "127.0.0.2"), Extra: map[string][]string{"agent": {"hypervisor = kvm", "memory_reserve = 0"}}})
	sslPort := freePort(t, "127.0.0.3")
	dst := startAgent(t, agentConf{Listen: "127.0.0.3", RelocPort: freePort(t, "127.0.0.3"), Extra: map[string][]string{
		"agent":      {"hypervisor = kvm", "memory_reserve = 0"},
		"relocation": {"ssl_server = yes", "ssl_port = " + itoa(sslPort)},
	}})
	pemData, err := os.ReadFile(filepath.Join(dst.Dir, "state", "tls", "agent.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemData)
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(block.Bytes)
	src.call(t, "domain.create", nil, vmcfgText("tls1", 128, "dirty=8M/s,hot=32M,verify=200ms"))
	src.call(t, "domain.start", nil, "tls1")
	// A wrong pin is refused before any credential is sent.
	var res checkRes
	src.call(t, "migration.check", &res, "tls1", "127.0.0.3", migrateOpts(map[string]any{"ssl": true, "port": sslPort, "fingerprint": strings.Repeat("ab", 32)}))
	if res.OK || !strings.Contains(strings.Join(res.Problems, " "), "does not match the pinned") {
		t.Fatalf("wrong pin: %q", res.Problems)
	}
	var id string
	src.call(t, "domain.migrate", &id, "tls1", "127.0.0.3", migrateOpts(map[string]any{"live": true, "ssl": true, "port": sslPort, "fingerprint": hex.EncodeToString(sum[:])}))
	if st := waitMigration(t, src, id); st.Phase != "completed" {
		t.Fatalf("TLS migration: %+v", st)
	}
	verifiesCleanly(t, dst, "tls1")
}

// TestSaveRestore saves a running domain to a file, starts it again from
// there, and restores the same image on another agent.
func TestSaveRestore(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			a := domainAgent(t, engine)
			a.call(t, "domain.create", nil, vmcfgText("sv", 128, "dirty=16M/s,hot=32M,verify=200ms"))
			a.call(t, "domain.start", nil, "sv")
			a.waitInfo(t, "sv", "a verification round", func(i domInfo) bool { return i.Rounds >= 1 && i.Written > 1000 })
			img := filepath.Join(t.TempDir(), "sv.img")
			out, code := runCmd(t, "", nil, bin("ovm"), "--url=unix://"+a.Socket, "save", "sv", img)
			if code != 0 || !strings.Contains(out, "suspended") {
				t.Fatalf("ovm save (exit %d): %s", code, out)
			}
			if fi, err := os.Stat(img); err != nil || fi.Size() < 1<<20 {
				t.Fatalf("save image: %v %v", fi, err)
			}
			a.call(t, "domain.start", nil, "sv")
			in := a.info(t, "sv")
			if in.State != "running" || !strings.Contains(in.Reason, "restored from") {
				t.Fatalf("start of a suspended domain: %+v", in)
			}
			verifiesCleanly(t, a, "sv")
			// The same image on a host that never knew the domain.
			b := domainAgent(t, engine)
			out, code = runCmd(t, "", nil, bin("ovm"), "--url=unix://"+b.Socket, "restore", img)
			if code != 0 || !strings.Contains(out, "running") {
				t.Fatalf("ovm restore (exit %d): %s", code, out)
			}
			verifiesCleanly(t, b, "sv")
			// A damaged image is refused and leaves the domain stopped.
			data, _ := os.ReadFile(img)
			data[len(data)/2] ^= 0xff
			bad := filepath.Join(t.TempDir(), "bad.img")
			os.WriteFile(bad, data, 0o600)
			c := domainAgent(t, engine)
			if f := c.fault(t, "domain.restore", bad); !strings.Contains(f.Message, "did not start") {
				t.Fatalf("restore of a damaged image: %v", f)
			}
		})
	}
}

// TestOvmMigrate runs `ovm migrate -l` and checks its final report.
func TestOvmMigrate(t *testing.T) {
	src, dst := pair(t, "kvm", "kvm", "memory_reserve = 0")
	src.call(t, "domain.create", nil, vmcfgText("cli1", 128, "dirty=8M/s,hot=32M,verify=200ms"))
	src.call(t, "domain.start", nil, "cli1")
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte(testPassword+"\n"), 0o600)
	out, code := runCmd(t, "", nil, bin("ovm"), "--url=unix://"+src.Socket, "migrate", "-l", "--target-password-file", pw, "cli1", dst.Reloc)
	if code != 0 || !strings.Contains(out, "migrated cli1 to "+dst.Reloc) || !strings.Contains(out, "downtime") || !strings.Contains(out, "] ") {
		t.Fatalf("ovm migrate -l (exit %d):\n%s", code, out)
	}
	out, code = runCmd(t, "", nil, bin("ovm"), "--url=unix://"+src.Socket, "migrate-status")
	if code != 0 || !strings.Contains(out, "completed") {
		t.Fatalf("ovm migrate-status (exit %d):\n%s", code, out)
	}
	verifiesCleanly(t, dst, "cli1")
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestXendMigrate uses xend's name and signature; the target credentials
// come from the source's [relocation] peer_password_file.
func TestXendMigrate(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "peer-pw")
	os.WriteFile(pw, []byte(testPassword+"\n"), 0o600)
	src := startAgent(t, agentConf{Listen: "127.0.0.2", RelocPort: freePort(t, "127.0.0.2"), Extra: map[string][]string{
		"agent":      {"hypervisor = sim", "memory_reserve = 0"},
		"relocation": {"peer_password_file = " + pw},
	}})
	dstPort := freePort(t, "127.0.0.3")
	dst := startAgent(t, agentConf{Listen: "127.0.0.3", RelocPort: dstPort, Extra: map[string][]string{"agent": {"hypervisor = sim", "memory_reserve = 0"}}})
	src.call(t, "domain.create", nil, vmcfgText("x1", 64, "dirty=4M/s,hot=16M,verify=200ms"))
	src.call(t, "domain.start", nil, "x1")
	var id string
	src.call(t, "xend.domain.migrate", &id, "x1", "127.0.0.3", true, dstPort, 0, false)
	if st := waitMigration(t, src, id); st.Phase != "completed" {
		t.Fatalf("xend.domain.migrate: %+v", st)
	}
	verifiesCleanly(t, dst, "x1")
	if f := src.fault(t, "xend.domain", "x1"); f.Code != 3 {
		t.Fatalf("xend.domain of the moved domain on the source: %v, want xend code 3", f)
	}
}

// TestGarbageRelocationStream authenticates properly, offers a domain,
// then sends garbage instead of a page stream: the target's agent stays
// up and keeps nothing.
func TestGarbageRelocationStream(t *testing.T) {
	dst := startAgent(t, agentConf{Listen: "127.0.0.3", RelocPort: freePort(t, "127.0.0.3"), Extra: map[string][]string{"agent": {"hypervisor = sim", "memory_reserve = 0"}}})
	cfg := vmcfgText("junk", 64, "", "uuid = '5a0b2f8e-1111-4222-8333-944445555666'")
	hello := &relocation.Hello{Op: relocation.OpReceive, Protocol: 1, User: "admin", Password: testPassword, Migration: "00112233445566778899aabbccddeeff",
		Offer: relocation.Offer{Name: "junk", UUID: "5a0b2f8e-1111-4222-8333-944445555666", MemoryMiB: 64, VCPUs: 1, Engine: "sim", Config: cfg}}
	for i, junk := range [][]byte{
		bytes.Repeat([]byte{0xff}, 1<<20),
		[]byte("GET / HTTP/1.0\r\n\r\n"),
		append([]byte("PXS\x01"), bytes.Repeat([]byte{0x7f}, 4096)...),
	} {
		c, wl, err := relocation.Dial(context.Background(), relocation.DialOptions{Addr: dst.Reloc}, hello)
		if err != nil || !wl.OK {
			t.Fatalf("round %d: handshake: %v %+v", i, err, wl)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(junk)
		io.Copy(io.Discard, c) // the target answers Failed or closes
		c.Close()
		nothingOnTarget(t, dst, "junk")
		if dst.Exited() {
			t.Fatal("the target agent died on a garbage stream")
		}
	}
	if err := dst.Unix().Call(context.Background(), "agent.ping", nil); err != nil {
		t.Fatal(err)
	}
}

// TestMigrationChannelRefused: an extra channel of a parallel migration
// passes hosts-allow and authentication like the first, and is attached
// only to a domain that is receiving that very migration.
func TestMigrationChannelRefused(t *testing.T) {
	dst := startAgent(t, agentConf{Listen: "127.0.0.3", RelocPort: freePort(t, "127.0.0.3"), Extra: map[string][]string{"agent": {"hypervisor = sim", "memory_reserve = 0"}}})
	dst.call(t, "domain.create", nil, vmcfgText("busy", 64, ""))
	dst.call(t, "domain.start", nil, "busy")
	for _, tc := range []struct {
		name, password, want string
	}{
		{"nobody", testPassword, "not receiving migration"},
		{"busy", testPassword, "not receiving migration"}, // a running domain, not an incoming one
		{"busy", "wrong", "authentication failed"},
	} {
		hello := &relocation.Hello{Op: relocation.OpReceive, Protocol: 1, User: "admin", Password: tc.password, Migration: "00112233-4455-4677-8899-aabbccddeeff",
			Channel: 1, Channels: 2, Offer: relocation.Offer{Name: tc.name, MemoryMiB: 64, VCPUs: 1, Engine: "sim"}}
		c, wl, err := relocation.Dial(context.Background(), relocation.DialOptions{Addr: dst.Reloc}, hello)
		if c != nil {
			c.Close()
		}
		if err != nil || wl.OK || !strings.Contains(wl.Error, tc.want) {
			t.Fatalf("channel 1 for %s: %v, %+v; want a refusal saying %q", tc.name, err, wl, tc.want)
		}
	}
	if in := dst.info(t, "busy"); in.State != "running" {
		t.Fatalf("busy after the refused channels: %+v", in)
	}
}
