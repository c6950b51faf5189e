package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/ovs-agent/ovs-agent/agent/auth"
)

// prompter asks questions on out and reads answers from in: a terminal
// (passwords without echo) or a pipe (one answer per line).
type prompter struct {
	out io.Writer
	br  *bufio.Reader
	tty int // file descriptor of a terminal input, or -1
}

func newPrompter(in io.Reader, out io.Writer) *prompter {
	p := &prompter{out: out, br: bufio.NewReader(in), tty: -1}
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = int(f.Fd())
	}
	return p
}

// ask prints prompt and returns the answer line without its line ending.
func (p *prompter) ask(prompt string) (string, error) {
	fmt.Fprint(p.out, prompt)
	s, err := p.br.ReadString('\n')
	if p.tty < 0 {
		fmt.Fprintln(p.out) // keep transcripts of piped input readable
	}
	if err != nil && !(errors.Is(err, io.EOF) && s != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("input ended before every question was answered")
		}
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// secret reads a password: without echo from a terminal, else a line.
func (p *prompter) secret(prompt string) (string, error) {
	if p.tty < 0 {
		return p.ask(prompt)
	}
	fmt.Fprint(p.out, prompt)
	b, err := term.ReadPassword(p.tty)
	fmt.Fprintln(p.out)
	return string(b), err
}

// newPassword asks for a password and its confirmation, up to three times.
func (p *prompter) newPassword() (string, error) {
	for tries := 0; tries < 3; tries++ {
		p1, err := p.secret("password: ")
		if err != nil {
			return "", err
		}
		switch {
		case p1 == "":
			fmt.Fprintln(p.out, "the password may not be empty")
			continue
		case len(p1) > auth.MaxPasswordLen:
			fmt.Fprintf(p.out, "the password may be at most %d bytes\n", auth.MaxPasswordLen)
			continue
		}
		p2, err := p.secret("confirm password: ")
		if err != nil {
			return "", err
		}
		if p1 != p2 {
			fmt.Fprintln(p.out, "the two passwords differ")
			continue
		}
		return p1, nil
	}
	return "", errors.New("no password set after three tries")
}
