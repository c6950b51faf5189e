package relocation

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Protocol identification: the client's first line.
const (
	Magic   = "OVS-RELOCATION"
	Version = 1
)

// Operations a Hello may name.
const (
	OpReceive = "receive" // take a domain: a page-transfer stream follows
	OpCheck   = "check"   // dry run: say whether a receive would work
	OpStatus  = "status"  // where is this domain now (recovery after a lost connection)
	OpOffline = "offline" // take a stopped domain and its disks: an offline-transfer stream (relocation/filexfer) follows
)

// maxMessage bounds one handshake message after the hello (a Welcome, a
// probe result).
const maxMessage = 1 << 20

// MaxHello bounds the Hello, the one message a peer sends before it has
// authenticated. The biggest realistic Hello is an Offer: a vm.cfg (a few
// KiB; even a domain with a hundred disks and NICs stays under 32 KiB) and
// its disk list (about 300 bytes a disk as JSON), so 256 KiB leaves ample
// room while keeping what an unauthenticated peer can make the receiver
// hold small. The sender refuses a larger Hello before dialing.
const MaxHello = 256 << 10

// maxProtocolLine bounds the protocol line ("OVS-RELOCATION 1\n").
const maxProtocolLine = 64

// readChunk is how much of a message body is allocated at a time: the
// buffer grows only as bytes arrive, so a length prefix announcing a large
// body that is never sent costs one chunk, not the announced size.
const readChunk = 16 << 10

// Hello is what the sending agent says first.
type Hello struct {
	Version      int    `json:"version"`
	Op           string `json:"op"`
	AgentVersion string `json:"agent_version"`
	Protocol     int    `json:"protocol"` // the API/relocation protocol number of the sender
	Source       string `json:"source"`   // the sender's host name
	Migration    string `json:"migration"`
	User         string `json:"user"`
	Password     string `json:"password"` // never logged
	Live         bool   `json:"live"`
	Offer        Offer  `json:"offer"`
	// Offline is set for the offline migration of a stopped domain
	// (OpOffline, or OpCheck of one); see offline.go.
	Offline *OfflineRequest `json:"offline,omitempty"`
	// Parallel streams of OpReceive: Channel 0 starts the migration;
	// channels 1..Channels-1 are the extra connections of the same
	// Migration, each authenticated like the first, which the receiver
	// attaches to the domain it is receiving.
	Channel  int `json:"channel,omitempty"`
	Channels int `json:"channels,omitempty"`
}

// String describes the hello without the password, for logs.
func (h *Hello) String() string {
	return fmt.Sprintf("%s of %s (%s) from %s, migration %s, user %q", h.Op, h.Offer.Name, h.Offer.UUID, h.Source, h.Migration, h.User)
}

// Welcome is the receiving agent's answer.
type Welcome struct {
	Version int    `json:"version"`
	OK      bool   `json:"ok"`
	Code    int    `json:"code,omitempty"` // an API fault code when not OK
	Error   string `json:"error,omitempty"`
	// Problems is every reason a receive would fail, as "field: message"
	// (what an older peer sends and reads); ProblemDetails are the same
	// problems structured (see Problem), absent from an older peer.
	Problems       []string  `json:"problems,omitempty"`
	ProblemDetails []Problem `json:"problem_details,omitempty"`
	AgentVersion   string    `json:"agent_version"`
	Protocol       int       `json:"protocol"`
	Host           string    `json:"host"`
	// State answers OpStatus: the domain's state on the receiver, or "".
	State string `json:"state,omitempty"`
	// Repositories answers an offline OpCheck: the repositories (UUIDs)
	// mounted on the receiver; disks on them are not copied.
	Repositories []string `json:"repositories,omitempty"`
	// Target answers an OpCheck of a qemu domain: what the receiver
	// offers it (absent from an older peer, and for the workload guest).
	Target *TargetFacts `json:"target,omitempty"`
	// Member answers the receive of a pool domain (Offer.Pool): the
	// pool member that takes it (absent otherwise, and from a peer that
	// knows no pools: the source then gives the migration up).
	Member *PoolMember `json:"member,omitempty"`
}

// writeMsg writes one length-prefixed JSON message.
func writeMsg(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(data) > maxMessage {
		return fmt.Errorf("handshake message of %d bytes is too large", len(data))
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(data)))
	if _, err := w.Write(append(hdr[:], data...)); err != nil {
		return err
	}
	return nil
}

// readMsg reads one length-prefixed JSON message of at most maxMessage bytes.
func readMsg(r io.Reader, v any) error {
	return readMsgLimit(r, v, maxMessage)
}

