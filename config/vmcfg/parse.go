package vmcfg

import (
	"math"
	"strconv"
	"strings"
)

// assignment is one `key = value` statement.
type assignment struct {
	key   string
	line  int
	value Value
	raw   string // the value's source text as written
}

// Python words that cannot be assigned to; statements that start with one
// are reported as unsupported code rather than as a syntax error.
var pythonKeywords = map[string]bool{
	"False": true, "None": true, "True": true, "and": true, "as": true,
	"assert": true, "async": true, "await": true, "break": true, "class": true,
	"continue": true, "def": true, "del": true, "elif": true, "else": true,
	"except": true, "exec": true, "finally": true, "for": true, "from": true,
	"global": true, "if": true, "import": true, "in": true, "is": true,
	"lambda": true, "nonlocal": true, "not": true, "or": true, "pass": true,
	"print": true, "raise": true, "return": true, "try": true, "while": true,
	"with": true, "yield": true,
}

// parser reads statements from a lexer. A vm.cfg file is a sequence of
// `key = literal` statements separated by newlines or ';'. It is read as
// data: no expression, name reference or other statement is evaluated.
type parser struct {
	lx    *lexer
	src   string
	tok   token
	r     *reporter
	depth int
	// lastEnd is the end offset of the last token that belongs to the
	// value being read, for assignment.raw.
	lastEnd int
}

// parseStatements returns the assignments in src in file order. Errors go
// to r; a statement with an error is skipped.
func parseStatements(src string, r *reporter) []assignment {
	p := &parser{lx: newLexer(src, r), src: src, r: r}
	p.advance()
	var out []assignment
	for p.tok.kind != tEOF {
		if p.r.overflow {
			break
		}
		switch {
		case p.tok.kind == tNewline || (p.tok.kind == tOp && p.tok.text == ";"):
			p.advance()
			continue
		}
		a, ok := p.statement()
		if ok {
			out = append(out, a)
		} else {
			p.skipStatement()
		}
	}
	return out
}

func (p *parser) advance() { p.tok = p.lx.next() }

func (p *parser) isOp(s string) bool { return p.tok.kind == tOp && p.tok.text == s }

func (p *parser) errorf(line int, key, format string, args ...any) {
	p.r.errorf(line, key, format, args...)
}

// skipStatement drops tokens up to the end of the current statement.
func (p *parser) skipStatement() {
	for p.tok.kind != tEOF && p.tok.kind != tNewline && !(p.isOp(";") && p.lx.depth == 0) {
		p.advance()
	}
}

func (p *parser) atStatementEnd() bool {
	return p.tok.kind == tEOF || p.tok.kind == tNewline || p.isOp(";")
}

func (p *parser) statement() (assignment, bool) {
	t := p.tok
	if t.kind != tName {
		p.errorf(t.line, "", "expected an option name at the start of a statement, found %s", t.describe())
		return assignment{}, false
	}
	if pythonKeywords[t.text] {
		p.errorf(t.line, "", "%q statements are not supported: vm.cfg is read as data (key = value lines), not run as Python", t.text)
		return assignment{}, false
	}
	key := t.text
	p.advance()
	if !p.isOp("=") {
		if p.tok.kind == tOp && strings.Contains("+-*/%|&^<>@", p.tok.text) {
			p.errorf(t.line, key, "only plain assignment (%s = value) is supported, found '%s'", key, p.tok.text)
		} else {
			p.errorf(t.line, key, "expected '=' after the option name, found %s", p.tok.describe())
		}
		return assignment{}, false
	}
	p.advance()
	if p.atStatementEnd() {
		p.errorf(t.line, key, "missing value after '='")
		return assignment{}, false
	}
	start := p.tok.start
	v, ok := p.valueList(key, "")
	if !ok {
		return assignment{}, false
	}
	end := p.lastEnd
	if !p.atStatementEnd() {
		p.unexpectedAfterValue(key)
		return assignment{}, false
	}
	return assignment{key: key, line: t.line, value: v, raw: strings.TrimSpace(p.src[start:end])}, true
}

// unexpectedAfterValue reports what follows a complete value.
func (p *parser) unexpectedAfterValue(key string) {
	t := p.tok
	switch {
	case t.kind == tOp && t.text == "=":
		p.errorf(t.line, key, "chained assignment is not supported")
	case t.kind == tOp && strings.Contains("+-*/%|&^<>@.", t.text):
		p.errorf(t.line, key, "expressions are not supported (found '%s'): vm.cfg values must be literals", t.text)
	case t.kind == tOp && t.text == "(":
		p.errorf(t.line, key, "function calls are not supported: vm.cfg values must be literals")
	default:
		p.errorf(t.line, key, "unexpected %s after the value", t.describe())
	}
}

