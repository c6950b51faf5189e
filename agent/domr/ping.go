package domr

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// Ping sends up to count ICMP echo requests to the IPv4 address addr, one
// a second, and reports whether one was answered (a raw socket: the agent
// runs as root).
func Ping(ctx context.Context, addr netip.Addr, count int) (bool, error) {
	if !addr.Is4() {
		return false, fmt.Errorf("%s: only IPv4 addresses are pinged", addr)
	}
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return false, fmt.Errorf("open an ICMP socket: %w", err)
	}
	defer c.Close()
	// an id of its own: concurrent pings see each other's replies
	var idb [2]byte
	rand.Read(idb[:])
	id := int(idb[0])<<8 | int(idb[1])
	dst := &net.IPAddr{IP: addr.AsSlice()}
	buf := make([]byte, 1500)
	for seq := 1; seq <= count; seq++ {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("ovs-agent ping")}}
		b, _ := msg.Marshal(nil)
		if _, err := c.WriteTo(b, dst); err != nil {
			return false, fmt.Errorf("ping %s: %w", addr, err)
		}
		until := time.Now().Add(time.Second)
		c.SetReadDeadline(until)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return false, fmt.Errorf("ping %s: %w", addr, err)
			}
			ip, ok := from.(*net.IPAddr)
			if !ok || !ip.IP.Equal(dst.IP) {
				continue
			}
			rm, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || rm.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			if e, ok := rm.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
				return true, nil
			}
		}
	}
	return false, nil
}
