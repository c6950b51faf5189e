package vmcfg

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem found in a vm.cfg file or in a Config. It names the
// file, the line and the key it concerns, so that an operator can go
// straight to it: `vm.cfg:7: memory: "lots" is not an integer number of MiB`.
//
// File and Line are empty/zero for problems found by Config.Validate in a
// Config that was not read from a file; Key is empty for syntax errors that
// do not belong to one key.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		if e.File == "" {
			b.WriteString("line ")
		}
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every Error found in one file or one Config, in line order.
// Parse, ParseFile and Config.Validate return it as their error. Use
// errors.As to get at the list or at a single *Error.
type ErrorList []*Error

func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As and errors.Is look at each *Error.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// Warning is something in a vm.cfg file that is accepted but that the
// operator probably wants to know about: an option nobody knows (a likely
// typo), or a key assigned twice.
type Warning struct {
	File    string
	Line    int
	Key     string
	Message string
}

func (w Warning) String() string {
	e := Error{File: w.File, Line: w.Line, Key: w.Key, Msg: w.Message}
	return e.Error()
}

// reporter collects errors and warnings for one file (or one Validate call).
type reporter struct {
	file     string
	errs     ErrorList
	warns    []Warning
	failed   map[string]bool // keys whose value could not be used
	overflow bool
}

func newReporter(file string) *reporter {
	return &reporter{file: file, failed: map[string]bool{}}
}

func (r *reporter) errorf(line int, key, format string, args ...any) {
	if key != "" {
		r.failed[key] = true
	}
	if len(r.errs) >= MaxErrors {
		r.overflow = true
		return
	}
	msg := fmt.Sprintf(format, args...)
	switch key {
	case KeyVNCPasswd:
		msg = secretMsg
	case KeyVFB:
		msg = redactSpec(msg)
	}
	r.errs = append(r.errs, &Error{File: r.file, Line: line, Key: key, Msg: msg})
}

func (r *reporter) warnf(line int, key, format string, args ...any) {
	if len(r.warns) >= MaxErrors {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if key == KeyVFB {
		msg = redactSpec(msg)
	}
	r.warns = append(r.warns, Warning{File: r.file, Line: line, Key: key, Message: msg})
}

// secretMsg is every error about vncpasswd: whatever was wrong, the
// message does not quote the value, which is a secret.
const secretMsg = "must be a string of printable characters without commas or blanks around it, " +
	"such as vncpasswd = 'secret' (the value is not shown: it is a password)"

// result returns the collected errors in line order, or nil.
// warnings returns the collected warnings in line order.
func (r *reporter) warnings() []Warning {
	out := append([]Warning(nil), r.warns...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

func (r *reporter) result() error {
	if len(r.errs) == 0 {
		return nil
	}
	out := append(ErrorList(nil), r.errs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	if r.overflow {
		out = append(out, &Error{File: r.file, Msg: fmt.Sprintf("too many errors (more than %d); stopped reporting", MaxErrors)})
	}
	return out
}

// quote renders s for a message: Go-quoted and cut to a readable length.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// Redacted writes the list with nothing taken from the file's content: the
// file name and each line number, and for the checks of the whole file
// (line 0) the option vm.cfg expected; never a word from a line, a value or
// the message (which may quote them). It is for a file the agent read on a
// caller's behalf: it may not be a vm.cfg at all, and its content is not
// the caller's to read.
func (l ErrorList) Redacted() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteString("\n")
		}
		c := Error{File: e.File, Line: e.Line, Msg: "not valid vm.cfg (syntax or value)"}
		if e.Line == 0 && (typedKeys[e.Key] || xmKeys[e.Key]) {
			c.Key, c.Msg = e.Key, "missing or invalid"
		}
		b.WriteString(c.Error())
	}
	return b.String()
}
