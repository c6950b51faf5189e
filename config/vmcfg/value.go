package vmcfg

import (
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kind is the type of a Value: one of the Python literal types a vm.cfg
// file may use.
type Kind uint8

// The kinds of Value. The zero Kind is not a valid value.
const (
	KindInvalid Kind = iota
	KindString       // 'text', "text", '''text''', r'raw'
	KindInt          // 42, -1, 0x1f, 0o17, 0b101, 1_000
	KindFloat        // 1.5, 1e3, .5
	KindBool         // True, False
	KindNone         // None
	KindList         // [a, b]
	KindTuple        // (a, b), (a,), ()
	KindDict         // {'k': v}
)

var kindNames = [...]string{"invalid value", "string", "integer", "float", "boolean", "None", "list", "tuple", "dict"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is a parsed Python literal. Only the field that belongs to Kind is
// meaningful: Str for strings, Int, Float, Bool, Items for lists and tuples,
// Dict for dicts. Strings are byte strings: escapes such as \xff give the
// byte, \u00e9 gives its UTF-8 encoding.
//
// Line is where the value starts in the file it was read from (0 when it
// was not read from a file); Equal ignores it.
type Value struct {
	Kind  Kind
	Str   string
	Int   int64
	Float float64
	Bool  bool
	Items []Value
	Dict  []DictEntry
	Line  int
}

// DictEntry is one key: value pair of a dict Value, in the order written.
type DictEntry struct {
	Key   Value
	Value Value
}

// String builds a string Value.
func String(s string) Value { return Value{Kind: KindString, Str: s} }

// Int builds an integer Value.
func Int(i int64) Value { return Value{Kind: KindInt, Int: i} }

// Float builds a float Value.
func Float(f float64) Value { return Value{Kind: KindFloat, Float: f} }

// Bool builds a boolean Value.
func Bool(b bool) Value { return Value{Kind: KindBool, Bool: b} }

// None builds the None Value.
func None() Value { return Value{Kind: KindNone} }

// List builds a list Value.
func List(items ...Value) Value { return Value{Kind: KindList, Items: items} }

// Tuple builds a tuple Value.
func Tuple(items ...Value) Value { return Value{Kind: KindTuple, Items: items} }

// Equal reports whether v and o are the same literal, ignoring Line.
func (v Value) Equal(o Value) bool {
	if v.Kind != o.Kind {
		return false
	}
	switch v.Kind {
	case KindString:
		return v.Str == o.Str
	case KindInt:
		return v.Int == o.Int
	case KindFloat:
		return math.Float64bits(v.Float) == math.Float64bits(o.Float)
	case KindBool:
		return v.Bool == o.Bool
	case KindNone, KindInvalid:
		return true
	case KindList, KindTuple:
		if len(v.Items) != len(o.Items) {
			return false
		}
		for i := range v.Items {
			if !v.Items[i].Equal(o.Items[i]) {
				return false
			}
		}
		return true
	case KindDict:
		if len(v.Dict) != len(o.Dict) {
			return false
		}
		for i := range v.Dict {
			if !v.Dict[i].Key.Equal(o.Dict[i].Key) || !v.Dict[i].Value.Equal(o.Dict[i].Value) {
				return false
			}
		}
		return true
	}
	return false
}

// String renders v as the canonical Python literal that Parse reads back
// to an equal Value.
func (v Value) String() string {
	var b strings.Builder
	v.write(&b, 0)
	return b.String()
}

// write renders v into b. With limit > 0 it stops once b holds at least
// limit bytes (for messages, which need only the start of a value).
func (v Value) write(b *strings.Builder, limit int) {
	if limit > 0 && b.Len() >= limit {
		return
	}
	switch v.Kind {
	case KindString:
		b.WriteString(quotePython(v.Str))
	case KindInt:
		b.WriteString(strconv.FormatInt(v.Int, 10))
	case KindFloat:
		b.WriteString(formatFloat(v.Float))
	case KindBool:
		if v.Bool {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case KindNone:
		b.WriteString("None")
	case KindList:
		b.WriteByte('[')
		writeItems(b, v.Items, limit)
		b.WriteByte(']')
	case KindTuple:
		b.WriteByte('(')
		writeItems(b, v.Items, limit)
		if len(v.Items) == 1 {
			b.WriteByte(',')
		}
		b.WriteByte(')')
	case KindDict:
		b.WriteByte('{')
		for i, e := range v.Dict {
			if i > 0 {
				b.WriteString(", ")
			}
			e.Key.write(b, limit)
			b.WriteString(": ")
			e.Value.write(b, limit)
		}
		b.WriteByte('}')
	default:
		// Not a literal; Validate reports it. Write something that fails to
		// parse rather than something that silently means another value.
		b.WriteString("<invalid>")
	}
}

// writeItems renders the items of a list or tuple, separated by ", ".
func writeItems(b *strings.Builder, items []Value, limit int) {
	for i, it := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		it.write(b, limit)
	}
}

// describe renders v for an error message: its literal, cut short.
func (v Value) describe() string {
	var b strings.Builder
	v.write(&b, 81)
	s := b.String()
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}

// formatFloat writes f so that it reads back as a float (never as an int).
func formatFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if strings.ContainsAny(s, ".eEnN") { // NaN and Inf, which check rejects
		return s
	}
	return s + ".0"
}

// quotePython renders s as a Python string literal: single quotes unless
// the text holds a single quote and no double quote (as Python's repr),
// printable UTF-8 as is, everything else escaped.
func quotePython(s string) string {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte(q)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == q || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
			i++
			continue
		case c == '\n':
			b.WriteString(`\n`)
			i++
			continue
		case c == '\r':
			b.WriteString(`\r`)
			i++
			continue
		case c == '\t':
			b.WriteString(`\t`)
			i++
			continue
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError && unicode.IsPrint(r) {
				b.WriteString(s[i : i+n])
				i += n
				continue
			}
		}
		b.WriteString(`\x`)
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
		i++
	}
	b.WriteByte(q)
	return b.String()
}

const hexDigits = "0123456789abcdef"

// check reports why v cannot be written as a literal that reads back equal,
// or "" when it can.
func (v Value) check(depth int) string {
	if depth > MaxDepth {
		return "nested more than " + strconv.Itoa(MaxDepth) + " levels deep"
	}
	switch v.Kind {
	case KindString, KindInt, KindBool, KindNone:
		return ""
	case KindFloat:
		if math.IsNaN(v.Float) || math.IsInf(v.Float, 0) {
			return "float " + formatFloat(v.Float) + " cannot be written in vm.cfg"
		}
		return ""
	case KindList, KindTuple:
		for _, it := range v.Items {
			if msg := it.check(depth + 1); msg != "" {
				return msg
			}
		}
		return ""
	case KindDict:
		seen := make(map[dictKey]bool, len(v.Dict))
		for _, e := range v.Dict {
			if e.Key.Kind != KindString && e.Key.Kind != KindInt {
				return "dict key " + e.Key.describe() + " is not a string or an integer"
			}
			k := keyOf(e.Key)
			if seen[k] {
				return "dict key " + e.Key.describe() + " appears twice"
			}
			seen[k] = true
			if msg := e.Value.check(depth + 1); msg != "" {
				return msg
			}
		}
		return ""
	}
	return "value has no kind (Kind " + strconv.Itoa(int(v.Kind)) + ")"
}

// dictKey identifies a string or integer dict key, for duplicate checks.
type dictKey struct {
	kind Kind
	str  string
	i    int64
}

func keyOf(v Value) dictKey { return dictKey{kind: v.Kind, str: v.Str, i: v.Int} }
