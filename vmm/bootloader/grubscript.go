package bootloader

import (
	"fmt"
	"strings"
)

// The lexer and parser of GRUB 2's script language, as far as grub.cfg
// needs: words with GRUB's quoting ('...' literal, "..." with $variables
// and \ escapes, \ outside quotes), # comments, ; and newlines between
// commands, and { } blocks after menuentry, submenu and function.

const (
	maxConfigBytes = 1 << 20
	maxTokens      = 1 << 18
	maxBlockDepth  = 32
	maxEntries     = 1024
)

// seg is a piece of a word: literal text, or a variable to expand.
type seg struct {
	text  string
	isVar bool
}

type word []seg

// literal is the word's text when it has no variables.
func (w word) literal() (string, bool) {
	var b strings.Builder
	for _, s := range w {
		if s.isVar {
			return "", false
		}
		b.WriteString(s.text)
	}
	return b.String(), true
}

type tokKind int

const (
	tokWord  tokKind = iota
	tokSep           // newline or ;
	tokOpen          // {
	tokClose         // }
)

type token struct {
	kind tokKind
	w    word
	line int
}

type lexer struct {
	s    string
	i    int
	line int
	toks []token
}

func lexGrub(s string) ([]token, error) {
	l := &lexer{s: s, line: 1}
	for {
		l.skipBlanks()
		if l.i >= len(l.s) {
			return l.toks, nil
		}
		if len(l.toks) >= maxTokens {
			return nil, fmt.Errorf("more than %d words", maxTokens)
		}
		switch c := l.s[l.i]; c {
		case '#':
			for l.i < len(l.s) && l.s[l.i] != '\n' {
				l.i++
			}
		case '\n', ';':
			l.toks = append(l.toks, token{kind: tokSep, line: l.line})
			if c == '\n' {
				l.line++
			}
			l.i++
		case '{', '}':
			k := tokOpen
			if c == '}' {
				k = tokClose
			}
			l.toks = append(l.toks, token{kind: k, line: l.line})
			l.i++
		default:
			line := l.line
			w, err := l.word()
			if err != nil {
				return nil, err
			}
			l.toks = append(l.toks, token{kind: tokWord, w: w, line: line})
		}
	}
}

func (l *lexer) skipBlanks() {
	for l.i < len(l.s) {
		switch {
		case l.s[l.i] == ' ' || l.s[l.i] == '\t' || l.s[l.i] == '\r':
			l.i++
		case strings.HasPrefix(l.s[l.i:], "\\\n"):
			l.i += 2
			l.line++
		default:
			return
		}
	}
}

func (l *lexer) word() (word, error) {
	var w word
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			w = append(w, seg{text: lit.String()})
			lit.Reset()
		}
	}
	for l.i < len(l.s) {
		c := l.s[l.i]
		switch {
		case strings.IndexByte(" \t\r\n;{}", c) >= 0:
			flush()
			return w, nil
		case c == '\'':
			end := strings.IndexByte(l.s[l.i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("line %d: a ' quote that does not end", l.line)
			}
			q := l.s[l.i+1 : l.i+1+end]
			l.line += strings.Count(q, "\n")
			lit.WriteString(q)
			l.i += end + 2
		case c == '"':
			l.i++
			if err := l.dquoted(&w, &lit, flush); err != nil {
				return nil, err
			}
		case c == '\\':
			if l.i+1 < len(l.s) && l.s[l.i+1] == '\n' {
				l.line++
			} else if l.i+1 < len(l.s) {
				lit.WriteByte(l.s[l.i+1])
			}
			l.i += 2
		case c == '$':
			flush()
			w = append(w, l.variable())
		default:
			lit.WriteByte(c)
			l.i++
		}
	}
	flush()
	return w, nil
}

// dquoted reads a "..." string after its opening quote.
func (l *lexer) dquoted(w *word, lit *strings.Builder, flush func()) error {
	start := l.line
	for l.i < len(l.s) {
		c := l.s[l.i]
		switch {
		case c == '"':
			l.i++
			return nil
		case c == '\\' && l.i+1 < len(l.s) && strings.IndexByte("\\\"$\n", l.s[l.i+1]) >= 0:
			if l.s[l.i+1] == '\n' {
				l.line++
			} else {
				lit.WriteByte(l.s[l.i+1])
			}
			l.i += 2
		case c == '$':
			flush()
			*w = append(*w, l.variable())
		default:
			if c == '\n' {
				l.line++
			}
			lit.WriteByte(c)
			l.i++
		}
	}
	return fmt.Errorf("line %d: a \" quote that does not end", start)
}

// variable reads $name, ${name} or a lone $ (then literal).
func (l *lexer) variable() seg {
	l.i++ // $
	if l.i < len(l.s) && l.s[l.i] == '{' {
		if end := strings.IndexByte(l.s[l.i:], '}'); end > 1 {
			name := l.s[l.i+1 : l.i+end]
			l.i += end + 1
			return seg{text: name, isVar: true}
		}
		return seg{text: "$"}
	}
	j := l.i
	for j < len(l.s) && (isNameChar(l.s[j])) {
		j++
	}
	if j == l.i && j < len(l.s) && strings.IndexByte("?#*@", l.s[j]) >= 0 {
		j++
	}
	if j == l.i {
		return seg{text: "$"}
	}
	name := l.s[l.i:j]
	l.i = j
	return seg{text: name, isVar: true}
}

func isNameChar(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// command is one command: its words, and its { } body when it has one.
type command struct {
	words []word
	line  int
	body  []command
	block bool
}

type parser struct {
	toks []token
	i    int
}

func parseGrub(toks []token) ([]command, error) {
	p := &parser{toks: toks}
	cmds, closed, err := p.list(0)
	if err != nil {
		return nil, err
	}
	if closed {
		return nil, fmt.Errorf("line %d: a } without its {", p.toks[p.i-1].line)
	}
	return cmds, nil
}

// list parses commands until a } (closed) or the end.
func (p *parser) list(depth int) (cmds []command, closed bool, err error) {
	if depth > maxBlockDepth {
		return nil, false, fmt.Errorf("blocks nested deeper than %d", maxBlockDepth)
	}
	var cur command
	end := func() {
		if len(cur.words) > 0 || cur.block {
			cmds = append(cmds, cur)
		}
		cur = command{}
	}
	for p.i < len(p.toks) {
		t := p.toks[p.i]
		p.i++
		switch t.kind {
		case tokWord:
			if len(cur.words) == 0 {
				cur.line = t.line
			}
			cur.words = append(cur.words, t.w)
		case tokSep:
			end()
		case tokOpen:
			body, closed, err := p.list(depth + 1)
			if err != nil {
				return nil, false, err
			}
			if !closed {
				return nil, false, fmt.Errorf("line %d: a { that is not closed", t.line)
			}
			cur.body, cur.block = body, true
			end()
		case tokClose:
			end()
			return cmds, true, nil
		}
	}
	end()
	return cmds, false, nil
}
