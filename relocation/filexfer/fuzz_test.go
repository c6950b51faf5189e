package filexfer

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// rw is a fuzz stream: reads come from the input, writes are discarded.
type rw struct {
	io.Reader
}

func (rw) Write(b []byte) (int, error) { return len(b), nil }

// validStream records a real sender's stream of a small sparse file.
func validStream(t testing.TB) []byte {
	dir := t.TempDir()
	src := filepath.Join(dir, "d.img")
	sparseFile(t, src, 3<<20, 2, map[int64]int{4096: 9000, 2 << 20: 100}, nil)
	p := tcpPair(t)
	var rec bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A receiver that records what it reads.
		tee := struct {
			io.Reader
			io.Writer
		}{io.TeeReader(p.recv, &rec), p.recv}
		Receive(context.Background(), tee, ReceiveOptions{Staging: filepath.Join(dir, "in")})
		p.recv.Close()
	}()
	Send(context.Background(), p.send, []SourceFile{{Path: src, Name: "d.img"}}, SendOptions{Domain: "u"})
	p.send.Close()
	<-done
	return rec.Bytes()
}

// FuzzReceive feeds hostile streams to the receiver: it must return an
// error or a verified copy, never panic, never write outside its staging
// folder, and never leave a staging folder after a bad stream.
func FuzzReceive(f *testing.F) {
	good := validStream(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(Magic + "\x01\x00\x00\x00"))
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0xff
	f.Add(bad)
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		staging := filepath.Join(dir, "in")
		_, err := Receive(context.Background(), rw{bytes.NewReader(data)}, ReceiveOptions{Staging: staging, CheckpointBytes: 1 << 20})
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.Name() != "in" {
				t.Fatalf("receiver wrote %s outside its staging folder", e.Name())
			}
		}
		if err != nil && !isInterrupted(err) {
			if _, serr := os.Stat(staging); serr == nil {
				t.Fatalf("a rejected stream (%v) left its staging folder", err)
			}
		}
	})
}

func isInterrupted(err error) bool {
	for e := err; e != nil; {
		if e == ErrInterrupted {
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}
