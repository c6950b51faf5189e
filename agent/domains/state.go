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
)

// live reports whether a VMM process belongs to the state.
func (s State) live() bool {
	return s == Starting || s == Running || s == Paused || s == Stopping
}

// Operations and the states each one may start from.
var legal = map[string][]State{
	"start":    {Stopped, Suspended},
	"receive":  {Stopped},
	"save":     {Running, Paused},
	"migrate":  {Running, Paused},
	"pause":    {Running},
	"unpause":  {Paused},
	"shutdown": {Running, Paused},
	"reboot":   {Running, Paused},
	"destroy":  {Starting, Running, Paused, Stopping},
	"delete":   {Stopped, Suspended},
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
	return &Error{Kind: BadState, State: s, Msg: fmt.Sprintf("domain %s is %s; %s needs it %s", name, s, op, strings.Join(want, " or "))}
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
}

func (e *Error) Error() string { return e.Msg }

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
