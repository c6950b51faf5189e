package qmp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultMaxLine     = 1 << 20 // bytes per QMP line (query-qmp-schema, the largest answer, is ~150 KiB)
	DefaultEventBuffer = 64
)

// ErrClosed is the error of a command on a client that Close has closed.
var ErrClosed = errors.New("qmp: client closed")

// ErrDisconnected is the end of a connection that QEMU closed (it quit or
// died); a reset connection wraps it.
var ErrDisconnected = errors.New("qmp: QEMU closed the connection")

// Options tune a client; the zero value means the defaults.
type Options struct {
	MaxLine     int // the longest line read, newline included; 0: DefaultMaxLine
	EventBuffer int // events kept for the reader of Events; 0: DefaultEventBuffer
}

// Version is QEMU's version from the greeting.
type Version struct {
	Major, Minor, Micro int
	Package             string // the distribution's build, e.g. "Debian 1:7.2+dfsg-7+deb12u18"
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro) }

// Greeting is what QEMU says first.
type Greeting struct {
	Version      Version
	Capabilities []string // e.g. "oob"; this client enables none of them
}

// Error is QMP's answer {"error": {"class", "desc"}} to a command.
type Error struct {
	Command string // the command that failed
	Class   string // e.g. "GenericError", "CommandNotFound", "DeviceNotActive"
	Desc    string // QEMU's sentence
}

func (e *Error) Error() string { return "qmp " + e.Command + ": " + e.Class + ": " + e.Desc }

// Event is an asynchronous QMP event.
type Event struct {
	Name      string          // e.g. "STOP", "RESUME", "SHUTDOWN", "MIGRATION"
	Data      json.RawMessage // the event's data object, nil when it has none
	Timestamp time.Time       // QEMU's clock when it sent the event
}

// Client is one QMP connection. Its methods are safe for concurrent use;
// commands go to QEMU one at a time.
type Client struct {
	conn     *net.UnixConn
	rd       *bufio.Reader
	maxLine  int
	greeting Greeting

	sem    chan struct{} // held by the one command in flight
	nextID atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]chan answer
	err     error         // why the connection ended, once done is closed
	done    chan struct{} // closed when the connection ends
	readerN chan struct{} // closed when the reader has returned

	events  chan Event
	dropped atomic.Uint64
}

// answer is a command's result or QMP error, routed by id.
type answer struct {
	ret json.RawMessage
	err *Error
}

// Dial connects to the QMP unix socket at path, reads the greeting and
// sends qmp_capabilities. ctx bounds the dial and the handshake only.
func Dial(ctx context.Context, path string, opts Options) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp: dial %s: %w", path, err)
	}
	client, err := Connect(ctx, c.(*net.UnixConn), opts)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("qmp %s: %w", path, err)
	}
	return client, nil
}

// Connect runs the handshake on a unix connection already made to a QMP
// monitor, and owns conn from then on (Close closes it). On an error conn
// is left open for the caller to close.
func Connect(ctx context.Context, conn *net.UnixConn, opts Options) (*Client, error) {
	if opts.MaxLine <= 0 {
		opts.MaxLine = DefaultMaxLine
	}
	if opts.EventBuffer <= 0 {
		opts.EventBuffer = DefaultEventBuffer
	}
	c := &Client{
		conn: conn, rd: bufio.NewReaderSize(conn, opts.MaxLine), maxLine: opts.MaxLine,
		sem: make(chan struct{}, 1), pending: map[uint64]chan answer{},
		done: make(chan struct{}), readerN: make(chan struct{}),
		events: make(chan Event, opts.EventBuffer),
	}
	if err := withDeadline(ctx, conn.SetDeadline, c.handshake); err != nil {
		return nil, err
	}
	go c.reader()
	return c, nil
}

// withDeadline runs fn with conn's deadline (set: SetDeadline or
// SetWriteDeadline) pushed into the past when ctx ends, and says ctx's
// error when that is what stopped fn.
func withDeadline(ctx context.Context, set func(time.Time) error, fn func() error) error {
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		set(time.Unix(1, 0))
		close(fired)
	})
	err := fn()
	if !stop() {
		<-fired
	}
	set(time.Time{})
	if err != nil && ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return ctx.Err()
	}
	return err
}

// handshake reads the greeting and leaves capabilities-negotiation mode.
func (c *Client) handshake() error {
	line, err := c.readLine()
	if err != nil {
		return fmt.Errorf("read the greeting: %w", err)
	}
	var g struct {
		QMP *struct {
			Version struct {
				QEMU    struct{ Major, Minor, Micro int } `json:"qemu"`
				Package string                            `json:"package"`
			} `json:"version"`
			Capabilities []string `json:"capabilities"`
		} `json:"QMP"`
	}
	if err := json.Unmarshal(line, &g); err != nil || g.QMP == nil {
		return fmt.Errorf("expected the QMP greeting, got %s", excerpt(line))
	}
	v := g.QMP.Version
	c.greeting = Greeting{
		Version:      Version{v.QEMU.Major, v.QEMU.Minor, v.QEMU.Micro, v.Package},
		Capabilities: g.QMP.Capabilities,
	}
	if _, err := c.conn.Write([]byte(`{"execute":"qmp_capabilities","id":0}` + "\n")); err != nil {
		return fmt.Errorf("send qmp_capabilities: %w", err)
	}
	line, err = c.readLine()
	if err != nil {
		return fmt.Errorf("read the answer to qmp_capabilities: %w", err)
	}
	m, err := parse(line)
	if err != nil {
		return err
	}
	if m.Error != nil {
		m.Error.Command = "qmp_capabilities"
		return m.Error
	}
	if m.Return == nil {
		return fmt.Errorf("expected the answer to qmp_capabilities, got %s", excerpt(line))
	}
	return nil
}

