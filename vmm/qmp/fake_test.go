package qmp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

const greeting7222 = `{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b2"}, "capabilities": ["oob"]}}`

// fake is the QEMU end of a socketpair: it reads requests with their
// SCM_RIGHTS descriptors and writes whatever a test tells it to.
type fake struct {
	t    *testing.T
	conn *net.UnixConn
	buf  []byte
	fds  []int
}

// req is one command as the fake received it.
type req struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments"`
	ID        json.RawMessage `json:"id"`
	fds       []int           // descriptors that came with its bytes
}

// socketpair returns the two ends as unix connections.
func socketpair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), fmt.Sprintf("socketpair%d", i))
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c.(*net.UnixConn)
	}
	return conns[0], conns[1]
}

// send writes lines as QEMU would, each ending in \r\n.
func (f *fake) send(lines ...string) {
	for _, l := range lines {
		if _, err := f.conn.Write([]byte(l + "\r\n")); err != nil {
			f.t.Errorf("fake: write: %v", err)
			return
		}
	}
}

// read returns the next request, false when the client has gone.
func (f *fake) read() (req, bool) {
	for {
		if i := bytes.IndexByte(f.buf, '\n'); i >= 0 {
			line := f.buf[:i]
			f.buf = f.buf[i+1:]
			var r req
			if err := json.Unmarshal(line, &r); err != nil {
				f.t.Errorf("fake: the client sent %q: %v", line, err)
				return r, false
			}
			r.fds, f.fds = f.fds, nil
			return r, true
		}
		b, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4*4))
		n, oobn, _, _, err := f.conn.ReadMsgUnix(b, oob)
		if err != nil {
			return req{}, false
		}
		f.buf = append(f.buf, b[:n]...)
		if oobn > 0 {
			f.fds = append(f.fds, rights(f.t, oob[:oobn])...)
		}
	}
}

// rights parses SCM_RIGHTS ancillary data.
func rights(t *testing.T, oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		t.Errorf("fake: control message: %v", err)
		return nil
	}
	var fds []int
	for _, m := range msgs {
		r, err := unix.ParseUnixRights(&m)
		if err != nil {
			t.Errorf("fake: rights: %v", err)
		}
		fds = append(fds, r...)
	}
	return fds
}

// answer says {"return": ret} to r.
func (f *fake) answer(r req, ret string) {
	f.send(fmt.Sprintf(`{"return": %s, "id": %s}`, ret, r.ID))
}

// handshake plays QEMU's side of the greeting and qmp_capabilities.
func (f *fake) handshake() bool {
	f.send(greeting7222)
	r, ok := f.read()
	if !ok {
		return false
	}
	if r.Execute != "qmp_capabilities" {
		f.t.Errorf("fake: first command %q, want qmp_capabilities", r.Execute)
	}
	f.answer(r, "{}")
	return true
}

// serve connects a client to a fake that runs the handshake, then calls
// handle for every request until the client goes. Cleanup closes both.
func serve(t *testing.T, opts Options, handle func(f *fake, r req)) *Client {
	t.Helper()
	cc, sc := socketpair(t)
	f := &fake{t: t, conn: sc}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if !f.handshake() {
			return
		}
		for {
			r, ok := f.read()
			if !ok {
				return
			}
			handle(f, r)
		}
	}()
	c, err := Connect(context.Background(), cc, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		sc.Close()
		wg.Wait()
	})
	return c
}
