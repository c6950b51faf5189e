package xmlrpc

import (
	"context"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
)

// CallInfo describes one call for the Server.OnCall audit hook.
type CallInfo struct {
	// Method is the name the caller used (an alias stays an alias). It is
	// empty when the request failed before a method name was read.
	Method string
	// Fault is what the caller received, nil on success.
	Fault *Fault
	// Duration covers decoding, the handler and encoding the result; for
	// a multicall sub-call, that call's handler and encoding.
	Duration time.Duration
	// InMulticall is true for a call made inside system.multicall.
	InMulticall bool
}

// DefaultMaxMulticall is the default cap on calls in one system.multicall.
const DefaultMaxMulticall = 256

// Server dispatches XML-RPC calls to declared methods and serves them
// over HTTP (see ServeHTTP). Declare methods with Define before serving;
// Define is safe to call concurrently with calls, but a method is visible
// only once the Define that added it has returned.
type Server struct {
	// OnCall, when set, is called once for every call: each top-level
	// request (including one that could not be decoded), every sub-call of
	// a system.multicall, and the multicall itself. It runs on the
	// request's goroutine after the result is encoded, so it must be quick
	// and must not panic. Set it before serving.
	OnCall func(ctx context.Context, info CallInfo)
	// OnPanic, when set, is called when a handler panics, with the value
	// recovered and the stack; the caller receives an Internal fault
	// either way. Set it before serving.
	OnPanic func(ctx context.Context, method string, recovered any, stack []byte)

	limits       Limits
	maxMulticall int

	mu      sync.RWMutex
	methods map[string]*entry
}

type entry struct {
	help string
	sigs [][]string
	def  *Def // the declaration, checked before its Run is called
	// faults, when set, translates the faults of the method or alias.
	faults func(*Fault) *Fault
}

// Option configures a Server.
type Option func(*Server)

// WithLimits sets the decoding limits for requests (zero fields keep
// their defaults).
func WithLimits(l Limits) Option {
	return func(s *Server) { s.limits = l.withDefaults() }
}

// WithMaxMulticall sets how many calls one system.multicall may contain;
// n <= 0 keeps the default of 256.
func WithMaxMulticall(n int) Option {
	return func(s *Server) {
		if n > 0 {
			s.maxMulticall = n
		}
	}
}

// NewServer returns a server with the system.* introspection methods and
// system.multicall registered.
func NewServer(opts ...Option) *Server {
	s := &Server{
		limits:       DefaultLimits(),
		maxMulticall: DefaultMaxMulticall,
		methods:      make(map[string]*entry),
	}
	for _, o := range opts {
		o(s)
	}
	for _, d := range s.builtins() {
		if err := s.define(d, true); err != nil {
			panic(err) // the built-ins are declared correctly
		}
	}
	return s
}

