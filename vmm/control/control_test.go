package control

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveTest serves h on a unix socket in t's temporary directory until
// the test ends, and returns the socket's path. The test fails if serving
// a connection panicked (the panic is recovered: only the count shows it).
func serveTest(t *testing.T, h Handler) string {
	t.Helper()
	var panics func() []string
	// Registered first, run last: after servePanics' cleanup waited for
	// every connection's end.
	t.Cleanup(func() {
		if p := panics(); len(p) != 0 {
			t.Errorf("%d panics while serving connections:\n%s", len(p), strings.Join(p, "\n"))
		}
	})
	var path string
	path, panics = servePanics(t, h)
	return path
}

// servePanics is serveTest for a test that expects panics: panics says
// which serveConn recovered. At the test's end the listener is closed and
// the cleanup waits until every connection it accepted was served to its
// end, so that a cleanup registered before servePanics sees them all and
// no late one reaches the next test.
func servePanics(t *testing.T, h Handler) (path string, panics func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	var open sync.WaitGroup
	old := connEnded
	connEnded = func(r any, stack []byte) {
		if r != nil {
			mu.Lock()
			seen = append(seen, fmt.Sprintf("%v\n%s", r, stack))
			mu.Unlock()
		}
		open.Done()
	}
	path = filepath.Join(t.TempDir(), "c.sock")
	inner, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	go Serve(&countingListener{Listener: inner, open: &open}, h)
	t.Cleanup(func() {
		inner.Close()
		done := make(chan struct{})
		go func() { open.Wait(); close(done) }()
		select {
		case <-done:
			connEnded = old
		case <-time.After(10 * time.Second):
			// connEnded stays this test's: a late end must not reach
			// the next test's.
			t.Errorf("the served connections did not end within 10 s of the test's end")
		}
	})
	return path, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// countingListener counts each connection it accepts in open; connEnded
// counts it out. It hands out the connection itself: serveConn reads a
// *net.UnixConn with ReadMsgUnix.
type countingListener struct {
	net.Listener
	open *sync.WaitGroup
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.open.Add(1)
	}
	return c, err
}

func TestRoundTrip(t *testing.T) {
	path := serveTest(t, func(r Request, files []*os.File) Response {
		for _, f := range files {
			defer f.Close()
		}
		switch r.Op {
		case "readfd":
			if len(files) != 1 {
				return Response{Error: fmt.Sprintf("got %d files", len(files))}
			}
			b := make([]byte, 5)
			n, _ := files[0].Read(b)
			return Response{Console: &Console{Data: string(b[:n])}}
		case OpInfo:
			return Response{Info: &Info{Name: "d", UUID: "u", PID: 7, State: "running"}}
		case OpConsole:
			return Response{Console: &Console{Offset: r.Offset, Data: strings.Repeat("x", r.Max), Next: r.Offset + int64(r.Max)}}
		}
		return Response{Error: "unknown operation " + r.Op}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in, err := c.Info(ctx)
	if err != nil || in.PID != 7 || in.State != "running" {
		t.Fatalf("Info = %+v, %v", in, err)
	}
	// A large answer (longer than the reader's buffer) arrives whole.
	resp, err := c.Call(ctx, Request{Op: OpConsole, Offset: 10, Max: 200000})
	if err != nil || len(resp.Console.Data) != 200000 || resp.Console.Next != 200010 {
		t.Fatalf("console: %v %v", err, resp)
	}
	// A descriptor passed along with a request.
	pr, pw, _ := os.Pipe()
	pw.Write([]byte("hello"))
	pw.Close()
	resp, err = c.CallFiles(ctx, Request{Op: "readfd"}, pr)
	pr.Close()
	if err != nil || resp.Console.Data != "hello" {
		t.Fatalf("passing a file: %v %+v", err, resp)
	}
	_, err = c.Call(ctx, Request{Op: "bogus"})
	if _, ok := err.(*ErrVMM); !ok || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown op: %v", err)
	}
}

func TestExitRecord(t *testing.T) {
	p := filepath.Join(t.TempDir(), "exit.json")
	want := Exit{Time: time.Now().UTC().Truncate(time.Second), PID: 42, Reason: "crashed", Detail: "guest fault", Code: 2}
	if err := WriteExit(p, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadExit(p)
	if err != nil || *got != want {
		t.Fatalf("ReadExit = %+v, %v; want %+v", got, err, want)
	}
}

// TestPeerResetWithUnreadAnswer: an agent that dies (SIGKILL) with an
// answer it never read makes the VMM's next read fail with ECONNRESET,
// which recvmsg reports as n = -1. The server must end that connection
// and go on serving others: it once sliced its buffer with that -1 and
// panicked, which ended the VMM and its guest when the agent was killed.
func TestPeerResetWithUnreadAnswer(t *testing.T) {
	written := make(chan struct{}, 1)
	path := serveTest(t, func(r Request, files []*os.File) Response {
		return Response{Info: &Info{Name: "d", State: "running"}, After: func() { written <- struct{}{} }}
	})
	for range 3 {
		raw, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Write([]byte(`{"op":"info","seq":1}` + "\n")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-written:
		case <-time.After(10 * time.Second):
			t.Fatal("the server never answered")
		}
		raw.Close() // the answer is unread: the server's read gets ECONNRESET
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if in, err := c.Info(ctx); err != nil || in.State != "running" {
		t.Fatalf("after a peer reset: Info = %+v, %v", in, err)
	}
}

// TestHandlerPanicEndsOnlyItsConnection: a panic while serving one
// connection closes it and leaves the server (the VMM, its guest) serving
// the next one.
func TestHandlerPanicEndsOnlyItsConnection(t *testing.T) {
	path, panics := servePanics(t, func(r Request, files []*os.File) Response {
		if r.Op == "boom" {
			panic("a bug in a handler")
		}
		return Response{Info: &Info{State: "running"}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call(ctx, Request{Op: "boom"}); err == nil {
		t.Fatal("a request whose handler panicked was answered")
	}
	c.Close()
	c, err = Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if in, err := c.Info(ctx); err != nil || in.State != "running" {
		t.Fatalf("after a handler's panic: Info = %+v, %v", in, err)
	}
	if p := panics(); len(p) != 1 || !strings.HasPrefix(p[0], "a bug in a handler\n") {
		t.Fatalf("the recovered panics: %q, want the handler's one", p)
	}
}
