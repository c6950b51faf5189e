package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kolo/xmlrpc"

	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// fakeConsole is an agent's console methods for one domain: what the
// guest printed, what was typed into it, and whether it runs.
type fakeConsole struct {
	mu      sync.Mutex
	output  []byte
	typed   [][]byte
	stopped bool
}

func (f *fakeConsole) call(method string, reply any, params ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch method {
	case "domain.console":
		off := params[1].(int64)
		if off < 0 || off > int64(len(f.output)) {
			off = 0
		}
		c := reply.(*consoleChunk)
		*c = consoleChunk{Offset: off, Raw: base64.StdEncoding.EncodeToString(f.output[off:]), Next: int64(len(f.output)), Live: !f.stopped}
	case "domain.console_input":
		b, err := base64.StdEncoding.DecodeString(string(params[1].(xmlrpc.Base64)))
		if err != nil {
			return err
		}
		if len(b) > control.MaxConsoleInput {
			return fmt.Errorf("console input: %d bytes at once", len(b))
		}
		f.typed = append(f.typed, b)
		// The guest echoes what it got.
		f.output = append(f.output, b...)
	default:
		return fmt.Errorf("unexpected call %s", method)
	}
	return nil
}

func (f *fakeConsole) session(out *bytes.Buffer) *consoleSession {
	return &consoleSession{name: "vm1", out: out, call: f.call, poll: time.Millisecond}
}

// Piped input is typed into the guest in calls of at most
// MaxConsoleInput bytes, all of it and in order, and what the guest
// printed (escape sequences included) reaches the output unchanged.
func TestConsolePipedInputIsSentInBoundedPieces(t *testing.T) {
	f := &fakeConsole{output: []byte("login: \x1b[1mbold\x1b[0m ")}
	var out bytes.Buffer
	input := strings.Repeat("0123456789", 1000) // 10000 bytes
	if err := f.session(&out).piped(strings.NewReader(input), false, nil); err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, p := range f.typed {
		if len(p) > control.MaxConsoleInput {
			t.Errorf("one call typed %d bytes, more than %d", len(p), control.MaxConsoleInput)
		}
		all = append(all, p...)
	}
	if string(all) != input {
		t.Fatalf("the guest got %d bytes, want the %d piped", len(all), len(input))
	}
	if want := "login: \x1b[1mbold\x1b[0m " + input; out.String() != want {
		t.Errorf("output %q..., want the tail and the echo unchanged", out.String()[:40])
	}
}

// Without input (standard input at its end at once) the console prints
// the tail and ends, as before it took input.
func TestConsoleWithoutInputPrintsTheTail(t *testing.T) {
	f := &fakeConsole{output: []byte("TESTGUEST READY\n")}
	var out bytes.Buffer
	if err := f.session(&out).piped(strings.NewReader(""), false, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != "TESTGUEST READY\n" || len(f.typed) != 0 {
		t.Fatalf("output %q, typed %q", out.String(), f.typed)
	}
}

// Ctrl-] detaches: what was typed before it reaches the guest, it and
// what follows do not.
func TestConsoleCtrlBracketDetaches(t *testing.T) {
	f := &fakeConsole{}
	var out bytes.Buffer
	end, err := f.session(&out).attach(strings.NewReader("ls\r\x03\x1dreboot\r"), nil)
	if err != nil || end != "detached" {
		t.Fatalf("attach ended %q, %v; want detached", end, err)
	}
	if len(f.typed) != 1 || string(f.typed[0]) != "ls\r\x03" {
		t.Fatalf("the guest got %q, want only what came before Ctrl-]", f.typed)
	}
}

// A domain that stops ends the interactive console.
func TestConsoleEndsWhenTheDomainStops(t *testing.T) {
	f := &fakeConsole{output: []byte("Power down.\n"), stopped: true}
	var out bytes.Buffer
	pr, pw := ioPipe()
	defer pw.Close()
	end, err := f.session(&out).attach(pr, nil)
	if err != nil || !strings.Contains(end, "not running") {
		t.Fatalf("attach ended %q, %v; want the domain not running", end, err)
	}
	if out.String() != "Power down.\n" {
		t.Errorf("output %q", out.String())
	}
}

// ioPipe is an input that never ends by itself (a terminal nobody types
// on).
func ioPipe() (*os.File, *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	return r, w
}

// With -o json each read that brings output is one JSON line, the bytes
// the console dropped since the last read are counted in lost, and the
// read that finds the domain stopped is one too.
func TestConsoleJSONLines(t *testing.T) {
	var out bytes.Buffer
	reads := []consoleChunk{
		{Offset: 0, Raw: base64.StdEncoding.EncodeToString([]byte("boot\n")), Next: 5, Live: true},
		{Offset: 5, Next: 5, Live: true}, // nothing new: no line
		{Offset: 105, Raw: base64.StdEncoding.EncodeToString([]byte("login: ")), Next: 112, Live: true}, // 100 bytes lost
		{Offset: 112, Next: 112, Live: false},
	}
	n := 0
	s := &consoleSession{name: "vm1", out: &out, poll: time.Millisecond, json: true, call: func(method string, reply any, params ...any) error {
		*reply.(*consoleChunk) = reads[min(n, len(reads)-1)]
		n++
		return nil
	}}
	if err := s.piped(strings.NewReader(""), true, nil); err != nil {
		t.Fatal(err)
	}
	want := `{"domain":"vm1","offset":0,"next":5,"live":true,"lost":0,"output":"boot\n"}` + "\n" +
		`{"domain":"vm1","offset":105,"next":112,"live":true,"lost":100,"output":"login: "}` + "\n" +
		`{"domain":"vm1","offset":112,"next":112,"live":false,"lost":0,"output":""}` + "\n"
	if out.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", out.String(), want)
	}
}
