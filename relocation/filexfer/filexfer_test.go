package filexfer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sparseFile writes a file of size bytes with random data at the given
// offsets (length each) and explicit zeros at zeroAt; the rest are holes.
func sparseFile(t testing.TB, path string, size int64, seed uint64, data map[int64]int, zeroAt map[int64]int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	for off, n := range data {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32()) | 1
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	for off, n := range zeroAt {
		if _, err := f.WriteAt(make([]byte, n), off); err != nil {
			t.Fatal(err)
		}
	}
}

func allocated(t testing.TB, path string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func sameContent(t testing.TB, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ", a, b)
	}
}

type pair struct {
	send, recv net.Conn
}

// tcpPair is a loopback TCP connection.
func tcpPair(t testing.TB) pair {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		ch <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-ch
	t.Cleanup(func() { c.Close(); s.Close() })
	return pair{send: c, recv: s}
}

type outcome struct {
	sent *SendResult
	serr error
	recv *ReceiveResult
	rerr error
}

func transfer(t testing.TB, ctx context.Context, p pair, files []SourceFile, so SendOptions, ro ReceiveOptions) outcome {
	t.Helper()
	var o outcome
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		o.recv, o.rerr = Receive(context.Background(), p.recv, ro)
		p.recv.Close()
	}()
	o.sent, o.serr = Send(ctx, p.send, files, so)
	p.send.Close()
	wg.Wait()
	return o
}

func TestSparseCopy(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "System.img")
	const size = 256 << 20
	data := map[int64]int{0: 3 << 20, 100 << 20: 5000, 200<<20 + 12345: 1 << 20, size - 777: 777}
	sparseFile(t, src, size, 1, data, map[int64]int{50 << 20: 4 << 20})
	small := filepath.Join(dir, "vm.cfg")
	if err := os.WriteFile(small, []byte("name = 'x'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(dir, "in")
	files := []SourceFile{{Path: src, Name: "System.img"}, {Path: small, Name: "conf/vm.cfg"}}
	var progress []Progress
	o := transfer(t, context.Background(), tcpPair(t), files, SendOptions{Domain: "u1", Progress: func(p Progress) { progress = append(progress, p) }}, ReceiveOptions{Staging: staging})
	if o.serr != nil || o.rerr != nil {
		t.Fatalf("send: %v, receive: %v", o.serr, o.rerr)
	}
	got := filepath.Join(staging, "System.img")
	sameContent(t, src, got)
	sameContent(t, small, filepath.Join(staging, "conf/vm.cfg"))
	written := int64(0)
	for _, n := range data {
		written += int64(n)
	}
	// Holes and the explicit zeros are not sent and stay holes.
	if o.sent.Sent > written+written/10+64<<10 {
		t.Errorf("sent %d bytes for %d bytes of data in a %d-byte file", o.sent.Sent, written, size)
	}
	if a := allocated(t, got); a > written+2<<20 {
		t.Errorf("the copy allocates %d bytes for %d bytes of data", a, written)
	}
	want, err := Digest(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if o.sent.Digests[0] != want || o.recv.Digests[0] != want {
		t.Errorf("digests: sender %s, receiver %s, Digest %s", o.sent.Digests[0], o.recv.Digests[0], want)
	}
	if o.sent.Done != o.sent.Total {
		t.Errorf("progress ends at %d of %d", o.sent.Done, o.sent.Total)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i].Done < progress[i-1].Done || progress[i].Sent < progress[i-1].Sent {
			t.Fatalf("progress went backwards: %+v then %+v", progress[i-1], progress[i])
		}
	}
}

func TestDigestIgnoresAllocation(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	sparseFile(t, a, 8<<20, 7, map[int64]int{1 << 20: 10}, nil)
	// b: same content, but the holes are written zeros.
	content, _ := os.ReadFile(a)
	if err := os.WriteFile(b, content, 0o600); err != nil {
		t.Fatal(err)
	}
	content[1<<20+3] ^= 0x40
	if err := os.WriteFile(c, content, 0o600); err != nil {
		t.Fatal(err)
	}
	da, _ := Digest(context.Background(), a)
	db, _ := Digest(context.Background(), b)
	dc, _ := Digest(context.Background(), c)
	if da != db {
		t.Errorf("sparse and dense copies of the same content: %s vs %s", da, db)
	}
	if da == dc {
		t.Errorf("one flipped bit does not change the digest %s", da)
	}
}

// cutConn closes after n bytes have been written through it.
type cutConn struct {
	net.Conn
	left int64
}

func (c *cutConn) Write(b []byte) (int, error) {
	if c.left <= 0 {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	if int64(len(b)) > c.left {
		n, _ := c.Conn.Write(b[:c.left])
		c.left = 0
		c.Conn.Close()
		return n, net.ErrClosed
	}
	c.left -= int64(len(b))
	return c.Conn.Write(b)
}

func TestResumeAfterInterruption(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "disk.img")
	sparseFile(t, src, 64<<20, 3, map[int64]int{0: 40 << 20, 60 << 20: 1 << 20}, nil)
	staging := filepath.Join(dir, "in")
	files := []SourceFile{{Path: src, Name: "disk.img"}}
	ro := ReceiveOptions{Staging: staging, CheckpointBytes: 4 << 20}

	p := tcpPair(t)
	p.send = &cutConn{Conn: p.send, left: 20 << 20}
	o := transfer(t, context.Background(), p, files, SendOptions{Domain: "u"}, ro)
	if o.serr == nil || !errors.Is(o.rerr, ErrInterrupted) {
		t.Fatalf("cut stream: send %v, receive %v (want ErrInterrupted)", o.serr, o.rerr)
	}
	if _, err := os.Stat(filepath.Join(staging, JournalFile)); err != nil {
		t.Fatalf("an interrupted copy keeps its journal: %v", err)
	}

	o = transfer(t, context.Background(), tcpPair(t), files, SendOptions{Domain: "u"}, ro)
	if o.serr != nil || o.rerr != nil {
		t.Fatalf("resume: send %v, receive %v", o.serr, o.rerr)
	}
	if o.sent.Resumed < 12<<20 {
		t.Errorf("resumed only %d bytes after 20 MiB had been sent", o.sent.Resumed)
	}
	if o.sent.Sent > 41<<20-o.sent.Resumed+1<<20 {
		t.Errorf("the resumed copy sent %d bytes (%d were kept)", o.sent.Sent, o.sent.Resumed)
	}
	sameContent(t, src, filepath.Join(staging, "disk.img"))

	// A changed source file starts over.
	now := time.Now().Add(time.Hour)
	os.Chtimes(src, now, now)
	o = transfer(t, context.Background(), tcpPair(t), files, SendOptions{Domain: "u"}, ro)
	if o.serr != nil || o.rerr != nil || o.sent.Resumed != 0 {
		t.Fatalf("changed file: send %v, receive %v, resumed %d", o.serr, o.rerr, o.sent.Resumed)
	}
}

func TestCancelDropsCopy(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "disk.img")
	sparseFile(t, src, 64<<20, 5, map[int64]int{0: 32 << 20}, nil)
	staging := filepath.Join(dir, "in")
	ctx, cancel := context.WithCancel(context.Background())
	so := SendOptions{Domain: "u", RateLimit: 16 << 20, Progress: func(p Progress) {
		if p.Sent > 4<<20 {
			cancel()
		}
	}}
	o := transfer(t, ctx, tcpPair(t), []SourceFile{{Path: src, Name: "disk.img"}}, so, ReceiveOptions{Staging: staging})
	if !errors.Is(o.serr, context.Canceled) || !errors.Is(o.rerr, ErrAborted) {
		t.Fatalf("send %v, receive %v", o.serr, o.rerr)
	}
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Errorf("a cancelled copy leaves %s behind", staging)
	}
}

