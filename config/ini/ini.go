package ini

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxSize is the largest document Parse accepts, in bytes.
const MaxSize = 1 << 20

// maxErrors bounds how many errors Parse collects before it gives up, so
// that feeding it a binary file does not produce a million lines.
const maxErrors = 20

const bom = "\uFEFF"

// Error is one syntax error, positioned by file name and 1-based line.
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

// Key is one key of a section as it stands in the file.
type Key struct {
	Name  string // canonical (lower-case) name
	Value string
	Line  int // 1-based
}

// Section is one section of the file. Line is the line of its header, or 0
// for the implicit section "" that holds keys before the first header.
type Section struct {
	Name string
	Line int
}

type lineKind int

const (
	kindBlank lineKind = iota
	kindComment
	kindSection
	kindKey
)

type line struct {
	text string // without the line ending (and, for line 0, without a BOM)
	eol  string // "\n", "\r\n", "\r" or "" (last line without a newline)
	kind lineKind

	// For kindKey: the '=' is at text[eq]; the value occupies
	// text[valStart:valEnd].
	eq, valStart, valEnd int
}

type entry struct {
	key   string
	value string
	line  int // index into File.lines
}

type section struct {
	name    string
	header  int // index into File.lines, -1 for the implicit "" section
	entries []*entry
	byKey   map[string]*entry
	last    int // index of the last header or key line, -1 if none
}

// File is a parsed INI document. The zero value is not usable; use Parse.
// A File is not safe for concurrent use.
type File struct {
	name     string
	bom      bool
	lines    []line
	sections []*section // sections[0] is always the implicit "" section
	byName   map[string]*section
}

// Parse parses data, naming it name in errors. It returns every syntax
// error it finds (joined with errors.Join, each an *Error), or the document.
func Parse(name string, data []byte) (*File, error) {
	if len(data) > MaxSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("file is %d bytes, larger than the limit of %d", len(data), MaxSize)}
	}
	f := &File{name: name}
	if bytes.HasPrefix(data, []byte(bom)) {
		f.bom = true
		data = data[len(bom):]
	}
	f.lines = splitLines(string(data))
	if errs := f.index(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, nil
}

// splitLines cuts s into lines, keeping each line's ending.
func splitLines(s string) []line {
	var out []line
	for len(s) > 0 {
		i := strings.IndexByte(s, '\n')
		var l line
		if i < 0 {
			l.text, s = s, ""
			if strings.HasSuffix(l.text, "\r") {
				l.text, l.eol = l.text[:len(l.text)-1], "\r"
			}
		} else {
			l.text, l.eol, s = s[:i], "\n", s[i+1:]
			if strings.HasSuffix(l.text, "\r") {
				l.text, l.eol = l.text[:len(l.text)-1], "\r\n"
			}
		}
		out = append(out, l)
	}
	return out
}

// index classifies every line and builds the section and key tables.
func (f *File) index() []error {
	global := &section{name: "", header: -1, byKey: map[string]*entry{}, last: -1}
	f.sections = []*section{global}
	f.byName = map[string]*section{"": global}
	cur := global
	var errs []error
	add := func(i int, format string, args ...any) bool {
		errs = append(errs, &Error{File: f.name, Line: i + 1, Msg: fmt.Sprintf(format, args...)})
		if len(errs) >= maxErrors {
			errs = append(errs, &Error{File: f.name, Line: i + 1, Msg: "too many errors; stopped here"})
			return false
		}
		return true
	}
	for i := range f.lines {
		l := &f.lines[i]
		if msg := checkText(l.text); msg != "" {
			if !add(i, "%s", msg) {
				return errs
			}
			continue
		}
		p := parseLine(l.text)
		if p.err != "" {
			if !add(i, "%s", p.err) {
				return errs
			}
			continue
		}
		l.kind, l.eq, l.valStart, l.valEnd = p.kind, p.eq, p.valStart, p.valEnd
		switch p.kind {
		case kindSection:
			if s, ok := f.byName[p.name]; ok {
				where := "before the first section"
				if s.header >= 0 {
					where = fmt.Sprintf("at line %d", s.header+1)
				}
				if !add(i, "section [%s] already declared %s", p.name, where) {
					return errs
				}
				cur = s // keep collecting its keys so duplicates show up
				continue
			}
			s := &section{name: p.name, header: i, byKey: map[string]*entry{}, last: i}
			f.sections = append(f.sections, s)
			f.byName[p.name] = s
			cur = s
		case kindKey:
			if prev, ok := cur.byKey[p.name]; ok {
				if !add(i, "duplicate key %q in %s (first set at line %d)", p.name, sectionLabel(cur.name), prev.line+1) {
					return errs
				}
				continue
			}
			e := &entry{key: p.name, value: l.text[p.valStart:p.valEnd], line: i}
			cur.entries = append(cur.entries, e)
			cur.byKey[p.name] = e
			if i > cur.last {
				cur.last = i
			}
		}
	}
	return errs
}

