package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kolo/xmlrpc"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// detachKey ends an interactive console (Ctrl-], as xm console and
// telnet); it is never sent to the guest.
const detachKey = 0x1d

// consoleHelp is `ovm console`'s long help.
const consoleHelp = `Show a domain's serial console.

On a terminal the console is interactive, as xm console: what you type goes
to the guest (Ctrl-C included), its output appears as it comes, and Ctrl-]
detaches (the guest keeps running). The terminal is put back as it was
however ovm ends.

Otherwise ovm prints the latest output (a tail) and, with -f, follows it
until Ctrl-C or the domain stops; bytes on a standard input that is not a
terminal (a pipe, a file) are typed into the guest, and ovm ends once they
are sent and the console has been quiet for a second (with -f it follows
on). Input needs a qemu domain; the workload guest reads none.

With -o json the console is never interactive: each read that brings
output (and the first read, whatever it brings, and the one that finds the
domain stopped) is one JSON document on its own line (JSON lines): {"domain", "offset", "next", "live", "lost",
"output"}, output being the bytes read as text (bytes that are not UTF-8
become U+FFFD) and lost the bytes the console dropped before offset since
the last read. A standard input that is a terminal is not read; one that
is not is typed in as without -o json.`

func consoleCommand(g *globals) *cobra.Command {
	var follow bool
	c := &cobra.Command{
		Use:   "console DOMAIN",
		Short: "Attach to a domain's console (interactive on a terminal, Ctrl-] detaches); -f follows it",
		Long:  consoleHelp,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.connect()
			if err != nil {
				return err
			}
			defer cl.Close()
			s := &consoleSession{
				name: args[0], out: cmd.OutOrStdout(), poll: 250 * time.Millisecond, json: g.json(),
				call: func(method string, reply any, params ...any) error {
					ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
					defer cancel()
					return cl.Call(ctx, method, reply, params...)
				},
			}
			stop := make(chan os.Signal, 1)
			signal.Notify(stop, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
			defer signal.Stop(stop)
			in := cmd.InOrStdin()
			if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				if s.json {
					in = strings.NewReader("") // nothing typed: -o json is for scripts
				} else {
					return s.interactive(f, cmd.ErrOrStderr(), stop)
				}
			}
			return s.piped(in, follow, stop)
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output (until Ctrl-C or the domain stops)")
	return c
}

// consoleSession is one `ovm console`: it reads the domain's console from
// off on and types into it.
type consoleSession struct {
	name string
	out  io.Writer
	call func(method string, reply any, params ...any) error
	poll time.Duration // between reads of the console
	off  int64         // next byte wanted; -1 (the tail) before the first read
	read bool          // the first read happened
	json bool          // print each read as a JSON line (consoleRead)
	live bool          // the last read found the domain running
}

// consoleRead is one read of the console as -o json prints it.
type consoleRead struct {
	Domain string `json:"domain"`
	Offset int64  `json:"offset"`
	Next   int64  `json:"next"`
	Live   bool   `json:"live"`
	Lost   int64  `json:"lost"`
	Output string `json:"output"`
}

// consoleChunk is what domain.console answers, asked raw.
type consoleChunk struct {
	Offset int64  `xmlrpc:"offset"`
	Raw    string `xmlrpc:"raw"` // base64, as kolo/xmlrpc hands it over
	Next   int64  `xmlrpc:"next"`
	Live   bool   `xmlrpc:"live"`
}

// pull prints what the console has from s.off on; it says whether it
// printed anything and whether the console is still live (the domain
// runs).
func (s *consoleSession) pull() (got, live bool, err error) {
	off := s.off
	if !s.read {
		off = -1 // the latest output first, as tail does
	}
	var c consoleChunk
	if err := s.call("domain.console", &c, s.name, off, 64<<10, true); err != nil {
		return false, false, err
	}
	data, err := base64.StdEncoding.DecodeString(c.Raw)
	if err != nil {
		return false, false, fmt.Errorf("domain.console: raw console data is not base64: %w", err)
	}
	var lost int64
	if s.read && c.Offset > s.off {
		lost = c.Offset - s.off
	}
	first, stopped := !s.read, s.live && !c.Live
	s.read, s.live = true, c.Live
	s.off = c.Next
	if s.json {
		if first || stopped || len(data) > 0 || lost > 0 {
			r := consoleRead{Domain: s.name, Offset: c.Offset, Next: c.Next, Live: c.Live, Lost: lost, Output: string(data)}
			if err := writeJSONLine(s.out, r); err != nil {
				return false, false, err
			}
		}
		return len(data) > 0, c.Live, nil
	}
	if lost > 0 {
		fmt.Fprintf(s.out, "[... %s of console lost ...]\n", sizeText(lost))
	}
	if _, err := s.out.Write(data); err != nil {
		return false, false, err
	}
	return len(data) > 0, c.Live, nil
}

// send types p into the guest, in pieces of at most
// control.MaxConsoleInput bytes.
func (s *consoleSession) send(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), control.MaxConsoleInput)
		if err := s.call("domain.console_input", nil, s.name, xmlrpc.Base64(base64.StdEncoding.EncodeToString(p[:n]))); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// keys reads r in the background and delivers each read (what was typed
