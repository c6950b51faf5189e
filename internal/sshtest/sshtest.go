package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Serve is a system VM's sshd for a test, listening on addr: it takes
// user root with the one client key and runs each command with /bin/sh -c
// (so scp -t is OpenSSH's own scp). It stops when the test ends.
func Serve(t testing.TB, addr string, client ssh.PublicKey) netip.AddrPort {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ := ssh.NewSignerFromKey(hostPriv)
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(c ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if c.User() == "root" && string(k.Marshal()) == string(client.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("not the system VM key")
	}}
	cfg.AddHostKey(hostKey)
	l, err := net.Listen("tcp", addr)
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

// ClientKey is a new Ed25519 key: its signer and its PEM text.
func ClientKey(t testing.TB) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := pem.EncodeToMemory(blk)
	s, err := ssh.ParsePrivateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	return s, p
}
