package pagexfer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

func mustMessage(t testing.TB, m Message) []byte {
	t.Helper()
	b, err := AppendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMessageRoundTrip(t *testing.T) {
	id := ID{9, 8, 7}
	msgs := []Message{
		{Kind: MsgVerified, ID: id, Totals: Totals{Rounds: 3, DataPages: 1 << 40, ZeroPages: 5, Bytes: 1<<63 + 1}},
		{Kind: MsgFailed, ID: id, Reason: "round 2: checksum mismatch"},
		{Kind: MsgCommit, ID: id},
		{Kind: MsgAbort, ID: id, Reason: ""},
		{Kind: MsgResumed, ID: id},
		{Kind: MsgResumeFailed, ID: id, Reason: "vcpu: KVM_RUN: EFAULT — ünïcode"},
	}
	var stream bytes.Buffer
	for _, m := range msgs {
		if err := WriteMessage(&stream, m); err != nil {
			t.Fatal(err)
		}
	}
	stream.WriteString("rest")
	for _, want := range msgs {
		got, err := ReadMessage(&stream)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	if stream.String() != "rest" {
		t.Fatalf("ReadMessage read past its message: %q left", stream.String())
	}
	if _, err := AppendMessage(nil, Message{Kind: 42}); err == nil {
		t.Fatal("unknown kind encoded")
	}
	if MsgResumeFailed.String() != "ResumeFailed" || MsgKind(42).String() != "MsgKind(42)" {
		t.Fatal("MsgKind.String")
	}
}

func TestReasonCut(t *testing.T) {
	long := strings.Repeat("é", MaxReason) // 2 bytes each
	b := mustMessage(t, Message{Kind: MsgFailed, Reason: long + "\xff"})
	m, err := ReadMessage(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Reason) != MaxReason || !strings.HasPrefix(long, m.Reason) {
		t.Fatalf("reason of %d bytes", len(m.Reason))
	}
	m2, _ := ReadMessage(bytes.NewReader(mustMessage(t, Message{Kind: MsgAbort, Reason: "a\xffb"})))
	if m2.Reason != "a\uFFFDb" {
		t.Fatalf("invalid UTF-8 reason became %q", m2.Reason)
	}
}

func TestMalformedMessages(t *testing.T) {
	good := mustMessage(t, Message{Kind: MsgCommit, ID: ID{1}})
	reason := mustMessage(t, Message{Kind: MsgFailed, ID: ID{1}, Reason: "why"})
	withLen := func(kind MsgKind, n int) []byte {
		b := append([]byte("PXC"), ControlVersion, byte(kind))
		b = binary.LittleEndian.AppendUint16(b, uint16(n))
		return append(b, make([]byte, n+4)...)
	}
	resign := func(b []byte) []byte { // fix the CRC after a change
		n := len(b) - 4
		return binary.LittleEndian.AppendUint32(b[:n:n], crc(0, b[:n]))
	}
	tests := []struct {
		name string
		b    []byte
		want error
		sub  string
	}{
		{"empty", nil, io.ErrUnexpectedEOF, "read control message"},
		{"short head", good[:5], io.ErrUnexpectedEOF, "read control message"},
		{"short body", good[:len(good)-1], io.ErrUnexpectedEOF, "read Commit message"},
		{"bad magic", flip(good, 1), ErrFormat, "magic"},
		{"version", func() []byte { b := bytes.Clone(good); b[3] = 2; return b }(), ErrVersion, "version 2"},
		{"unknown kind", func() []byte { b := bytes.Clone(good); b[4] = 99; return b }(), ErrFormat, "kind 99"},
		{"commit with body", withLen(MsgCommit, 17), ErrFormat, "Commit message of 17"},
		{"verified short", withLen(MsgVerified, 20), ErrFormat, "Verified message of 20"},
		{"reason too long", withLen(MsgFailed, idSize+MaxReason+1), ErrFormat, "Failed message of"},
		{"reason without id", withLen(MsgAbort, 3), ErrFormat, "Abort message of 3"},
		{"checksum", flip(good, 9), ErrChecksum, "Commit message"},
		{"reason not utf-8", resign(func() []byte { b := bytes.Clone(reason); b[len(b)-5] = 0xff; return b }()), ErrFormat, "not UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadMessage(bytes.NewReader(tc.b))
			if err == nil || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.sub) {
				t.Fatalf("error %v, want %v mentioning %q", err, tc.want, tc.sub)
			}
		})
	}
}

