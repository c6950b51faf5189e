// Package limits measures the limits of this machine that benchmarks
// report their figures against: one loopback TCP stream's throughput.
// (Memory bandwidth is vmm/workload/workloadtest.MemcpyBandwidth.)
package limits

import (
	"fmt"
	"net"
	"time"
)

// LoopbackTCP measures one loopback TCP stream moving n bytes in 1 MiB
// writes, in bytes/s.
func LoopbackTCP(n int64) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	done := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- 0
			return
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		var got int64
		for {
			k, err := c.Read(buf)
			got += int64(k)
			if err != nil {
				done <- got
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 1<<20)
	t0 := time.Now()
	for sent := int64(0); sent < n; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, err
		}
	}
	c.Close()
	if got := <-done; got < n {
		return 0, fmt.Errorf("loopback: %d of %d bytes arrived", got, n)
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}
