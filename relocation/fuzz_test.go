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
	// Hostile length prefixes: just over the cap, 1 MiB announced with a
	// few bytes sent, the cap exactly with nothing behind it, zero.
	f.Add([]byte(Magic + " 1\n\x00\x04\x00\x01{"))
	f.Add([]byte(Magic + " 1\n\x00\x10\x00\x00{\"op\":\"receive\""))
	f.Add([]byte(Magic + " 1\n\x00\x04\x00\x00"))
	f.Add([]byte(Magic + " 1\n\x00\x00\x00\x00"))
	f.Add([]byte(Magic + " 1"))
	f.Add(bytes.Repeat([]byte("A"), 200))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHello(bufio.NewReader(bytes.NewReader(data)))
		if err == nil && h == nil {
			t.Fatal("nil hello without error")
		}
		if err == nil && len(data) > MaxHello+maxProtocolLine+4 && h.Offer.Config != "" {
			// Whatever was accepted came within the bounds.
			if len(h.Offer.Config) > MaxHello {
				t.Fatalf("accepted a config of %d bytes", len(h.Offer.Config))
			}
		}
	})
}