// Methods returns the names of all methods, aliases and built-ins, sorted.
func (s *Server) Methods() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.methods))
	for n := range s.methods {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Has says whether name is a method, alias or built-in of the server.
func (s *Server) Has(name string) bool {
	_, ok := s.lookup(name)
	return ok
}

func (s *Server) lookup(name string) (*entry, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.methods[name]
	return e, ok
}

// Call runs the named method in-process, exactly as a request would: the
// same faults (always a *Fault when the error is non-nil), the same check
// that the result can be encoded, and an OnCall report.
func (s *Server) Call(ctx context.Context, name string, params Params) (any, error) {
	start := time.Now()
	res, f := s.invoke(ctx, name, params)
	if f == nil {
		if err := checkEncodable(res); err != nil {
			f = resultFault(name, err)
		}
	}
	s.report(ctx, CallInfo{Method: name, Fault: f, Duration: time.Since(start)})
	if f != nil {
		return nil, f
	}
	return res, nil
}

// invoke looks the method up and runs its handler, turning every outcome
// (error, panic) into a result or a fault. It does not report.
func (s *Server) invoke(ctx context.Context, name string, params Params) (res any, f *Fault) {
	var err error
	e, ok := s.lookup(name)
	if !ok {
		if name == "" {
			return nil, Faultf(InvalidRequest, "method name is empty")
		}
		return nil, Faultf(UnknownMethod, "unknown method %q (system.listMethods lists the methods)", clip(name))
	}
	defer func() {
		if r := recover(); r != nil {
			if s.OnPanic != nil {
				s.OnPanic(ctx, name, r, debug.Stack())
			}
			res, f = nil, Faultf(Internal, "%s: internal error: handler panicked: %v", name, r)
		}
	}()
	if params == nil {
		params = Params{}
	}
	if res, err = e.def.call(ctx, name, params); err != nil {
		f := AsFault(err)
		if f.Code == BadParams && !strings.HasPrefix(f.Message, name+": ") {
			f = &Fault{Code: BadParams, Message: name + ": " + f.Message}
		}
		if e.faults != nil {
			f = e.faults(f)
		}
		return nil, f
	}
	return res, nil
}

// resultFault is the fault for a result the encoder refused.
func resultFault(method string, err error) *Fault {
	return Faultf(Internal, "%s: internal error: the result cannot be sent: %v", method, err)
}

func (s *Server) report(ctx context.Context, info CallInfo) {
	if s.OnCall != nil {
		s.OnCall(ctx, info)
	}
}

func (s *Server) listMethods(context.Context, Args) (any, error) {
	return s.Methods(), nil
}

// methodArg finds the method named by the one parameter of the
// introspection methods.
func (s *Server) methodArg(a Args) (*entry, error) {
	name := a.String(0)
	e, ok := s.lookup(name)
	if !ok {
		return nil, Faultf(UnknownMethod, "unknown method %q", clip(name))
	}
	return e, nil
}

func (s *Server) methodHelp(_ context.Context, a Args) (any, error) {
	e, err := s.methodArg(a)
	if err != nil {
		return nil, err
	}
	return e.help, nil
}

func (s *Server) methodSignature(_ context.Context, a Args) (any, error) {
	e, err := s.methodArg(a)
	if err != nil {
		return nil, err
	}
	return e.sigs, nil
}

// multicall implements system.multicall: each call runs in order, each is
// reported to OnCall, and one call's fault does not stop the others.
func (s *Server) multicall(ctx context.Context, a Args) (any, error) {
	calls := a.Array(0)
	if len(calls) > s.maxMulticall {
		return nil, Faultf(BadParams, "%d calls exceed the limit of %d per system.multicall", len(calls), s.maxMulticall)
	}
	results := make([]any, len(calls))
	for i, c := range calls {
		start := time.Now()
		name, params, f := multicallEntry(i, c)
		switch {
		case f != nil:
		case name == "system.multicall":
			f = Faultf(InvalidRequest, "call %d: system.multicall cannot be called from inside system.multicall", i+1)
		case ctx.Err() != nil:
			f = Faultf(Cancelled, "call %d (%s) was not run: the request was cancelled (%v)", i+1, name, context.Cause(ctx))
		default:
			var res any
			res, f = s.invoke(ctx, name, params)
			if f == nil {
				if err := checkEncodable(res); err != nil {
					f = resultFault(name, err)
				} else {
					results[i] = []any{res}
				}
			}
		}
		if f != nil {
			results[i] = map[string]any{"faultCode": f.Code, "faultString": f.Message}
		}
		s.report(ctx, CallInfo{Method: name, Fault: f, Duration: time.Since(start), InMulticall: true})
	}
	return results, nil
}

// multicallEntry unpacks one {methodName, params} struct.
func multicallEntry(i int, c any) (string, Params, *Fault) {
	m, ok := c.(map[string]any)
	if !ok {
		return "", nil, Faultf(BadParams, "call %d must be a struct {methodName, params}, got %s", i+1, typeName(c))
	}
	name, ok := m["methodName"].(string)
	if !ok {
		if _, present := m["methodName"]; !present {
			return "", nil, Faultf(BadParams, "call %d has no methodName member", i+1)
		}
		return "", nil, Faultf(BadParams, "call %d: methodName must be a string, got %s", i+1, typeName(m["methodName"]))
	}
	if name == "" {
		return "", nil, Faultf(InvalidRequest, "call %d: method name is empty", i+1)
	}
	raw, present := m["params"]
	if !present {
		return name, Params{}, nil
	}
	params, ok := raw.([]any)
	if !ok {
		return name, nil, Faultf(BadParams, "call %d (%s): params must be an array, got %s", i+1, clip(name), typeName(raw))
	}
	return name, Params(params), nil
}
