package qmp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"
	"unicode/utf8"
)

// message is any line QEMU sends after the greeting.
type message struct {
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Timestamp *struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
	Return json.RawMessage `json:"return"`
	Error  *Error          `json:"error"`
	ID     *uint64         `json:"id"`
}

// UnmarshalJSON reads QMP's error object {"class", "desc"}.
func (e *Error) UnmarshalJSON(b []byte) error {
	var v struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	e.Class, e.Desc = v.Class, v.Desc
	return nil
}

// reader reads every line after the handshake until the connection ends,
// routing answers by id and events to the channel.
func (c *Client) reader() {
	defer close(c.readerN)
	defer close(c.events)
	for {
		line, err := c.readLine()
		if err != nil {
			c.fail(err)
			return
		}
		m, err := parse(line)
		if err != nil {
			c.fail(err)
			return
		}
		switch {
		case m.Event != "":
			c.deliver(m.event())
		case m.ID != nil:
			c.route(*m.ID, answer{ret: m.Return, err: m.Error})
		}
		// An answer without an id answers no request of ours (they all
		// carry one): it is dropped.
	}
}

// readLine reads one line of at most maxLine bytes, skipping blank ones.
// The slice is valid until the next read.
func (c *Client) readLine() ([]byte, error) {
	for {
		line, err := c.rd.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return nil, fmt.Errorf("qmp: QEMU sent a line longer than %d bytes (the limit): %s", c.maxLine, excerpt(line))
		case errors.Is(err, io.EOF):
			return nil, ErrDisconnected
		case errors.Is(err, syscall.ECONNRESET):
			return nil, fmt.Errorf("%w (connection reset)", ErrDisconnected)
		case err != nil:
			return nil, fmt.Errorf("qmp: read: %w", err)
		}
		if len(bytes.TrimSpace(line)) > 0 {
			return line, nil
		}
	}
}

// parse reads one line as a QMP answer or event.
func parse(line []byte) (message, error) {
	var m message
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("qmp: QEMU sent a line that is not JSON (%v): %s", err, excerpt(line))
	}
	if m.Event == "" && m.Return == nil && m.Error == nil {
		return m, fmt.Errorf("qmp: QEMU sent a line that is neither an answer nor an event: %s", excerpt(line))
	}
	return m, nil
}

// event is the Event that m carries.
func (m message) event() Event {
	e := Event{Name: m.Event}
	if len(m.Data) > 0 && !bytes.Equal(m.Data, []byte("null")) {
		e.Data = m.Data
	}
	if m.Timestamp != nil {
		e.Timestamp = time.Unix(m.Timestamp.Seconds, m.Timestamp.Microseconds*1000)
	}
	return e
}

// route hands an answer to the command waiting for it; an answer nobody
// waits for any more (its ctx ended) is dropped.
func (c *Client) route(id uint64, a answer) {
	c.mu.Lock()
	ch := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ch != nil {
		ch <- a // buffered, one answer per id
	}
}

// deliver queues e without blocking: when the buffer is full the oldest
// event makes room. The reader is the only sender, so after one receive
// the send cannot block.
func (c *Client) deliver(e Event) {
	select {
	case c.events <- e:
		return
	default:
	}
	select {
	case <-c.events:
		c.dropped.Add(1)
	default:
	}
	select {
	case c.events <- e:
	default:
		c.dropped.Add(1)
	}
}

// excerpt quotes the start of b for an error message.
func excerpt(b []byte) string {
	const max = 80
	b = bytes.TrimRight(b, "\r\n")
	if len(b) <= max {
		return fmt.Sprintf("%q", b)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return fmt.Sprintf("%q... (%d bytes)", b[:cut], len(b))
}