func sectionLabel(name string) string {
	if name == "" {
		return "the keys before the first section"
	}
	return "[" + name + "]"
}

// checkText rejects what cannot be configuration text.
func checkText(s string) string {
	if !utf8.ValidString(s) {
		return "invalid UTF-8"
	}
	for _, r := range s {
		if r == '\t' {
			continue
		}
		if r < 0x20 || r == 0x7f {
			return fmt.Sprintf("control character %U", r)
		}
		if r == 0xFEFF {
			return "byte-order mark inside the file"
		}
	}
	return ""
}

type parsedLine struct {
	kind                 lineKind
	name                 string // canonical section or key name
	eq, valStart, valEnd int
	err                  string
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// ValidName reports whether s is a valid section or key name.
func ValidName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// parseLine classifies one line (already checked by checkText).
func parseLine(text string) parsedLine {
	start := 0
	for start < len(text) && isBlank(text[start]) {
		start++
	}
	if start == len(text) {
		return parsedLine{kind: kindBlank}
	}
	switch text[start] {
	case ';', '#':
		return parsedLine{kind: kindComment}
	case '[':
		end := strings.IndexByte(text[start:], ']')
		if end < 0 {
			return parsedLine{err: "section header without closing ']'"}
		}
		end += start
		name := text[start+1 : end]
		if !ValidName(name) {
			return parsedLine{err: fmt.Sprintf("invalid section name %q (use letters, digits, '_', '-', '.')", name)}
		}
		rest := strings.TrimLeft(text[end+1:], " \t")
		if rest != "" && rest[0] != ';' && rest[0] != '#' {
			return parsedLine{err: fmt.Sprintf("unexpected %q after section header", rest)}
		}
		return parsedLine{kind: kindSection, name: strings.ToLower(name)}
	}
	eq := strings.IndexByte(text, '=')
	if eq < 0 {
		return parsedLine{err: fmt.Sprintf("expected \"[section]\", \"key = value\" or a comment, found %q", strings.TrimSpace(text))}
	}
	key := strings.Trim(text[start:eq], " \t")
	if !ValidName(key) {
		if key == "" {
			return parsedLine{err: "missing key name before '='"}
		}
		return parsedLine{err: fmt.Sprintf("invalid key name %q (use letters, digits, '_', '-', '.')", key)}
	}
	vs := eq + 1
	for vs < len(text) && isBlank(text[vs]) {
		vs++
	}
	// The value ends at the first ';' that follows a blank, or at the end.
	ve := len(text)
	for i := eq + 1; i < len(text); i++ {
		if text[i] == ';' && isBlank(text[i-1]) {
			ve = i
			break
		}
	}
	if vs > ve {
		vs = ve
	}
	for ve > vs && isBlank(text[ve-1]) {
		ve--
	}
	return parsedLine{kind: kindKey, name: strings.ToLower(key), eq: eq, valStart: vs, valEnd: ve}
}

// Get returns the value of key in section and its 1-based line. Names are
// case-insensitive.
func (f *File) Get(section, key string) (value string, line int, ok bool) {
	s := f.byName[strings.ToLower(section)]
	if s == nil {
		return "", 0, false
	}
	e := s.byKey[strings.ToLower(key)]
	if e == nil {
		return "", 0, false
	}
	return e.value, e.line + 1, true
}

// Keys returns the keys of section in file order, or nil if it has none.
func (f *File) Keys(section string) []Key {
	s := f.byName[strings.ToLower(section)]
	if s == nil {
		return nil
	}
	out := make([]Key, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, Key{Name: e.key, Value: e.value, Line: e.line + 1})
	}
	return out
}