// tamperConn flips one byte at offset at of the stream.
type tamperConn struct {
	net.Conn
	at, pos int64
}

func (c *tamperConn) Write(b []byte) (int, error) {
	if c.at >= c.pos && c.at < c.pos+int64(len(b)) {
		b = append([]byte(nil), b...)
		b[c.at-c.pos] ^= 0x01
	}
	c.pos += int64(len(b))
	return c.Conn.Write(b)
}

func TestTamperedStreamRejected(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "disk.img")
	sparseFile(t, src, 8<<20, 9, map[int64]int{0: 3 << 20}, nil)
	staging := filepath.Join(dir, "in")
	p := tcpPair(t)
	p.send = &tamperConn{Conn: p.send, at: 2 << 20}
	o := transfer(t, context.Background(), p, []SourceFile{{Path: src, Name: "disk.img"}}, SendOptions{Domain: "u"}, ReceiveOptions{Staging: staging})
	if !errors.Is(o.rerr, ErrFormat) || o.serr == nil {
		t.Fatalf("send %v, receive %v (want ErrFormat)", o.serr, o.rerr)
	}
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Errorf("a tampered copy leaves %s behind", staging)
	}
}

func TestValidateName(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"System.img", true}, {"disks/data.img", true}, {"", false}, {"/etc/passwd", false},
		{"../x", false}, {"a/../../x", false}, {"a/./b", false}, {".journal.json", false},
		{"a/.hidden", false}, {"a\\b", false}, {"a\nb", false}, {"a//b", false}, {"a/b/c/d/e/f/g/h/i", false},
	} {
		if err := ValidateName(c.name); (err == nil) != c.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

func TestHeaderCheckRefuses(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "d")
	sparseFile(t, src, 1<<20, 1, map[int64]int{0: 100}, nil)
	staging := filepath.Join(dir, "in")
	o := transfer(t, context.Background(), tcpPair(t), []SourceFile{{Path: src, Name: "d"}}, SendOptions{Domain: "u"},
		ReceiveOptions{Staging: staging, Check: func(*Header) error { return errors.New("no room") }})
	if o.rerr == nil || o.serr == nil || !errors.Is(o.serr, ErrAborted) {
		t.Fatalf("send %v, receive %v", o.serr, o.rerr)
	}
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Errorf("a refused copy creates %s", staging)
	}
}

var _ = io.EOF
