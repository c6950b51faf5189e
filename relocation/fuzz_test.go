package relocation

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzReadHello feeds the listener's handshake reader hostile bytes: it must
// fail cleanly, never panic or allocate beyond its bound.
func FuzzReadHello(f *testing.F) {
	var good bytes.Buffer
	good.WriteString(Magic + " 1\n")
	writeMsg(&good, &Hello{Op: OpReceive, User: "admin", Password: "pw", Offer: Offer{Name: "d", MemoryMiB: 64}})
	f.Add(good.Bytes())
	f.Add([]byte(Magic + " 2\n"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte(Magic + " 1\n\xff\xff\xff\xff"))
	f.Add([]byte(Magic + " 1\n\x00\x00\x00\x02{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHello(bufio.NewReader(bytes.NewReader(data)))
		if err == nil && h == nil {
			t.Fatal("nil hello without error")
		}
	})
}
