package xmlrpc

import (
	"context"
	"fmt"
	"strings"
)

// Type is an XML-RPC type name, as system.methodSignature writes it.
type Type string

// The types a declared parameter or result may have.
const (
	Int      Type = "int"
	Boolean  Type = "boolean"
	String   Type = "string"
	Double   Type = "double"
	DateTime Type = "dateTime.iso8601"
	Base64   Type = "base64"
	Struct   Type = "struct"
	Array    Type = "array"
	Nil      Type = "nil"
)

// Param declares one parameter of a method.
type Param struct {
	// Name is the parameter's name in help and fault messages.
	Name string
	// Type is the XML-RPC type the caller must send.
	Type Type
	// Or lists further types the parameter may have (a legacy flag that
	// clients send as an int or a boolean). Rarely needed.
	Or []Type
	// Optional parameters come after the required ones; the caller may
	// leave them out or send nil (Python's None with allow_none).
	Optional bool
}

// Req declares a required parameter.
func Req(name string, t Type) Param { return Param{Name: name, Type: t} }

// Opt declares an optional parameter.
func Opt(name string, t Type) Param { return Param{Name: name, Type: t, Optional: true} }

// Def declares a method once: its name, its parameters and result (what
// system.methodSignature answers, and what the server checks before Run
// is called), its help (system.methodHelp) and its other names.
type Def struct {
	Name string
	Help string
	// Params are checked in order: arity first (the required ones must be
	// there, no more than declared unless Variadic), then each one's type.
	Params []Param
	// Variadic methods accept any further parameters, of any type,
	// unchecked (agent.echo); the signature lists only Params.
	Variadic bool
	// Result is the type of the result.
	Result Type
	// Faults, when set, translates every fault the method's callers get
	// from the check or from Run (not a panic's Internal fault).
	Faults func(*Fault) *Fault
	// Aliases are other names of the same method: same declaration, same
	// Run, their own help and fault translation.
	Aliases []Alias
	// Run implements the method; it is called only with parameters that
	// match the declaration.
	Run func(ctx context.Context, args Args) (any, error)
}

// Alias is another name of a declared method (a legacy name such as
// xend.domain.pause for domain.pause).
type Alias struct {
	Name string
	// Note is added to the alias's help, which is "Alias of TARGET" then
	// Note, then the target's help.
	Note string
	// Faults translates the faults callers of the alias get, as Def.Faults.
	Faults func(*Fault) *Fault
}

// Define adds a declared method and its aliases. It fails on an invalid or
// reserved name, a name already registered, a nil Run, an unknown type, a
// parameter without a name, or a required parameter after an optional one.
func (s *Server) Define(d Def) error {
	if err := d.validate(); err != nil {
		return fmt.Errorf("define method %s: %w", d.Name, err)
	}
	return s.define(d, false)
}

// define adds d and its aliases; system is true for the built-in methods.
func (s *Server) define(d Def, system bool) error {
	def := &d
	sigs := def.signatures()
	entries := map[string]*entry{d.Name: {help: d.Help, sigs: sigs, def: def, faults: d.Faults}}
	for _, a := range d.Aliases {
		if err := checkName(a.Name, system); err != nil {
			return fmt.Errorf("define method %s: alias: %w", d.Name, err)
		}
		if _, dup := entries[a.Name]; dup {
			return fmt.Errorf("define method %s: alias %s is named twice", d.Name, a.Name)
		}
		help := strings.TrimSpace("Alias of " + d.Name + a.Note + ". " + d.Help)
		entries[a.Name] = &entry{help: help, sigs: sigs, def: def, faults: a.Faults}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range entries {
		if _, dup := s.methods[name]; dup {
			return fmt.Errorf("define method %s: %s is already registered", d.Name, name)
		}
	}
	for name, e := range entries {
		s.methods[name] = e
	}
	return nil
}

// checkName checks a method name; only built-ins may use system.
func checkName(name string, system bool) error {
	if err := checkMethodName(name); err != nil {
		return err
	}
	if !system && strings.HasPrefix(name, "system.") {
		return fmt.Errorf("%s: the system. prefix is reserved for built-in methods", name)
	}
	return nil
}

var declTypes = map[Type]bool{
	Int: true, Boolean: true, String: true, Double: true, DateTime: true,
	Base64: true, Struct: true, Array: true, Nil: true,
}

func (d *Def) validate() error {
	if err := checkName(d.Name, false); err != nil {
		return err
	}
	if d.Run == nil {
		return fmt.Errorf("nil Run")
	}
	if !declTypes[d.Result] {
		return fmt.Errorf("result: unknown XML-RPC type %q", d.Result)
	}
	optional := false
	for i, p := range d.Params {
		if p.Name == "" {
			return fmt.Errorf("parameter %d has no name", i+1)
		}
		for _, t := range p.types() {
			if !declTypes[t] {
				return fmt.Errorf("parameter %s: unknown XML-RPC type %q", p.Name, t)
			}
		}
		if optional && !p.Optional {
			return fmt.Errorf("required parameter %s after an optional one", p.Name)
		}
		optional = optional || p.Optional
	}
	return nil
}

func (p Param) types() []Type { return append([]Type{p.Type}, p.Or...) }

// required counts the parameters a caller must send.
func (d *Def) required() int {
	n := 0
	for n < len(d.Params) && !d.Params[n].Optional {
		n++
	}
	return n
}

// signatures lists, for system.methodSignature, one signature for each
// number of parameters a caller may send and each choice of their types.
func (d *Def) signatures() [][]string {
	var out [][]string
	for n := d.required(); n <= len(d.Params); n++ {
		out = append(out, expand([]string{string(d.Result)}, d.Params[:n])...)
	}
	return out
}

func expand(prefix []string, params []Param) [][]string {
	if len(params) == 0 {
		return [][]string{prefix}
	}
	var out [][]string
	for _, t := range params[0].types() {
		next := append(append([]string{}, prefix...), string(t))
		out = append(out, expand(next, params[1:])...)
	}
	return out
}