// Sections returns the sections in file order. The implicit section "" is
// included (first, with Line 0) only when it holds keys.
func (f *File) Sections() []Section {
	var out []Section
	for _, s := range f.sections {
		if s.header < 0 {
			if len(s.entries) == 0 {
				continue
			}
			out = append(out, Section{Name: "", Line: 0})
			continue
		}
		out = append(out, Section{Name: s.name, Line: s.header + 1})
	}
	return out
}

// Bytes returns the document. With no Set since Parse it is exactly the
// parsed input.
func (f *File) Bytes() []byte {
	n := 0
	for _, l := range f.lines {
		n += len(l.text) + len(l.eol)
	}
	var b bytes.Buffer
	b.Grow(n + len(bom))
	if f.bom {
		b.WriteString(bom)
	}
	for _, l := range f.lines {
		b.WriteString(l.text)
		b.WriteString(l.eol)
	}
	return b.Bytes()
}

// newline is the line ending new lines get: the file's first one, or "\n".
func (f *File) newline() string {
	for _, l := range f.lines {
		if l.eol == "\r\n" || l.eol == "\n" {
			return l.eol
		}
	}
	return "\n"
}

// Set gives key in section the value. An existing key keeps its line, its
// indentation, the spacing around '=' and its inline comment; only the
// value text changes. A new key is added as "key = value" after the last
// key (or the header) of its section; a new section is added at the end of
// the file. Set fails, leaving the document unchanged, if a name is
// invalid or the value cannot be written so that it reads back unchanged
// (line breaks, control characters, leading or trailing blanks, or a ';'
// after a blank, which would start a comment).
func (f *File) Set(section, key, value string) error {
	section, key = strings.ToLower(section), strings.ToLower(key)
	if section != "" && !ValidName(section) {
		return fmt.Errorf("%s: invalid section name %q", f.name, section)
	}
	if !ValidName(key) {
		return fmt.Errorf("%s: invalid key name %q", f.name, key)
	}
	msg := checkText(value)
	if strings.ContainsAny(value, "\r\n") {
		msg = "line break"
	}
	if msg != "" {
		return fmt.Errorf("%s: value for %s %s: %s", f.name, sectionLabel(section), key, msg)
	}
	lines := append([]line(nil), f.lines...)
	nl := f.newline()
	s := f.byName[section]
	switch {
	case s != nil && s.byKey[key] != nil:
		e := s.byKey[key]
		l := lines[e.line]
		before, after, v := l.text[:l.valStart], l.text[l.valEnd:], value
		if v != "" && strings.HasPrefix(after, ";") {
			after = " " + after // keep the comment a comment
		}
		if v != "" && l.valStart == l.eq+1 && l.eq > 0 && isBlank(l.text[l.eq-1]) {
			v = " " + v // "deny =" becomes "deny = x", as spaced as the '='
		}
		l.text = before + v + after
		lines[e.line] = l
	case s != nil:
		at := s.last + 1 // after the header or last key; 0 for an empty "" section
		nlines := make([]line, 0, len(lines)+1)
		nlines = append(nlines, lines[:at]...)
		nlines = append(nlines, line{text: key + " = " + value, eol: nl})
		nlines = append(nlines, lines[at:]...)
		if at > 0 && nlines[at-1].eol != "\n" && nlines[at-1].eol != "\r\n" {
			nlines[at-1].eol = nl
			if at == len(nlines)-1 {
				nlines[at].eol = "" // the file did not end with a newline
			}
		}
		lines = nlines
	default:
		if n := len(lines); n > 0 {
			if lines[n-1].eol != "\n" && lines[n-1].eol != "\r\n" {
				lines[n-1].eol = nl
			}
			if strings.Trim(lines[n-1].text, " \t") != "" {
				lines = append(lines, line{eol: nl})
			}
		}
		lines = append(lines, line{text: "[" + section + "]", eol: nl}, line{text: key + " = " + value, eol: nl})
	}
	g := &File{name: f.name, bom: f.bom, lines: lines}
	if errs := g.index(); len(errs) > 0 {
		return fmt.Errorf("%s: cannot set %s %s to %q: %w", f.name, sectionLabel(section), key, value, errors.Join(errs...))
	}
	if got, _, ok := g.Get(section, key); !ok || got != value {
		return fmt.Errorf("%s: cannot set %s %s to %q: the value would read back as %q (a ';' after a blank starts a comment; leading and trailing blanks are dropped)", f.name, sectionLabel(section), key, value, got)
	}
	*f = *g
	return nil
}