// readMsgLimit reads one length-prefixed JSON message of at most limit
// bytes, growing its buffer by readChunk as the body arrives.
func readMsgLimit(r io.Reader, v any, limit int) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(limit) {
		return fmt.Errorf("handshake message of %d bytes is too large (at most %d)", n, limit)
	}
	var data []byte
	for len(data) < int(n) {
		k := min(int(n)-len(data), readChunk)
		data = slices.Grow(data, k)
		m, err := io.ReadFull(r, data[len(data):len(data)+k])
		data = data[:len(data)+m]
		if err != nil {
			return err
		}
	}
	return json.Unmarshal(data, v)
}

// readProtocolLine reads the first line, at most maxProtocolLine bytes.
func readProtocolLine(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for b.Len() < maxProtocolLine {
		c, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		if c == '\n' {
			return b.String(), nil
		}
		b.WriteByte(c)
	}
	return "", errors.New("not an ovs-agent relocation peer (protocol line too long)")
}

// ReadHello reads the protocol line and the Hello from a new connection.
func ReadHello(r *bufio.Reader) (*Hello, error) {
	line, err := readProtocolLine(r)
	if err != nil {
		return nil, fmt.Errorf("read protocol line: %w", err)
	}
	var magic string
	var version int
	if _, err := fmt.Sscanf(strings.TrimSpace(line), "%s %d", &magic, &version); err != nil || magic != Magic {
		return nil, errors.New("not an ovs-agent relocation peer (bad protocol line)")
	}
	if version != Version {
		return nil, fmt.Errorf("relocation protocol version %d; this agent speaks %d", version, Version)
	}
	var h Hello
	if err := readMsgLimit(r, &h, MaxHello); err != nil {
		return nil, fmt.Errorf("read hello: %w", err)
	}
	return &h, nil
}

// WriteWelcome answers a Hello.
func WriteWelcome(w io.Writer, wl *Welcome) error {
	wl.Version = Version
	return writeMsg(w, wl)
}

// DialOptions say how to reach a peer's relocation port.
type DialOptions struct {
	Addr    string      // host:port
	TLS     *tls.Config // nil for plain TCP
	Timeout time.Duration
	// Source, when set, is the local IP address to connect from (the
	// sending agent's relocation address), so the receiver's hosts-allow
	// sees the address operators expect.
	Source string
}

// Dial connects to a peer, sends hello and returns the connection and the
// peer's Welcome. A refusal (Welcome.OK false) comes back with a nil error
// and the connection closed; the caller reads Welcome.Error.
func Dial(ctx context.Context, o DialOptions, h *Hello) (net.Conn, *Welcome, error) {
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	h.Version = Version
	hello, err := json.Marshal(h)
	if err != nil {
		return nil, nil, fmt.Errorf("relocation hello: %w", err)
	}
	if len(hello) > MaxHello {
		return nil, nil, fmt.Errorf("the relocation hello for %s is %d bytes (vm.cfg and disk list), more than the %d a receiver accepts before login: shorten the vm.cfg or use fewer disks", h.Offer.Name, len(hello), MaxHello)
	}
	d := &net.Dialer{Timeout: o.Timeout}
	if ip := net.ParseIP(o.Source); ip != nil && !ip.IsUnspecified() {
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	var c net.Conn
	if o.TLS != nil {
		c, err = (&tls.Dialer{NetDialer: d, Config: o.TLS}).DialContext(ctx, "tcp", o.Addr)
	} else {
		c, err = d.DialContext(ctx, "tcp", o.Addr)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("relocation port %s: %w", o.Addr, err)
	}
	c.SetDeadline(time.Now().Add(o.Timeout))
	fail := func(err error) (net.Conn, *Welcome, error) {
		c.Close()
		if closedByPeer(err) {
			return nil, nil, fmt.Errorf("relocation port %s closed the connection before the handshake: this host is probably not in the receiver's hosts-allow", o.Addr)
		}
		return nil, nil, fmt.Errorf("relocation port %s: %w", o.Addr, err)
	}
	if _, err := fmt.Fprintf(c, "%s %d\n", Magic, Version); err != nil {
		return fail(err)
	}
	if err := writeMsg(c, h); err != nil {
		return fail(err)
	}
	var wl Welcome
	if err := readMsg(c, &wl); err != nil {
		return fail(err)
	}
	c.SetDeadline(time.Time{})
	if !wl.OK {
		c.Close()
		return nil, &wl, nil
	}
	return c, &wl, nil
}

// closedByPeer reports whether err means the peer closed the connection.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