// or piped so far, at most MaxConsoleInput bytes: one batch); the channel
// closes at the end of r, after a read error is delivered on errs.
func keys(r io.Reader) (<-chan []byte, <-chan error) {
	ch, errs := make(chan []byte), make(chan error, 1)
	go func() {
		defer close(ch)
		buf := make([]byte, control.MaxConsoleInput)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				ch <- append([]byte(nil), buf[:n]...)
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					errs <- err
				}
				return
			}
		}
	}()
	return ch, errs
}

// piped is the console with a standard input that is not a terminal: the
// tail, then the input typed in, then the output until the input ended
// and the console was quiet for a second (-f: until the domain stops or a
// signal).
func (s *consoleSession) piped(in io.Reader, follow bool, stop <-chan os.Signal) error {
	got, live, err := s.pull()
	if err != nil {
		return err
	}
	input, inErr := keys(in)
	sent := false
	quiet := time.Now()
	for {
		if got {
			quiet = time.Now()
		}
		switch {
		case !live && !got:
			return nil
		case input == nil && !follow && (!sent || time.Since(quiet) >= time.Second):
			return nil
		}
		select {
		case p, ok := <-input:
			if !ok {
				input = nil
				select {
				case err := <-inErr:
					return fmt.Errorf("read standard input: %w", err)
				default:
				}
				continue
			}
			if err := s.send(p); err != nil {
				return err
			}
			sent, quiet = true, time.Now()
			continue
		case <-stop:
			return nil
		case <-time.After(s.poll):
		}
		if got, live, err = s.pull(); err != nil {
			return err
		}
	}
}

// interactive is the console on a terminal: raw mode, every keystroke
// batch sent as it comes, the output followed, Ctrl-] to detach. The
// terminal is restored on every way out.
func (s *consoleSession) interactive(tty *os.File, msgs io.Writer, stop <-chan os.Signal) error {
	old, err := term.MakeRaw(int(tty.Fd()))
	if err != nil {
		return fmt.Errorf("put the terminal in raw mode: %w", err)
	}
	defer term.Restore(int(tty.Fd()), old)
	fmt.Fprintf(msgs, "Connected to the console of %s; Ctrl-] detaches.\r\n", s.name)
	s.poll = 100 * time.Millisecond
	end, err := s.attach(tty, stop)
	fmt.Fprintf(msgs, "\r\n[%s]\r\n", end)
	return err
}

// attach runs the interactive loop until the user detaches, the domain
// stops, a signal comes or a call fails; it says which.
func (s *consoleSession) attach(in io.Reader, stop <-chan os.Signal) (string, error) {
	input, inErr := keys(in)
	for {
		got, live, err := s.pull()
		if err != nil {
			return "console lost", err
		}
		if !live && !got {
			return "domain " + s.name + " is not running", nil
		}
		select {
		case p, ok := <-input:
			if !ok {
				select {
				case err := <-inErr:
					return "terminal lost", err
				default:
					return "end of input", nil
				}
			}
			before, _, detach := bytes.Cut(p, []byte{detachKey})
			if err := s.send(before); err != nil {
				return "console input failed", err
			}
			if detach {
				return "detached", nil
			}
		case <-stop:
			return "signal", nil
		case <-time.After(s.poll):
		}
	}
}
