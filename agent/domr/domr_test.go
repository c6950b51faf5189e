package domr

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshServer is a system VM's sshd for the test: it takes the one client
// key and runs each command with /bin/sh -c (scp -t is OpenSSH's own
// scp), in its folder. It stops when the test ends.
func sshServer(t *testing.T, client ssh.PublicKey) netip.AddrPort {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ := ssh.NewSignerFromKey(hostPriv)
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(c ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if c.User() == User && string(k.Marshal()) == string(client.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("not the system VM key")
	}}
	cfg.AddHostKey(hostKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				_, chans, reqs, err := ssh.NewServerConn(nc, cfg)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				for nch := range chans {
					ch, creqs, err := nch.Accept()
					if err != nil {
						continue
					}
					for r := range creqs {
						if r.Type != "exec" {
							r.Reply(false, nil)
							continue
						}
						n := binary.BigEndian.Uint32(r.Payload)
						cmd := exec.Command("/bin/sh", "-c", string(r.Payload[4:4+n]))
						cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
						r.Reply(true, nil)
						status := 0
						if err := cmd.Run(); err != nil {
							var ee *exec.ExitError
							if errors.As(err, &ee) {
								status = ee.ExitCode()
							} else {
								status = 127
							}
						}
						ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(status)))
						ch.Close()
						break
					}
				}
			}()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}

func clientKey(t *testing.T) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := pem.EncodeToMemory(blk)
	s, err := ParseKey(p)
	if err != nil {
		t.Fatal(err)
	}
	return s, p
}

func TestExec(t *testing.T) {
	key, _ := clientKey(t)
	addr := sshServer(t, key.PublicKey())
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
	other, _ := clientKey(t)
	if _, err := Exec(context.Background(), Target{Addr: addr, Key: other, Timeout: 5 * time.Second}, "true"); err == nil {
		t.Fatal("another key logged in")
	}
}

func TestUpload(t *testing.T) {
	key, _ := clientKey(t)
	addr := sshServer(t, key.PublicKey())
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
	_, p := clientKey(t)
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
