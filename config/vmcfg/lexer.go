package vmcfg

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF     tokKind = iota
	tNewline         // end of a logical line (only outside brackets)
	tName            // identifier or keyword
	tNumber          // numeric literal, text in tok.text
	tString          // string literal, decoded value in tok.text
	tOp              // one punctuation character, in tok.text
)

type token struct {
	kind  tokKind
	text  string
	line  int
	start int // byte offsets into the source
	end   int
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of file"
	case tNewline:
		return "end of line"
	case tName:
		return fmt.Sprintf("name %q", t.text)
	case tNumber:
		return "number " + t.text
	case tString:
		return "string " + quote(t.text)
	}
	return fmt.Sprintf("'%s'", t.text)
}

// lexer turns vm.cfg source into tokens, following Python's rules for the
// literal subset: '#' comments, newlines ignored inside brackets, a
// backslash at the end of a line joins it with the next, and Python's
// string and number literal syntax.
type lexer struct {
	src   string
	pos   int
	line  int
	depth int // open brackets; newlines inside brackets are not tokens
	open  []token
	r     *reporter
}

func newLexer(src string, r *reporter) *lexer {
	return &lexer{src: src, line: 1, r: r}
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || isDigit(c) }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (lx *lexer) errorf(line int, format string, args ...any) {
	lx.r.errorf(line, "", format, args...)
}

// next returns the next token. Lexical errors are reported and skipped.
func (lx *lexer) next() token {
	for {
		if lx.pos >= len(lx.src) {
			if lx.depth > 0 {
				if len(lx.open) > 0 {
					o := lx.open[len(lx.open)-1]
					lx.errorf(o.line, "'%s' is never closed", o.text)
				}
				lx.depth = 0
				lx.open = nil
			}
			return token{kind: tEOF, line: lx.line, start: len(lx.src), end: len(lx.src)}
		}
		c := lx.src[lx.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\f':
			lx.pos++
		case c == '#':
			for lx.pos < len(lx.src) && lx.src[lx.pos] != '\n' {
				lx.pos++
			}
		case c == '\n':
			t := token{kind: tNewline, line: lx.line, start: lx.pos, end: lx.pos + 1}
			lx.pos++
			lx.line++
			if lx.depth == 0 {
				return t
			}
		case c == '\\':
			if lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] == '\n' {
				lx.pos += 2
				lx.line++
				continue
			}
			lx.errorf(lx.line, "a backslash outside a string must be the last character of the line")
			lx.pos++
		case isIdentStart(c):
			start := lx.pos
			for lx.pos < len(lx.src) && isIdentChar(lx.src[lx.pos]) {
				lx.pos++
			}
			word := lx.src[start:lx.pos]
			if lx.pos < len(lx.src) && (lx.src[lx.pos] == '\'' || lx.src[lx.pos] == '"') && len(word) <= 2 {
				return lx.stringLit(start, word)
			}
			return token{kind: tName, text: word, line: lx.line, start: start, end: lx.pos}
		case isDigit(c) || (c == '.' && lx.pos+1 < len(lx.src) && isDigit(lx.src[lx.pos+1])):
			return lx.number()
		case c == '\'' || c == '"':
			return lx.stringLit(lx.pos, "")
		case c >= utf8.RuneSelf || c < 0x20 || c == 0x7f:
			lx.errorf(lx.line, "unexpected byte 0x%02x outside a string", c)
			lx.pos++
		default:
			t := token{kind: tOp, text: lx.src[lx.pos : lx.pos+1], line: lx.line, start: lx.pos, end: lx.pos + 1}
			lx.pos++
			switch c {
			case '(', '[', '{':
				lx.depth++
				if len(lx.open) <= MaxDepth {
					lx.open = append(lx.open, t)
				}
			case ')', ']', '}':
				if lx.depth > 0 {
					lx.depth--
					if len(lx.open) > lx.depth {
						lx.open = lx.open[:lx.depth]
					}
				}
			}
			return t
		}
	}
}

// number scans a numeric literal. The text is checked later by parseNumber
// so that the parser can report it with the key it belongs to.
func (lx *lexer) number() token {
	start := lx.pos
	s := lx.src
	i := lx.pos
	if s[i] == '0' && i+1 < len(s) && strings.IndexByte("xXoObB", s[i+1]) >= 0 {
		i += 2
		for i < len(s) && (isIdentChar(s[i])) {
			i++
		}
	} else {
		for i < len(s) && (isDigit(s[i]) || s[i] == '_') {
			i++
		}
		if i < len(s) && s[i] == '.' {
			i++
			for i < len(s) && (isDigit(s[i]) || s[i] == '_') {
				i++
			}
		}
		if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
			j := i + 1
			if j < len(s) && (s[j] == '+' || s[j] == '-') {
				j++
			}
			if j < len(s) && isDigit(s[j]) {
				i = j
				for i < len(s) && (isDigit(s[i]) || s[i] == '_') {
					i++
				}
			}
		}
		// Anything glued to the number (1L, 3j, 12abc) is part of the bad
		// literal, so that the error shows all of it.
		for i < len(s) && (isIdentChar(s[i]) || s[i] == '.') {
			i++
		}
	}
	lx.pos = i
	return token{kind: tNumber, text: s[start:i], line: lx.line, start: start, end: i}
}

