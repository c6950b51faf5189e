package xmlrpc

import (
	"fmt"
	"slices"
	"time"
)

// Args are the parameters of a call to a declared method, already checked
// against its declaration (Def.Params), so reading them cannot fail. An
// optional parameter left out or sent as nil reads as the zero value; Has
// tells it apart, and the *Or accessors take a default.
//
// Reading a parameter as a type its declaration does not allow, or one
// beyond the declared ones, is a bug in the method: the accessor panics
// and the caller gets an Internal fault naming the method.
type Args struct {
	method string
	def    *Def
	p      Params
}

// Len returns the number of parameters the caller sent.
func (a Args) Len() int { return len(a.p) }

// Has reports whether parameter i was sent and is not nil.
func (a Args) Has(i int) bool { return i >= 0 && i < len(a.p) && a.p[i] != nil }

// All returns every parameter as sent, the undeclared ones of a Variadic
// method included.
func (a Args) All() Params { return slices.Clone(a.p) }

// value returns parameter i (nil when it is absent) after checking that
// the declaration lets it be read as t.
func (a Args) value(i int, t Type) any {
	if i < 0 || i >= len(a.def.Params) {
		panic(fmt.Sprintf("%s reads parameter %d, but declares %d", a.method, i+1, len(a.def.Params)))
	}
	if p := a.def.Params[i]; !slices.Contains(p.types(), t) && !(t == Double && slices.Contains(p.types(), Int)) {
		panic(fmt.Sprintf("%s reads parameter %d (%s) as %s, but declares it %s", a.method, i+1, p.Name, t, p.want()))
	}
	if i >= len(a.p) {
		return nil
	}
	return a.p[i]
}

// String returns string parameter i ("" when absent).
func (a Args) String(i int) string {
	s, _ := a.value(i, String).(string)
	return s
}

// StringOr returns string parameter i, or def when it is absent.
func (a Args) StringOr(i int, def string) string {
	if !a.Has(i) {
		return def
	}
	return a.String(i)
}

// Int returns int parameter i (0 when absent).
func (a Args) Int(i int) int64 {
	n, _ := goInt(a.value(i, Int))
	return n
}

// IntOr returns int parameter i, or def when it is absent.
func (a Args) IntOr(i int, def int64) int64 {
	if !a.Has(i) {
		return def
	}
	return a.Int(i)
}

// Bool returns boolean parameter i (false when absent).
func (a Args) Bool(i int) bool {
	b, _ := a.value(i, Boolean).(bool)
	return b
}

// Float returns double parameter i (an int sent for it included; 0 when
// absent).
func (a Args) Float(i int) float64 {
	f, _ := toFloat(a.value(i, Double))
	return f
}

// Time returns dateTime.iso8601 parameter i (the zero time when absent).
func (a Args) Time(i int) time.Time {
	t, _ := a.value(i, DateTime).(time.Time)
	return t
}

// Bytes returns base64 parameter i (nil when absent).
func (a Args) Bytes(i int) []byte {
	b, _ := a.value(i, Base64).([]byte)
	return b
}

// Struct returns struct parameter i (nil when absent).
func (a Args) Struct(i int) map[string]any {
	m, _ := a.value(i, Struct).(map[string]any)
	return m
}

// Array returns array parameter i (nil when absent).
func (a Args) Array(i int) []any {
	v, _ := a.value(i, Array).([]any)
	return v
}
