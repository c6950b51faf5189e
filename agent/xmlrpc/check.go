package xmlrpc

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// call checks params against the declaration and runs the method; name is
// the name the caller used.
func (d *Def) call(ctx context.Context, name string, params Params) (any, error) {
	if f := d.check(name, params); f != nil {
		return nil, f
	}
	return d.Run(ctx, Args{method: name, def: d, p: params})
}

// check returns the BadParams fault for a call that does not match the
// declaration: the wrong number of parameters, or one of the wrong type.
// The server prefixes the method name.
func (d *Def) check(name string, p Params) *Fault {
	min, max := d.required(), len(d.Params)
	if len(p) < min || len(p) > max && !d.Variadic {
		return Faultf(BadParams, "expected %s, got %d%s", d.arity(), len(p), d.usage(name))
	}
	for i, v := range p {
		if i >= max {
			break
		}
		pr := d.Params[i]
		if v == nil && pr.Optional {
			continue
		}
		if !pr.accepts(v) {
			return Faultf(BadParams, "parameter %d must be %s, got %s%s", i+1, pr.want(), typeName(v), d.usage(name))
		}
	}
	return nil
}

// arity says how many parameters the method takes.
func (d *Def) arity() string {
	min, max := d.required(), len(d.Params)
	switch {
	case d.Variadic:
		return "at least " + countParams(min)
	case min == max:
		return countParams(min)
	}
	return fmt.Sprintf("%d to %d parameters", min, max)
}

// usage is "; usage: domain.console(name string[, offset int[, max int]])"
// for a fault message, empty for a method without parameters.
func (d *Def) usage(name string) string {
	if len(d.Params) == 0 && !d.Variadic {
		return ""
	}
	var b strings.Builder
	b.WriteString("; usage: " + name + "(")
	open := 0
	for i, p := range d.Params {
		if p.Optional {
			b.WriteString("[")
			open++
		}
		if i > 0 {
			b.WriteString(", ")
		}
		types := make([]string, 0, 1+len(p.Or))
		for _, t := range p.types() {
			types = append(types, string(t))
		}
		b.WriteString(p.Name + " " + strings.Join(types, "|"))
	}
	if d.Variadic {
		if len(d.Params) > 0 {
			b.WriteString(", ")
		}
		b.WriteString("...")
	}
	b.WriteString(strings.Repeat("]", open) + ")")
	return b.String()
}

func (p Param) accepts(v any) bool {
	for _, t := range p.types() {
		if isType(t, v) {
			return true
		}
	}
	return false
}

// isType reports whether v, as decoded (or passed in-process), is of type
// t. An integer is a double too, since callers write 1 for 1.0.
func isType(t Type, v any) bool {
	var ok bool
	switch t {
	case Int:
		_, ok = goInt(v)
	case Boolean:
		_, ok = v.(bool)
	case String:
		_, ok = v.(string)
	case Double:
		_, ok = toFloat(v)
	case DateTime:
		_, ok = v.(time.Time)
	case Base64:
		_, ok = v.([]byte)
	case Struct:
		_, ok = v.(map[string]any)
	case Array:
		_, ok = v.([]any)
	case Nil:
		ok = v == nil
	}
	return ok
}

// want is what a parameter must be, for messages: "a string", "an int or
// a boolean".
func (p Param) want() string {
	var parts []string
	for _, t := range p.types() {
		parts = append(parts, article(t))
	}
	return strings.Join(parts, " or ")
}

func article(t Type) string {
	switch t {
	case Int, Array:
		return "an " + string(t)
	case Base64, Nil:
		return string(t)
	}
	return "a " + string(t)
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	if n, ok := goInt(v); ok {
		return float64(n), true
	}
	return 0, false
}