// valueList reads value [, value ...] [,]: more than one value, or a
// trailing comma, makes a tuple (as in Python: x = 1, 2). close is the
// closing bracket when inside brackets, "" at statement level.
func (p *parser) valueList(key, close string) (Value, bool) {
	line := p.tok.line
	first, ok := p.value(key)
	if !ok {
		return Value{}, false
	}
	if !p.isOp(",") {
		return first, true
	}
	items := []Value{first}
	for p.isOp(",") {
		p.advance()
		if (close == "" && p.atStatementEnd()) || (close != "" && p.isOp(close)) {
			break
		}
		v, ok := p.value(key)
		if !ok {
			return Value{}, false
		}
		items = append(items, v)
	}
	return Value{Kind: KindTuple, Items: items, Line: line}, true
}

// value reads one literal.
func (p *parser) value(key string) (Value, bool) {
	t := p.tok
	switch t.kind {
	case tString:
		// Adjacent literals concatenate, as in Python: 'a' "b" == 'ab'.
		var b strings.Builder
		for p.tok.kind == tString {
			b.WriteString(p.tok.text)
			p.lastEnd = p.tok.end
			p.advance()
		}
		return Value{Kind: KindString, Str: b.String(), Line: t.line}, true
	case tNumber:
		p.lastEnd = t.end
		p.advance()
		return p.number(key, t, false)
	case tName:
		p.lastEnd = t.end
		p.advance()
		switch t.text {
		case "True":
			return Value{Kind: KindBool, Bool: true, Line: t.line}, true
		case "False":
			return Value{Kind: KindBool, Line: t.line}, true
		case "None":
			return Value{Kind: KindNone, Line: t.line}, true
		}
		p.errorf(t.line, key, "name references such as %s are not supported: vm.cfg is read as data, so write the value itself", t.text)
		return Value{}, false
	case tOp:
		switch t.text {
		case "-", "+":
			neg := false
			for p.isOp("-") || p.isOp("+") {
				if p.tok.text == "-" {
					neg = !neg
				}
				p.advance()
			}
			if p.tok.kind != tNumber {
				p.errorf(t.line, key, "'%s' must be followed by a number, found %s", t.text, p.tok.describe())
				return Value{}, false
			}
			n := p.tok
			p.lastEnd = n.end
			p.advance()
			return p.number(key, n, neg)
		case "[", "(", "{":
			return p.container(key, t)
		}
	}
	p.errorf(t.line, key, "expected a value, found %s", t.describe())
	return Value{}, false
}

// container reads a list, a tuple or parenthesised value, or a dict.
func (p *parser) container(key string, open token) (Value, bool) {
	if p.depth >= MaxDepth {
		p.errorf(open.line, key, "values are nested more than %d levels deep", MaxDepth)
		return Value{}, false
	}
	p.depth++
	defer func() { p.depth-- }()
	p.advance()
	switch open.text {
	case "[":
		return p.list(key, open)
	case "(":
		return p.paren(key, open)
	default: // "{"
		return p.dict(key, open)
	}
}

// list reads the rest of a list, after its '['.
func (p *parser) list(key string, open token) (Value, bool) {
	v := Value{Kind: KindList, Line: open.line}
	for !p.isOp("]") {
		it, ok := p.value(key)
		if !ok {
			return Value{}, false
		}
		v.Items = append(v.Items, it)
		if p.isOp(",") {
			p.advance()
			continue
		}
		if !p.isOp("]") {
			return Value{}, p.expectClose(key, "]", open)
		}
	}
	p.lastEnd = p.tok.end
	p.advance()
	return v, true
}

// paren reads the rest of a tuple or parenthesised value, after its '('.
func (p *parser) paren(key string, open token) (Value, bool) {
	if p.isOp(")") {
		p.lastEnd = p.tok.end
		p.advance()
		return Value{Kind: KindTuple, Line: open.line}, true
	}
	v, ok := p.valueList(key, ")")
	if !ok {
		return Value{}, false
	}
	if !p.isOp(")") {
		return Value{}, p.expectClose(key, ")", open)
	}
	p.lastEnd = p.tok.end
	p.advance()
	// (x) is just x; (x,) and (x, y) are tuples. valueList already
	// made the tuple; give it the line of the parenthesis.
	if v.Kind == KindTuple {
		v.Line = open.line
	}
	return v, true
}