// stringLit scans a string literal starting at start, whose prefix (r, u,
// ...) has already been read. lx.pos is at the opening quote.
func (lx *lexer) stringLit(start int, prefix string) token {
	line := lx.line
	raw := false
	switch strings.ToLower(prefix) {
	case "":
	case "r":
		raw = true
	case "u":
	default:
		lx.errorf(line, "string prefix %q is not supported (only r and u are)", prefix)
	}
	s := lx.src
	q := s[lx.pos]
	triple := lx.pos+2 < len(s) && s[lx.pos+1] == q && s[lx.pos+2] == q
	if triple {
		lx.pos += 3
	} else {
		lx.pos++
	}
	var b strings.Builder
	for {
		if lx.pos >= len(s) {
			if triple {
				lx.errorf(line, "string starting here is never closed")
			} else {
				lx.errorf(line, "string is not closed before the end of the line (use a backslash or triple quotes to continue it)")
			}
			break
		}
		c := s[lx.pos]
		if c == q {
			if !triple {
				lx.pos++
				break
			}
			if lx.pos+2 < len(s) && s[lx.pos+1] == q && s[lx.pos+2] == q {
				lx.pos += 3
				break
			}
		}
		if c == '\n' {
			if !triple {
				lx.errorf(line, "string is not closed before the end of the line (use a backslash or triple quotes to continue it)")
				break // leave the newline for the statement end
			}
			lx.line++
		}
		if c == 0 {
			lx.errorf(lx.line, "NUL byte inside a string (write \\x00)")
			lx.pos++
			continue
		}
		if c != '\\' {
			b.WriteByte(c)
			lx.pos++
			continue
		}
		// Backslash.
		if lx.pos+1 >= len(s) {
			b.WriteByte(c)
			lx.pos++
			continue
		}
		if raw {
			// In a raw string a backslash keeps itself and the next
			// character, which therefore cannot end the string.
			n := s[lx.pos+1]
			if n == '\n' {
				lx.line++
			}
			b.WriteByte('\\')
			b.WriteByte(n)
			lx.pos += 2
			continue
		}
		lx.escape(&b)
	}
	return token{kind: tString, text: b.String(), line: line, start: start, end: lx.pos}
}

// escape decodes one backslash escape at lx.pos into b.
func (lx *lexer) escape(b *strings.Builder) {
	s := lx.src
	n := s[lx.pos+1]
	lx.pos += 2
	switch n {
	case '\n':
		lx.line++ // line continuation inside the string
	case '\\', '\'', '"':
		b.WriteByte(n)
	case 'a':
		b.WriteByte('\a')
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case 'v':
		b.WriteByte('\v')
	case '0', '1', '2', '3', '4', '5', '6', '7':
		v := int(n - '0')
		for k := 0; k < 2 && lx.pos < len(s) && s[lx.pos] >= '0' && s[lx.pos] <= '7'; k++ {
			v = v*8 + int(s[lx.pos]-'0')
			lx.pos++
		}
		if v > 0xff {
			lx.errorf(lx.line, "octal escape \\%o is larger than \\377", v)
			return
		}
		b.WriteByte(byte(v))
	case 'x':
		v, ok := lx.hexDigits(2)
		if !ok {
			lx.errorf(lx.line, "\\x must be followed by exactly two hex digits")
			return
		}
		b.WriteByte(byte(v))
	case 'u', 'U':
		width := 4
		if n == 'U' {
			width = 8
		}
		v, ok := lx.hexDigits(width)
		if !ok {
			lx.errorf(lx.line, "\\%c must be followed by exactly %d hex digits", n, width)
			return
		}
		if v > utf8.MaxRune || (v >= 0xd800 && v <= 0xdfff) {
			lx.errorf(lx.line, "\\%c%0*x is not a Unicode character", n, width, v)
			return
		}
		b.WriteRune(rune(v))
	case 'N':
		lx.errorf(lx.line, "\\N{...} escapes are not supported; write the character or a \\u escape")
	default:
		// Python keeps unknown escapes as they are: "\d" is a backslash
		// and a d.
		b.WriteByte('\\')
		lx.pos-- // the character after the backslash is read normally
	}
}

func (lx *lexer) hexDigits(width int) (uint32, bool) {
	if lx.pos+width > len(lx.src) {
		return 0, false
	}
	var v uint32
	for k := 0; k < width; k++ {
		c := lx.src[lx.pos+k]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	lx.pos += width
	return v, true
}
