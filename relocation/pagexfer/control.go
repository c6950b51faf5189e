package pagexfer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Control messages drive the two-phase commit after the image, on the same
// connection (README.md, "Commit"). Each is one frame:
//
//	magic "PXC" | version u8 | kind u8 | length u16 | body[length] | CRC-32C u32
//
// where the CRC covers everything before it and the body is the migration
// ID (16 bytes) followed by the kind's fields.

// MsgKind is the kind of a control message.
type MsgKind uint8

const (
	MsgVerified     MsgKind = 1 // target → source: the image checked out and the target is ready to run it
	MsgFailed       MsgKind = 2 // target → source: the image or the target failed (Reason)
	MsgCommit       MsgKind = 3 // source → target: run it; from now on the target is authoritative
	MsgAbort        MsgKind = 4 // source → target: discard it (Reason)
	MsgResumed      MsgKind = 5 // target → source: the guest runs on the target
	MsgResumeFailed MsgKind = 6 // target → source: the target could not run it and destroyed its copy (Reason)
	MsgDrained      MsgKind = 7 // target → source, on any stream: everything before the drain record is applied
)

func (k MsgKind) String() string {
	switch k {
	case MsgVerified:
		return "Verified"
	case MsgFailed:
		return "Failed"
	case MsgCommit:
		return "Commit"
	case MsgAbort:
		return "Abort"
	case MsgResumed:
		return "Resumed"
	case MsgResumeFailed:
		return "ResumeFailed"
	case MsgDrained:
		return "Drained"
	}
	return fmt.Sprintf("MsgKind(%d)", uint8(k))
}

// ControlVersion is the control-message version.
const ControlVersion = 1

// MaxReason is the longest reason a message carries (longer ones are cut).
const MaxReason = 1024

var controlMagic = [3]byte{'P', 'X', 'C'}

const (
	controlHead = 3 + 1 + 1 + 2
	idSize      = 16
	totalsSize  = 28
)

// Message is one control message.
type Message struct {
	Kind   MsgKind
	ID     ID
	Totals Totals // Verified: what the target received
	Reason string // Failed, Abort, ResumeFailed
}

func hasReason(k MsgKind) bool {
	return k == MsgFailed || k == MsgAbort || k == MsgResumeFailed
}

// AppendMessage appends the encoding of m.
func AppendMessage(b []byte, m Message) ([]byte, error) {
	var body int
	switch {
	case m.Kind == MsgVerified:
		body = idSize + totalsSize
	case m.Kind == MsgCommit || m.Kind == MsgResumed || m.Kind == MsgDrained:
		body = idSize
	case hasReason(m.Kind):
		m.Reason = cutReason(m.Reason)
		body = idSize + len(m.Reason)
	default:
		return b, fmt.Errorf("control message: unknown kind %d", m.Kind)
	}
	start := len(b)
	b = append(b, controlMagic[:]...)
	b = append(b, ControlVersion, byte(m.Kind))
	b = binary.LittleEndian.AppendUint16(b, uint16(body))
	b = append(b, m.ID[:]...)
	if m.Kind == MsgVerified {
		b = appendTotals(b, m.Totals)
	}
	if hasReason(m.Kind) {
		b = append(b, m.Reason...)
	}
	return binary.LittleEndian.AppendUint32(b, crc(0, b[start:])), nil
}

// cutReason makes s valid UTF-8 of at most MaxReason bytes.
func cutReason(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= MaxReason {
		return s
	}
	s = s[:MaxReason]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// WriteMessage writes one control message.
func WriteMessage(w io.Writer, m Message) error {
	b, err := AppendMessage(nil, m)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", m.Kind, err)
	}
	return nil
}

// ReadMessage reads one control message, reading exactly its bytes.
func ReadMessage(r io.Reader) (Message, error) {
	var head [controlHead]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return Message{}, fmt.Errorf("read control message: %w", eofUnexpected(err))
	}
	if [3]byte(head[:3]) != controlMagic {
		return Message{}, fmt.Errorf("%w: control message: bad magic %q", ErrFormat, head[:3])
	}
	if head[3] != ControlVersion {
		return Message{}, fmt.Errorf("%w: control message version %d, this side speaks %d", ErrVersion, head[3], ControlVersion)
	}
	m := Message{Kind: MsgKind(head[4])}
	n := int(binary.LittleEndian.Uint16(head[5:]))
	switch {
	case m.Kind == MsgVerified:
		if n != idSize+totalsSize {
			return Message{}, fmt.Errorf("%w: %s message of %d bytes", ErrFormat, m.Kind, n)
		}
	case m.Kind == MsgCommit || m.Kind == MsgResumed || m.Kind == MsgDrained:
		if n != idSize {
			return Message{}, fmt.Errorf("%w: %s message of %d bytes", ErrFormat, m.Kind, n)
		}
	case hasReason(m.Kind):
		if n < idSize || n > idSize+MaxReason {
			return Message{}, fmt.Errorf("%w: %s message of %d bytes", ErrFormat, m.Kind, n)
		}
	default:
		return Message{}, fmt.Errorf("%w: unknown control message kind %d", ErrFormat, head[4])
	}
	rest := make([]byte, n+4)
	if _, err := io.ReadFull(r, rest); err != nil {
		return Message{}, fmt.Errorf("read %s message: %w", m.Kind, eofUnexpected(err))
	}
	body := rest[:n]
	if got, want := crc(crc(0, head[:]), body), binary.LittleEndian.Uint32(rest[n:]); got != want {
		return Message{}, fmt.Errorf("%w: %s message: computed %#08x, message says %#08x", ErrChecksum, m.Kind, got, want)
	}
	copy(m.ID[:], body)
	switch {
	case m.Kind == MsgVerified:
		m.Totals = parseTotals(body[idSize:])
	case hasReason(m.Kind):
		if !utf8.Valid(body[idSize:]) {
			return Message{}, fmt.Errorf("%w: %s message: reason is not UTF-8", ErrFormat, m.Kind)
		}
		m.Reason = string(body[idSize:])
	}
	return m, nil
}

