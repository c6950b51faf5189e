package sxp

import (
	"fmt"
	"strings"
)

// Limits on the input Parse accepts.
const (
	MaxSize   = 1 << 20 // bytes
	MaxDepth  = 32      // nested lists, the top-level form counting as 1
	MaxValues = 100000  // atoms, strings and lists in the whole file
)

// Kind says what a Value is.
type Kind int

const (
	Atom   Kind = iota // a bare symbol or number: xend-relocation-port, 8002, yes
	String             // a quoted string, escapes resolved
	List               // a parenthesised list
)

func (k Kind) String() string {
	switch k {
	case Atom:
		return "atom"
	case String:
		return "string"
	case List:
		return "list"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Value is one parsed value. Text holds an atom's or string's content;
// List holds a list's elements (empty, not nil, for "()"). Line is the
// 1-based line where the value starts.
type Value struct {
	Kind Kind
	Text string
	List []Value
	Line int
}

// String renders v in sxp syntax: atoms as they are, strings quoted, lists
// in parentheses. It is meant for messages.
func (v Value) String() string {
	var b strings.Builder
	v.write(&b)
	return b.String()
}

func (v Value) write(b *strings.Builder) {
	switch v.Kind {
	case List:
		b.WriteByte('(')
		for i, x := range v.List {
			if i > 0 {
				b.WriteByte(' ')
			}
			x.write(b)
		}
		b.WriteByte(')')
	case String:
		b.WriteString(quote(v.Text))
	default:
		b.WriteString(v.Text)
	}
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\', '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 || c >= 0x7f {
				fmt.Fprintf(&b, `\x%02x`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// Entry is one top-level form "(name value...)".
type Entry struct {
	Name   string
	Values []Value
	Line   int // line of the opening '('
}

// Error is a syntax error positioned by file and 1-based line.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

type parser struct {
	name   string
	data   []byte
	pos    int
	line   int
	values int
}

func (p *parser) errorf(line int, format string, args ...any) *Error {
	return &Error{File: p.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// Parse reads every top-level form of data, naming it name in errors.
func Parse(name string, data []byte) ([]Entry, error) {
	if len(data) > MaxSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("file is %d bytes, larger than the limit of %d", len(data), MaxSize)}
	}
	p := &parser{name: name, data: data, line: 1}
	var out []Entry
	for {
		p.skip()
		if p.pos >= len(p.data) {
			return out, nil
		}
		if p.data[p.pos] == ')' {
			return nil, p.errorf(p.line, "unexpected ')' with no open '('")
		}
		v, err := p.value(1)
		if err != nil {
			return nil, err
		}
		if v.Kind != List {
			return nil, p.errorf(v.Line, "expected a form \"(name value...)\", found %s %s", v.Kind, clip(v.String()))
		}
		if len(v.List) == 0 {
			return nil, p.errorf(v.Line, "empty form \"()\"")
		}
		if v.List[0].Kind == List {
			return nil, p.errorf(v.Line, "form name must be a symbol, found list %s", clip(v.List[0].String()))
		}
		out = append(out, Entry{Name: v.List[0].Text, Values: v.List[1:], Line: v.Line})
	}
}

func clip(s string) string {
	const max = 60
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

func isSeparator(c byte) bool {
	return strings.IndexByte("{}()<>[]!;", c) >= 0
}

// skip moves past blanks and comments.
func (p *parser) skip() {
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '\n':
			p.line++
			p.pos++
		case isSpace(c):
			p.pos++
		case c == '#':
			for p.pos < len(p.data) && p.data[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

// value reads one value starting at p.pos (not a blank, not ')').
func (p *parser) value(depth int) (Value, error) {
	p.values++
	if p.values > MaxValues {
		return Value{}, p.errorf(p.line, "more than %d values", MaxValues)
	}
	c := p.data[p.pos]
	switch {
	case c == '(':
		return p.list(depth)
	case c == '"' || c == '\'':
		return p.str()
	case c > ' ' && c < 0x7f:
		start := p.pos
		p.pos++
		for p.pos < len(p.data) {
			c := p.data[p.pos]
			if isSpace(c) || isSeparator(c) || c == '#' {
				break
			}
			p.pos++
		}
		return Value{Kind: Atom, Text: string(p.data[start:p.pos]), Line: p.line}, nil
	default:
		return Value{}, p.errorf(p.line, "invalid character 0x%02x", c)
	}
}

func (p *parser) list(depth int) (Value, error) {
	open := p.line
	if depth > MaxDepth {
		return Value{}, p.errorf(open, "lists nested deeper than %d", MaxDepth)
	}
	p.pos++ // '('
	v := Value{Kind: List, List: []Value{}, Line: open}
	for {
		p.skip()
		if p.pos >= len(p.data) {
			return Value{}, p.errorf(p.line, "unexpected end of file: '(' opened at line %d is not closed", open)
		}
		if p.data[p.pos] == ')' {
			p.pos++
			return v, nil
		}
		x, err := p.value(depth + 1)
		if err != nil {
			return Value{}, err
		}
		v.List = append(v.List, x)
	}
}

func isHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

var simpleEscapes = map[byte]byte{
	'a': '\a', 'b': '\b', 't': '\t', 'n': '\n', 'v': '\v', 'f': '\f', 'r': '\r',
	'\\': '\\', '\'': '\'', '"': '"',
}

func (p *parser) str() (Value, error) {
	open := p.line
	delim := p.data[p.pos]
	p.pos++
	var b []byte
	unterminated := func() error {
		return p.errorf(p.line, "unexpected end of file: string opened at line %d is not closed", open)
	}
	for {
		if p.pos >= len(p.data) {
			return Value{}, unterminated()
		}
		c := p.data[p.pos]
		p.pos++
		switch {
		case c == delim:
			return Value{Kind: String, Text: string(b), Line: open}, nil
		case c == '\n':
			p.line++
			b = append(b, c)
		case c != '\\':
			b = append(b, c)
		default:
			if p.pos >= len(p.data) {
				return Value{}, unterminated()
			}
			e := p.data[p.pos]
			if d, ok := simpleEscapes[e]; ok {
				b = append(b, d)
				p.pos++
				continue
			}
			switch {
			case e == 'x':
				p.pos++
				n, v := 0, 0
				for n < 2 && p.pos < len(p.data) {
					d, ok := isHex(p.data[p.pos])
					if !ok {
						break
					}
					v = v*16 + int(d)
					n++
					p.pos++
				}
				if n == 0 {
					return Value{}, p.errorf(p.line, "invalid escape \\x: no hex digit follows")
				}
				b = append(b, byte(v))
			case e >= '0' && e <= '7':
				n, v := 0, 0
				for n < 3 && p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '7' {
					v = v*8 + int(p.data[p.pos]-'0')
					n++
					p.pos++
				}
				if v > 0xff {
					return Value{}, p.errorf(p.line, "invalid octal escape \\%s: larger than \\377", p.data[p.pos-n:p.pos])
				}
				b = append(b, byte(v))
			default:
				// Unknown escape: keep the backslash; the character that
				// follows is read normally on the next turn.
				b = append(b, '\\')
			}
		}
	}
}