// dict reads the rest of a dict, after its '{'.
func (p *parser) dict(key string, open token) (Value, bool) {
	v := Value{Kind: KindDict, Line: open.line}
	seen := map[dictKey]bool{}
	for !p.isOp("}") {
		k, ok := p.value(key)
		if !ok {
			return Value{}, false
		}
		if k.Kind != KindString && k.Kind != KindInt {
			p.errorf(k.Line, key, "dict keys must be strings or integers, found %s %s", k.Kind, k.describe())
			return Value{}, false
		}
		if seen[keyOf(k)] {
			p.errorf(k.Line, key, "dict key %s appears twice", k.describe())
			return Value{}, false
		}
		seen[keyOf(k)] = true
		if !p.isOp(":") {
			p.errorf(p.tok.line, key, "expected ':' after dict key %s, found %s", k.describe(), p.tok.describe())
			return Value{}, false
		}
		p.advance()
		val, ok := p.value(key)
		if !ok {
			return Value{}, false
		}
		v.Dict = append(v.Dict, DictEntry{Key: k, Value: val})
		if p.isOp(",") {
			p.advance()
			continue
		}
		if !p.isOp("}") {
			return Value{}, p.expectClose(key, "}", open)
		}
	}
	p.lastEnd = p.tok.end
	p.advance()
	return v, true
}

func (p *parser) expectClose(key, close string, open token) bool {
	if p.tok.kind == tEOF {
		// The lexer reports the unclosed bracket.
		return false
	}
	p.errorf(p.tok.line, key, "expected ',' or '%s' (closing the '%s' on line %d), found %s", close, open.text, open.line, p.tok.describe())
	return false
}

// number converts a numeric literal token, negated if neg.
func (p *parser) number(key string, t token, neg bool) (Value, bool) {
	v, msg := parseNumber(t.text, neg)
	if msg != "" {
		p.errorf(t.line, key, "%s", msg)
		return Value{}, false
	}
	v.Line = t.line
	return v, true
}

// parseNumber reads a Python int or float literal. It returns a message
// when the literal is malformed or out of range.
func parseNumber(text string, neg bool) (Value, string) {
	bad := "invalid number " + quote(text)
	lower := strings.ToLower(text)
	if strings.HasSuffix(lower, "j") {
		return Value{}, "complex number " + quote(text) + " is not supported"
	}
	if strings.HasSuffix(lower, "l") {
		return Value{}, "long integer suffix in " + quote(text) + " is not supported; drop the L"
	}
	base := 10
	digits := text
	if len(text) > 1 && text[0] == '0' {
		switch lower[1] {
		case 'x':
			base = 16
		case 'o':
			base = 8
		case 'b':
			base = 2
		}
		if base != 10 {
			digits = text[2:]
			// Python allows one underscore right after the prefix.
			digits = strings.TrimPrefix(digits, "_")
		}
	}
	if !underscoresOK(digits, base) {
		return Value{}, bad + ": underscores must sit between digits"
	}
	clean := strings.ReplaceAll(digits, "_", "")
	if clean == "" {
		return Value{}, bad
	}
	isFloat := base == 10 && strings.ContainsAny(clean, ".eE")
	if isFloat {
		for _, c := range []byte(clean) {
			if !isDigit(c) && c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-' {
				return Value{}, bad
			}
		}
		f, err := strconv.ParseFloat(clean, 64)
		if err != nil || math.IsInf(f, 0) {
			if err != nil && strings.Contains(err.Error(), "range") {
				return Value{}, "float " + quote(text) + " is out of range"
			}
			return Value{}, bad
		}
		if neg {
			f = -f
		}
		return Value{Kind: KindFloat, Float: f}, ""
	}
	if base == 10 && len(clean) > 1 && clean[0] == '0' && strings.Trim(clean, "0") != "" {
		return Value{}, bad + ": a leading zero is ambiguous (octal in Python 2, an error in Python 3); write 0o" + strings.TrimLeft(clean, "0") + " for octal or drop the zeros"
	}
	u, err := strconv.ParseUint(clean, base, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return Value{}, "integer " + quote(text) + " is too large"
		}
		return Value{}, bad
	}
	if neg {
		if u > 1<<63 {
			return Value{}, "integer -" + text + " is too small"
		}
		return Value{Kind: KindInt, Int: -int64(u)}, ""
	}
	if u > math.MaxInt64 {
		return Value{}, "integer " + quote(text) + " is too large"
	}
	return Value{Kind: KindInt, Int: int64(u)}, ""
}

// underscoresOK reports whether every '_' in s sits between two digits of
// the base (Python's rule).
func underscoresOK(s string, base int) bool {
	digit := isDigit
	if base == 16 {
		digit = func(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '_' {
			continue
		}
		if i == 0 || i == len(s)-1 || !digit(s[i-1]) || !digit(s[i+1]) {
			return false
		}
	}
	return true
}
