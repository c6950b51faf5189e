package xmlrpc

import (
	"fmt"
	"math"
	"time"
)

// Params are the parameters of one call, as decoded: each element is an
// int64, bool, string, float64, time.Time, []byte, []any, map[string]any
// or nil.
//
// Methods declared with Define read their parameters through Args, checked
// before they run; Params and its accessors serve methods added with
// Register, whose handlers check their own parameters.
//
// The accessors check count and type and return a *Fault with code
// BadParams and a sentence naming the parameter (counted from 1, as a
// caller writing server.domain.start("vm1") counts them) and what was
// expected. Messages never include parameter values: those may be
// secrets, and fault messages reach logs. The server prefixes BadParams
// messages with the method name, so handlers return them unchanged:
//
//	name, err := p.String(0)
//	if err != nil {
//		return nil, err // "domain.start: parameter 1 must be a string, got int"
//	}
//
// Accessors are strict about wire types: a string of digits is not an
// int. The exceptions are noted on Float and on the Opt* accessors.
type Params []any

// Len returns the number of parameters.
func (p Params) Len() int { return len(p) }

// Want checks there are exactly n parameters.
func (p Params) Want(n int) error {
	if len(p) == n {
		return nil
	}
	return Faultf(BadParams, "expected %s, got %d", countParams(n), len(p))
}

// Between checks there are at least min and at most max parameters.
func (p Params) Between(min, max int) error {
	if len(p) >= min && len(p) <= max {
		return nil
	}
	if min == max {
		return p.Want(min)
	}
	return Faultf(BadParams, "expected %d to %d parameters, got %d", min, max, len(p))
}

func countParams(n int) string {
	switch n {
	case 0:
		return "no parameters"
	case 1:
		return "1 parameter"
	}
	return fmt.Sprintf("%d parameters", n)
}

// Any returns parameter i whatever its type, or a fault if it is missing.
func (p Params) Any(i int) (any, error) {
	if i < 0 || i >= len(p) {
		return nil, Faultf(BadParams, "parameter %d is missing (got %d parameters)", i+1, len(p))
	}
	return p[i], nil
}

func (p Params) get(i int, want string) (any, error) {
	if i < 0 || i >= len(p) {
		return nil, Faultf(BadParams, "parameter %d is missing, expected %s (got %d parameters)", i+1, want, len(p))
	}
	return p[i], nil
}

func wrongType(i int, want string, v any) error {
	return Faultf(BadParams, "parameter %d must be %s, got %s", i+1, want, typeName(v))
}

// String returns parameter i, which must be a string.
func (p Params) String(i int) (string, error) {
	v, err := p.get(i, "a string")
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", wrongType(i, "a string", v)
	}
	return s, nil
}

// Int returns parameter i, which must be an integer (int, i4 or i8 on the
// wire; any Go integer type when called in-process).
func (p Params) Int(i int) (int64, error) {
	v, err := p.get(i, "an int")
	if err != nil {
		return 0, err
	}
	n, ok := goInt(v)
	if !ok {
		return 0, wrongType(i, "an int", v)
	}
	return n, nil
}

// goInt converts any Go integer type that fits in int64.
func goInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint:
		return int64(x), uint64(x) <= math.MaxInt64
	case uint64:
		return int64(x), x <= math.MaxInt64
	}
	return 0, false
}

// Bool returns parameter i, which must be a boolean.
func (p Params) Bool(i int) (bool, error) {
	v, err := p.get(i, "a boolean")
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, wrongType(i, "a boolean", v)
	}
	return b, nil
}

// Float returns parameter i, which must be a double. An integer is
// accepted too, since callers write 1 for 1.0.
func (p Params) Float(i int) (float64, error) {
	v, err := p.get(i, "a double")
	if err != nil {
		return 0, err
	}
	if f, ok := toFloat(v); ok {
		return f, nil
	}
	return 0, wrongType(i, "a double", v)
}

// Time returns parameter i, which must be a dateTime.iso8601.
func (p Params) Time(i int) (time.Time, error) {
	v, err := p.get(i, "a dateTime.iso8601")
	if err != nil {
		return time.Time{}, err
	}
	t, ok := v.(time.Time)
	if !ok {
		return time.Time{}, wrongType(i, "a dateTime.iso8601", v)
	}
	return t, nil
}

// Bytes returns parameter i, which must be base64.
func (p Params) Bytes(i int) ([]byte, error) {
	v, err := p.get(i, "base64")
	if err != nil {
		return nil, err
	}
	b, ok := v.([]byte)
	if !ok {
		return nil, wrongType(i, "base64", v)
	}
	return b, nil
}

// Struct returns parameter i, which must be a struct.
func (p Params) Struct(i int) (map[string]any, error) {
	v, err := p.get(i, "a struct")
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, wrongType(i, "a struct", v)
	}
	return m, nil
}

// Array returns parameter i, which must be an array.
func (p Params) Array(i int) ([]any, error) {
	v, err := p.get(i, "an array")
	if err != nil {
		return nil, err
	}
	a, ok := v.([]any)
	if !ok {
		return nil, wrongType(i, "an array", v)
	}
	return a, nil
}

// absent reports whether optional parameter i was left out: not sent, or
// sent as nil (Python's None with allow_none).
func (p Params) absent(i int) bool {
	return i >= len(p) || (i >= 0 && p[i] == nil)
}

// OptString is String for an optional parameter: def when it is absent or nil.
func (p Params) OptString(i int, def string) (string, error) {
	if p.absent(i) {
		return def, nil
	}
	return p.String(i)
}

// OptInt is Int for an optional parameter: def when it is absent or nil.
func (p Params) OptInt(i int, def int64) (int64, error) {
	if p.absent(i) {
		return def, nil
	}
	return p.Int(i)
}

// OptBool is Bool for an optional parameter: def when it is absent or nil.
func (p Params) OptBool(i int, def bool) (bool, error) {
	if p.absent(i) {
		return def, nil
	}
	return p.Bool(i)
}

// OptStruct is Struct for an optional parameter: def when it is absent or nil.
func (p Params) OptStruct(i int, def map[string]any) (map[string]any, error) {
	if p.absent(i) {
		return def, nil
	}
	return p.Struct(i)
}

// typeName names the XML-RPC type a value is sent as, for messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case int64, int, int32, int16, int8, uint64, uint, uint32, uint16, uint8:
		return "int"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64, float32:
		return "double"
	case time.Time:
		return "dateTime.iso8601"
	case []byte:
		return "base64"
	case []any:
		return "array"
	case map[string]any:
		return "struct"
	}
	return fmt.Sprintf("Go %T", v)
}
