package domr

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ovs-agent/ovs-agent/internal/sshtest"
)

func TestExec(t *testing.T) {
	key, _ := sshtest.ClientKey(t)
	addr := sshtest.Serve(t, "127.0.0.1:0", key.PublicKey())
	tg := Target{Addr: addr, Key: key, Timeout: 10 * time.Second}
	r, err := Exec(context.Background(), tg, "echo hello; echo oops >&2; exit 3")
	if err != nil || r.RC != 3 || r.Out != "hello\n" || r.Err != "oops\n" {
		t.Fatalf("Exec: %+v %v", r, err)
	}
	if r, err := Exec(context.Background(), tg, "head -c 2000000 /dev/zero"); err != nil || len(r.Out) != MaxOutput {
		t.Fatalf("a large output: %d bytes, %v", len(r.Out), err)
	}
	tg.Timeout = 300 * time.Millisecond
	start := time.Now()
	if _, err := Exec(context.Background(), tg, "sleep 2"); err == nil || !strings.Contains(err.Error(), "did not end") || time.Since(start) > 3*time.Second {
		t.Fatalf("a command past the timeout: %v after %v", err, time.Since(start))
	}
	other, _ := sshtest.ClientKey(t)
	if _, err := Exec(context.Background(), Target{Addr: addr, Key: other, Timeout: 5 * time.Second}, "true"); err == nil {
		t.Fatal("another key logged in")
	}
}

func TestUpload(t *testing.T) {
	key, _ := sshtest.ClientKey(t)
	addr := sshtest.Serve(t, "127.0.0.1:0", key.PublicKey())
	dir := t.TempDir()
	tg := Target{Addr: addr, Key: key, Timeout: 10 * time.Second}
	content := []byte(`{"the": "router's configuration"}` + "\n")
	if err := Upload(context.Background(), tg, dir, "vm_data.json", content); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "vm_data.json")); err != nil || string(got) != string(content) {
		t.Fatalf("uploaded: %q %v", got, err)
	}
	if err := Upload(context.Background(), tg, filepath.Join(dir, "none"), "x", content); err == nil {
		t.Fatal("an upload into a missing folder succeeded")
	}
	for _, name := range []string{"../x", "", "a/b"} {
		if err := Upload(context.Background(), tg, dir, name, content); err == nil {
			t.Errorf("name %q taken", name)
		}
	}
	if err := Upload(context.Background(), tg, "relative", "x", content); err == nil {
		t.Error("a relative folder taken")
	}
}

func TestCheckPort(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := netip.MustParseAddrPort(l.Addr().String())
	if !CheckPort(context.Background(), addr, time.Second) {
		t.Fatal("an open port answered no")
	}
	l.Close()
	if CheckPort(context.Background(), addr, time.Second) {
		t.Fatal("a closed port answered yes")
	}
}

func TestParseKey(t *testing.T) {
	_, p := sshtest.ClientKey(t)
	if _, err := ParseKey(p); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{[]byte("ssh-ed25519 AAAA... a public key"), []byte(strings.Repeat("x", MaxKey+1)), nil} {
		if _, err := ParseKey(bad); !errors.Is(err, ErrKey) {
			t.Errorf("ParseKey(%.20q): %v", bad, err)
		}
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, _ := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if _, err := ParseKey(pem.EncodeToMemory(blk)); !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("an encrypted key: %v", err)
	}
}

func TestPing(t *testing.T) {
	if ok, err := Ping(context.Background(), netip.MustParseAddr("127.0.0.1"), 3); err != nil || !ok {
		t.Fatalf("ping 127.0.0.1: %v %v", ok, err)
	}
	// an address nobody answers: TestOVM3Network (on its control bridge,
	// so that no packet leaves the host)
	if _, err := Ping(context.Background(), netip.MustParseAddr("::1"), 1); err == nil {
		t.Fatal("IPv6 taken")
	}
}
