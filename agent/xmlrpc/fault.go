package xmlrpc

import (
	"errors"
	"fmt"
	"strconv"
)

// Fault codes. This block is the single source of truth for the numeric
// codes the agent puts on the wire; README.md in this directory carries the
// same table for people who read the API without reading Go. Codes never
// change meaning once released: add new ones, do not renumber.
const (
	// ParseError: the request is not well-formed XML or not an XML-RPC
	// methodCall (bad value, unknown type element, size or depth limit).
	ParseError = -32700
	// InvalidRequest: wrong HTTP content type or encoding, empty or invalid
	// method name, recursive system.multicall.
	InvalidRequest = -32600
	// UnknownMethod: no method (or alias) of that name is registered.
	UnknownMethod = -32601
	// BadParams: wrong number or type of parameters.
	BadParams = -32602
	// Internal: unexpected server error, including a handler error that is
	// not a *Fault, a handler panic and a result that cannot be encoded.
	Internal = -32603

	// XendInternal, XendGeneric and XendInvalidDomain are xend's own codes,
	// used by the legacy xend.* aliases so old clients see what they expect.
	XendInternal      = 1
	XendGeneric       = 2
	XendInvalidDomain = 3

	// AuthFailed: authentication missing or wrong. AuthRequired is the same
	// code under the name used when no credentials were sent at all.
	AuthFailed   = 1000
	AuthRequired = AuthFailed
	// AccessDenied: the peer address is refused by the allow/deny rules.
	AccessDenied = 1001
	// NotFound: the named domain, repository, file or object does not exist.
	NotFound = 1002
	// BadState: the object exists but is in the wrong state for the request
	// (e.g. starting a running domain).
	BadState = 1003
	// Exists: the object to create already exists.
	Exists = 1004
	// NoResources: not enough memory, CPUs, disk or other capacity.
	NoResources = 1005
	// Busy: another operation holds the object; retry later.
	Busy = 1006
	// Unsupported: the request is understood but not supported here.
	Unsupported = 1007
	// Cancelled: the operation was cancelled before it completed.
	Cancelled = 1008
	// Timeout: the operation did not complete in time.
	Timeout = 1009
	// InvalidConfig: a configuration value or file is invalid.
	InvalidConfig = 1010
	// Owned: a pool domain is owned by another member of the pool (the
	// message names it); it may run only there until that member's lease
	// ends.
	Owned = 1011
)

// codeNames maps every code above to its constant name, for logs.
var codeNames = map[int]string{
	ParseError:        "ParseError",
	InvalidRequest:    "InvalidRequest",
	UnknownMethod:     "UnknownMethod",
	BadParams:         "BadParams",
	Internal:          "Internal",
	XendInternal:      "XendInternal",
	XendGeneric:       "XendGeneric",
	XendInvalidDomain: "XendInvalidDomain",
	AuthFailed:        "AuthFailed",
	AccessDenied:      "AccessDenied",
	NotFound:          "NotFound",
	BadState:          "BadState",
	Exists:            "Exists",
	NoResources:       "NoResources",
	Busy:              "Busy",
	Unsupported:       "Unsupported",
	Cancelled:         "Cancelled",
	Timeout:           "Timeout",
	InvalidConfig:     "InvalidConfig",
	Owned:             "Owned",
}

// CodeName returns the constant name of a fault code ("NotFound"), or the
// decimal number for a code not in the table. Meant for log fields.
func CodeName(code int) string {
	if n, ok := codeNames[code]; ok {
		return n
	}
	return strconv.Itoa(code)
}

// Fault is an XML-RPC fault: a numeric code from the table above and a
// sentence a person can act on. It implements error; handlers return it
// (possibly wrapped) to choose the code the client sees.
type Fault struct {
	Code    int
	Message string
}

// Error implements error. It returns the message alone, so that a fault
// wrapped with context (fmt.Errorf("start %s: %w", name, f)) reads as one
// sentence; the code travels separately (see AsFault).
func (f *Fault) Error() string {
	if f == nil {
		return "nil *xmlrpc.Fault"
	}
	return f.Message
}

// String formats the fault with its code, for logs and test failures.
func (f *Fault) String() string {
	if f == nil {
		return "nil *xmlrpc.Fault"
	}
	return fmt.Sprintf("fault %d (%s): %s", f.Code, CodeName(f.Code), f.Message)
}

// Faultf returns a fault with the given code and a formatted message.
func Faultf(code int, format string, args ...any) *Fault {
	return &Fault{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsFault converts err to the fault a client should see. A *Fault anywhere
// in err's chain keeps its code; its message becomes err.Error(), which is
// the fault's own message plus whatever context wrapped it. Any other error
// becomes an Internal fault whose message is err.Error(). AsFault(nil) is
// nil. When err is itself a *Fault it is returned unchanged.
func AsFault(err error) *Fault {
	if err == nil {
		return nil
	}
	var f *Fault
	if errors.As(err, &f) {
		if f == nil {
			// A typed nil *Fault returned as an error: a handler bug.
			return &Fault{Code: Internal, Message: "internal error: " + err.Error()}
		}
		if f == err {
			return f
		}
		return &Fault{Code: f.Code, Message: err.Error()}
	}
	return &Fault{Code: Internal, Message: err.Error()}
}