// RemoteError is a refusal or failure the peer reported (Failed, Abort,
// ResumeFailed).
type RemoteError struct {
	Kind   MsgKind
	Reason string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("peer sent %s: %s", e.Kind, e.Reason)
}

// ErrInDoubt wraps the error of AwaitResumed when the target's answer did
// not arrive: the target may or may not be running the guest.
var ErrInDoubt = errors.New("commit outcome unknown")

// expect reads a message, checks its ID and that its kind is one of kinds.
func expect(r io.Reader, id ID, kinds ...MsgKind) (Message, error) {
	m, err := ReadMessage(r)
	if err != nil {
		return m, err
	}
	if m.ID != id {
		return m, fmt.Errorf("%w: %s message for migration %s, expected %s", ErrFormat, m.Kind, m.ID, id)
	}
	for _, k := range kinds {
		if m.Kind == k {
			return m, nil
		}
	}
	return m, fmt.Errorf("%w: unexpected %s message (expected %v)", ErrFormat, m.Kind, kinds)
}

// Target side.

// WriteVerified tells the source the image checked out (st is Receive's
// result) and the target is ready to run it.
func WriteVerified(w io.Writer, id ID, st Stats) error {
	return WriteMessage(w, Message{Kind: MsgVerified, ID: id, Totals: st.Totals})
}

// WriteFailed tells the source the image or the target failed.
func WriteFailed(w io.Writer, id ID, reason string) error {
	return WriteMessage(w, Message{Kind: MsgFailed, ID: id, Reason: reason})
}

// AwaitCommit waits for the source's decision. nil means Commit: the
// target now owns the guest and must run it. A *RemoteError means Abort;
// any other error (connection lost, garbage) means no Commit arrived. In
// both cases the target must discard its copy: before Commit the source is
// authoritative.
func AwaitCommit(r io.Reader, id ID) error {
	m, err := expect(r, id, MsgCommit, MsgAbort)
	if err != nil {
		return fmt.Errorf("await commit: %w", err)
	}
	if m.Kind == MsgAbort {
		return &RemoteError{Kind: m.Kind, Reason: m.Reason}
	}
	return nil
}

// WriteResumed tells the source the guest runs on the target.
func WriteResumed(w io.Writer, id ID) error {
	return WriteMessage(w, Message{Kind: MsgResumed, ID: id})
}

// WriteResumeFailed tells the source the target could not run the guest
// after Commit and has destroyed its copy, so the source may resume it.
// Send it only once the target copy can never run.
func WriteResumeFailed(w io.Writer, id ID, reason string) error {
	return WriteMessage(w, Message{Kind: MsgResumeFailed, ID: id, Reason: reason})
}

// Source side.

// AwaitVerified waits for the target's verdict on the image Send wrote.
// nil means Verified with exactly res's totals: the caller may Commit. A
// *RemoteError means the target failed; any other error means no usable
// verdict. Either way the caller must Abort (if it still can) and resume
// the source.
func AwaitVerified(r io.Reader, res Result) error {
	m, err := expect(r, res.ID, MsgVerified, MsgFailed)
	if err != nil {
		return fmt.Errorf("await verified: %w", err)
	}
	if m.Kind == MsgFailed {
		return &RemoteError{Kind: m.Kind, Reason: m.Reason}
	}
	if m.Totals != res.Totals {
		return fmt.Errorf("await verified: %w: target verified %d rounds, %d data and %d zero pages in %d bytes; %d, %d, %d and %d were sent",
			ErrChecksum, m.Totals.Rounds, m.Totals.DataPages, m.Totals.ZeroPages, m.Totals.Bytes,
			res.Totals.Rounds, res.Totals.DataPages, res.Totals.ZeroPages, res.Totals.Bytes)
	}
	return nil
}

// WriteCommit hands the guest to the target. From the moment it is
// written the source must neither resume nor destroy its copy until
// AwaitResumed (or the target's agent) says what happened.
func WriteCommit(w io.Writer, id ID) error {
	return WriteMessage(w, Message{Kind: MsgCommit, ID: id})
}

// WriteAbort tells the target to discard the image.
func WriteAbort(w io.Writer, id ID, reason string) error {
	return WriteMessage(w, Message{Kind: MsgAbort, ID: id, Reason: reason})
}

// AwaitResumed waits for the target's last word after Commit. nil: the
// guest runs on the target; destroy the source copy. A *RemoteError
// (ResumeFailed): the target destroyed its copy; resume the source. Any
// other error wraps ErrInDoubt: keep the source paused and ask the target's
// agent whether migration ID runs there.
func AwaitResumed(r io.Reader, id ID) error {
	m, err := expect(r, id, MsgResumed, MsgResumeFailed)
	if err != nil {
		return fmt.Errorf("await resumed: %w: %w", ErrInDoubt, err)
	}
	if m.Kind == MsgResumeFailed {
		return &RemoteError{Kind: m.Kind, Reason: m.Reason}
	}
	return nil
}
