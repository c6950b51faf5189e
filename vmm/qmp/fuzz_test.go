package qmp

import (
	"context"
	"strings"
	"testing"
)

// FuzzQEMUOutput feeds anything as what QEMU says after its greeting: the
// client answers, fails with an error or sees the connection end, never
// panics, never reads past its line limit and never hangs.
func FuzzQEMUOutput(f *testing.F) {
	f.Add([]byte("{\"return\": {}, \"id\": 0}\r\n{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": 1}\r\n"))
	f.Add([]byte("{\"return\": {}, \"id\": 0}\r\n{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n{\"id\": 1, \"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\r\n"))
	f.Add([]byte("{\"return\": {}, \"id\": 0}\r\n{\"return\": \"" + strings.Repeat("x", 300) + "\"}\r\n"))
	f.Add([]byte("{\"return\": {}, \"id\": 0}\r\n\x00\xff{\r\n"))
	f.Add([]byte("{\"error\": {\"class\": 1}}\r\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		cc, sc := socketpair(t)
		defer cc.Close()
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			sc.Write([]byte(greeting7222 + "\r\n"))
			sc.Write(out) // fails once the client has given up and closed
			sc.CloseWrite()
			buf := make([]byte, 4096)
			for { // take the client's commands until it closes
				if _, err := sc.Read(buf); err != nil {
					break
				}
			}
			sc.Close()
		}()
		c, err := Connect(context.Background(), cc, Options{MaxLine: 256, EventBuffer: 2})
		if err == nil {
			var s Status
			c.Execute(context.Background(), "query-status", nil, &s)
			c.Close()
		}
		cc.Close()
		<-wrote
	})
}
