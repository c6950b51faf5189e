package domains

import (
	"errors"
	"fmt"
	"strings"
)

// State is a domain's lifecycle state, as the Oracle VM guide names them.
type State string

// The lifecycle states.
const (
	Starting  State = "starting"
	Running   State = "running"
	Paused    State = "paused"
	Suspended State = "suspended"
	Stopping  State = "stopping"
	Stopped   State = "stopped"
	// Migrating: a stopped domain whose disks are being copied to another
	// host (offline migration); nothing may start or change it.
	Migrating State = "migrating"
	// Detached: a manifest describes it for attaching elsewhere; it is
	// known here but cannot run until it is attached again.
	Detached State = "detached"
)

// live reports whether a VMM process belongs to the state.
func (s State) live() bool {
	return s == Starting || s == Running || s == Paused || s == Stopping
}

// Operations and the states each one may start from.
var legal = map[string][]State{
	"start":   {Stopped, Suspended},
	"receive": {Stopped},
	"save":    {Running, Paused},
	"migrate": {Running, Paused},
	"pause":   {Running},
	// set_memory: a balloon target (xm mem-set).
	"set_memory": {Running},
	"unpause":    {Paused},
	"shutdown":   {Running, Paused},
	"reboot":     {Running, Paused},
	"destroy":    {Starting, Running, Paused, Stopping},
	"delete":     {Stopped, Suspended, Detached},
	"offline":    {Stopped},
	"detach":     {Stopped},
	"attach":     {Detached},
}

// check says whether op may run in state s.
func check(name, op string, s State) error {
	for _, ok := range legal[op] {
		if ok == s {
			return nil
		}
	}
	want := make([]string, len(legal[op]))
	for i, st := range legal[op] {
		want[i] = string(st)
	}
	msg := fmt.Sprintf("domain %s is %s; %s needs it %s", name, s, op, strings.Join(want, " or "))
	switch s {
	case Detached:
		msg += " (it was detached: ovm attach its folder to use it again, or delete it here)"
	case Migrating:
		msg += " (its disks are being copied to another host: ovm migrate-status shows the copy)"
	}
	return &Error{Kind: BadState, State: s, Msg: msg}
}

// Kind classifies errors for the API.
type Kind int

// Error kinds.
const (
	Failed      Kind = iota // something went wrong while doing it
	NotFound                // no such domain
	BadState                // not in a state the operation allows
	Exists                  // the name or UUID is taken
	NoResources             // not enough host memory or CPUs
	Invalid                 // bad name, bad vm.cfg
	Unsupported             // the host cannot do it (no KVM)
)

// Error is a domain operation's error.
type Error struct {
	Kind  Kind
	State State // the current state, for BadState
	Msg   string
	// Problems lists every mismatch a validation found, one per line.
	Problems []string
}

func (e *Error) Error() string {
	if len(e.Problems) == 0 {
		return e.Msg
	}
	return e.Msg + ":\n  " + strings.Join(e.Problems, "\n  ")
}

func errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// KindOf returns the Kind of err (Failed for errors of other types).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Failed
}