func TestCommitHelpers(t *testing.T) {
	id := ID{5}
	res := Result{ID: id, Totals: Totals{Rounds: 2, DataPages: 10, Bytes: 999}}
	st := Stats{Totals: res.Totals}
	buf := func(ms ...Message) *bytes.Buffer {
		var b bytes.Buffer
		for _, m := range ms {
			if err := WriteMessage(&b, m); err != nil {
				t.Fatal(err)
			}
		}
		return &b
	}

	// The happy path, written by the helpers.
	var toSource, toTarget bytes.Buffer
	if err := WriteVerified(&toSource, id, st); err != nil {
		t.Fatal(err)
	}
	if err := AwaitVerified(&toSource, res); err != nil {
		t.Fatal(err)
	}
	if err := WriteCommit(&toTarget, id); err != nil {
		t.Fatal(err)
	}
	if err := AwaitCommit(&toTarget, id); err != nil {
		t.Fatal(err)
	}
	if err := WriteResumed(&toSource, id); err != nil {
		t.Fatal(err)
	}
	if err := AwaitResumed(&toSource, id); err != nil {
		t.Fatal(err)
	}

	var re *RemoteError
	// Target failure and source abort are RemoteErrors.
	var b bytes.Buffer
	WriteFailed(&b, id, "round 1: checksum")
	if err := AwaitVerified(&b, res); !errors.As(err, &re) || re.Kind != MsgFailed || re.Reason != "round 1: checksum" {
		t.Fatalf("Failed: %v", err)
	}
	WriteAbort(&b, id, "operator cancel")
	if err := AwaitCommit(&b, id); !errors.As(err, &re) || re.Kind != MsgAbort || !strings.Contains(err.Error(), "operator cancel") {
		t.Fatalf("Abort: %v", err)
	}
	WriteResumeFailed(&b, id, "KVM_RUN failed")
	if err := AwaitResumed(&b, id); !errors.As(err, &re) || re.Kind != MsgResumeFailed || errors.Is(err, ErrInDoubt) {
		t.Fatalf("ResumeFailed: %v", err)
	}

	// Wrong totals, wrong migration, wrong kind, lost connection.
	bad := res
	bad.Totals.DataPages++
	if err := AwaitVerified(buf(Message{Kind: MsgVerified, ID: id, Totals: res.Totals}), bad); !errors.Is(err, ErrChecksum) {
		t.Fatalf("verified other totals: %v", err)
	}
	if err := AwaitVerified(buf(Message{Kind: MsgVerified, ID: ID{6}, Totals: res.Totals}), res); err == nil || !strings.Contains(err.Error(), "expected "+id.String()) {
		t.Fatalf("verified other migration: %v", err)
	}
	if err := AwaitCommit(buf(Message{Kind: MsgResumed, ID: id}), id); err == nil || errors.As(err, &re) {
		t.Fatalf("Resumed instead of Commit: %v", err)
	}
	if err := AwaitCommit(&bytes.Buffer{}, id); err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("no decision: %v", err)
	}
	if err := AwaitResumed(&bytes.Buffer{}, id); !errors.Is(err, ErrInDoubt) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("lost answer after commit: %v", err)
	}
	if err := AwaitResumed(buf(Message{Kind: MsgCommit, ID: id}), id); !errors.Is(err, ErrInDoubt) {
		t.Fatalf("garbage answer after commit: %v", err)
	}
}
