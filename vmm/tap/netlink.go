package tap

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// linkInfo is what an rtnetlink query tells of one network interface.
type linkInfo struct {
	index  int32
	flags  uint32 // IFF_UP, ...
	master uint32 // the index of the bridge it is on; 0 if none
	kind   string // "bridge", "tun", "veth", ...; "" for a plain device
}

// errNoLink is the answer for a name that no interface has.
var errNoLink = errors.New("no such network interface")

// maxReply bounds the one reply link reads.
const maxReply = 64 << 10

// link asks rtnetlink (in the calling thread's network namespace) about
// the interface name.
func link(name string) (linkInfo, error) {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return linkInfo{}, fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(s)
	if err := unix.Bind(s, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return linkInfo{}, fmt.Errorf("netlink bind: %w", err)
	}
	if err := unix.Sendto(s, getLinkRequest(name), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return linkInfo{}, fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, maxReply)
	n, _, err := unix.Recvfrom(s, buf, 0)
	if err != nil {
		return linkInfo{}, fmt.Errorf("netlink receive: %w", err)
	}
	return parseLinkReply(buf[:n])
}

// getLinkRequest is an RTM_GETLINK request for one interface by name.
func getLinkRequest(name string) []byte {
	attr := rtattr(unix.IFLA_IFNAME, append([]byte(name), 0))
	n := unix.SizeofNlMsghdr + unix.SizeofIfInfomsg + len(attr)
	b := make([]byte, n)
	binary.NativeEndian.PutUint32(b[0:], uint32(n))
	binary.NativeEndian.PutUint16(b[4:], unix.RTM_GETLINK)
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(b[8:], 1) // sequence
	b[unix.SizeofNlMsghdr] = unix.AF_UNSPEC
	copy(b[unix.SizeofNlMsghdr+unix.SizeofIfInfomsg:], attr)
	return b
}

// rtattr encodes one route attribute, padded to 4 bytes.
func rtattr(typ uint16, data []byte) []byte {
	l := unix.SizeofRtAttr + len(data)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[unix.SizeofRtAttr:], data)
	return b
}

// parseLinkReply reads the answer to getLinkRequest: an RTM_NEWLINK, or
// an error (ENODEV: errNoLink).
func parseLinkReply(b []byte) (linkInfo, error) {
	if len(b) < unix.SizeofNlMsghdr {
		return linkInfo{}, errors.New("netlink: short reply")
	}
	l := int(binary.NativeEndian.Uint32(b[0:]))
	typ := binary.NativeEndian.Uint16(b[4:])
	if l < unix.SizeofNlMsghdr || l > len(b) {
		return linkInfo{}, errors.New("netlink: bad reply length")
	}
	body := b[unix.SizeofNlMsghdr:l]
	switch typ {
	case unix.NLMSG_ERROR:
		if len(body) < 4 {
			return linkInfo{}, errors.New("netlink: short error")
		}
		errno := unix.Errno(-int32(binary.NativeEndian.Uint32(body)))
		if errno == unix.ENODEV {
			return linkInfo{}, errNoLink
		}
		return linkInfo{}, fmt.Errorf("netlink: %w", errno)
	case unix.RTM_NEWLINK:
	default:
		return linkInfo{}, fmt.Errorf("netlink: unexpected reply type %d", typ)
	}
	if len(body) < unix.SizeofIfInfomsg {
		return linkInfo{}, errors.New("netlink: short link message")
	}
	info := linkInfo{
		index: int32(binary.NativeEndian.Uint32(body[4:])),
		flags: binary.NativeEndian.Uint32(body[8:]),
	}
	for _, a := range attrs(body[unix.SizeofIfInfomsg:]) {
		switch a.typ {
		case unix.IFLA_MASTER:
			if len(a.data) >= 4 {
				info.master = binary.NativeEndian.Uint32(a.data)
			}
		case unix.IFLA_LINKINFO:
			for _, n := range attrs(a.data) {
				if n.typ == unix.IFLA_INFO_KIND {
					info.kind = cString(n.data)
				}
			}
		}
	}
	return info, nil
}

type attr struct {
	typ  uint16
	data []byte
}

// attrs splits a sequence of route attributes; a malformed tail is
// dropped.
func attrs(b []byte) []attr {
	var out []attr
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		if l < unix.SizeofRtAttr || l > len(b) {
			break
		}
		out = append(out, attr{typ: binary.NativeEndian.Uint16(b[2:]) &^ unix.NLA_F_NESTED, data: b[unix.SizeofRtAttr:l]})
		adv := (l + 3) &^ 3
		if adv > len(b) {
			break
		}
		b = b[adv:]
	}
	return out
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