// Greeting is what QEMU said when the connection opened.
func (c *Client) Greeting() Greeting { return c.greeting }

// Events delivers QEMU's events in order. It never blocks the reader: when
// the buffer is full the oldest event is dropped (Dropped counts them). It
// is closed when the connection ends.
func (c *Client) Events() <-chan Event { return c.events }

// Dropped is how many events were dropped because Events was full.
func (c *Client) Dropped() uint64 { return c.dropped.Load() }

// Done is closed when the connection ends (Close, QEMU gone, a read error).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why the connection ended, nil while it is open.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection: every waiting command returns ErrClosed, and
// Events is closed by the time Close returns.
func (c *Client) Close() error {
	c.fail(ErrClosed)
	<-c.readerN
	return nil
}

// fail ends the connection with err, unless it has ended already.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		close(c.done)
		c.conn.Close()
	}
	c.mu.Unlock()
}

// Execute sends command with args (nil, or anything that marshals to a
// JSON object) and decodes its "return" into result (nil: ignored). A QMP
// error is an *Error; ctx ending first gives ctx's error (the answer, if
// it comes, is then dropped, and QEMU may still have run the command); the
// connection's end gives why it ended. One command is in flight at a time:
// the others wait their turn (or their ctx).
func (c *Client) Execute(ctx context.Context, command string, args, result any) error {
	return c.execute(ctx, command, args, result, -1)
}

// execute is Execute, with fd (when >= 0) passed by SCM_RIGHTS along with
// the command's bytes.
func (c *Client) execute(ctx context.Context, command string, args, result any, fd int) error {
	req, id, err := c.request(command, args)
	if err != nil {
		return err
	}
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return fmt.Errorf("qmp %s: %w", command, ctx.Err())
	case <-c.done:
		return c.Err()
	}
	ch := make(chan answer, 1)
	c.mu.Lock()
	if c.err != nil { // it ended while this command waited its turn
		defer c.mu.Unlock()
		return c.err
	}
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	if err := c.send(ctx, command, req, fd); err != nil {
		return err
	}
	select {
	case a := <-ch:
		return a.decode(command, result)
	case <-ctx.Done():
		return fmt.Errorf("qmp %s: %w", command, ctx.Err())
	case <-c.done:
		return c.Err()
	}
}

// request marshals one command with a fresh id.
func (c *Client) request(command string, args any) ([]byte, uint64, error) {
	id := c.nextID.Add(1)
	r := struct {
		Execute   string          `json:"execute"`
		Arguments json.RawMessage `json:"arguments,omitempty"`
		ID        uint64          `json:"id"`
	}{Execute: command, ID: id}
	if args != nil {
		a, err := json.Marshal(args)
		if err != nil {
			return nil, 0, fmt.Errorf("qmp %s: arguments: %w", command, err)
		}
		if !bytes.Equal(a, []byte("null")) {
			if len(a) == 0 || a[0] != '{' {
				return nil, 0, fmt.Errorf("qmp %s: arguments must be a JSON object, not %s", command, excerpt(a))
			}
			r.Arguments = a
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, 0, fmt.Errorf("qmp %s: %w", command, err)
	}
	return append(b, '\n'), id, nil
}

// send writes one request. A write that fails, or that ctx cuts short,
// after some of its bytes went ends the connection: the stream would hold
// half a command.
func (c *Client) send(ctx context.Context, command string, req []byte, fd int) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	n := 0
	err := withDeadline(ctx, c.conn.SetWriteDeadline, func() (err error) {
		if fd >= 0 {
			n, err = c.writeFD(req, fd)
		} else {
			n, err = c.conn.Write(req)
		}
		return err
	})
	switch {
	case err == nil:
		return nil
	case c.Err() != nil: // the connection ended under the write
		return c.Err()
	case n > 0:
		c.fail(fmt.Errorf("qmp: write cut short (%d of %d bytes): %w", n, len(req), err))
	}
	if ctx.Err() != nil {
		return fmt.Errorf("qmp %s: %w", command, ctx.Err())
	}
	return fmt.Errorf("qmp %s: write: %w", command, err)
}

// decode turns an answer into the command's error or result.
func (a answer) decode(command string, result any) error {
	if a.err != nil {
		e := *a.err
		e.Command = command
		return &e
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(a.ret, result); err != nil {
		return fmt.Errorf("qmp %s: decode the answer: %w", command, err)
	}
	return nil
}
