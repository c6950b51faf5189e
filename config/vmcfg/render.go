package vmcfg

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// span is one top-level `key = value` statement of a vm.cfg file:
// text[start:end] is the statement without a trailing comment.
type span struct {
	key        string
	start, end int
}

// statementSpans finds the top-level statements of a vm.cfg file. It
// follows the Python literal syntax vmcfg accepts (strings with
// prefixes, triple quotes and escapes, brackets spanning lines, comments,
// backslash continuations, ';'). It returns false when it cannot follow
// the text; the caller then does not edit it.
func statementSpans(src string) ([]span, bool) {
	var out []span
	i, n := 0, len(src)
	for i < n {
		// Start of a statement: skip blanks, empty lines, comments, ';'.
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';' || c == '\f':
			i++
			continue
		case c == '#':
			for i < n && src[i] != '\n' {
				i++
			}
			continue
		case c == '\\' && i+1 < n && src[i+1] == '\n':
			i += 2
			continue
		}
		start := i
		j := i
		for j < n && (isIdentByte(src[j])) {
			j++
		}
		key := src[i:j]
		// Scan the statement to its end.
		depth, last := 0, j
		k := j
	stmt:
		for k < n {
			c := src[k]
			switch {
			case c == '#':
				for k < n && src[k] != '\n' {
					k++
				}
			case c == '\\' && k+1 < n && src[k+1] == '\n':
				k += 2
			case c == '\\' && k+2 < n && src[k+1] == '\r' && src[k+2] == '\n':
				k += 3
			case c == '\'' || c == '"':
				end, ok := skipString(src, k)
				if !ok {
					return nil, false
				}
				k, last = end, end
			case c == '(' || c == '[' || c == '{':
				depth++
				k++
				last = k
			case c == ')' || c == ']' || c == '}':
				depth--
				if depth < 0 {
					return nil, false
				}
				k++
				last = k
			case (c == '\n' || c == ';') && depth == 0:
				break stmt
			case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f':
				k++
			default:
				k++
				last = k
			}
		}
		if depth != 0 {
			return nil, false
		}
		if key != "" {
			out = append(out, span{key: key, start: start, end: last})
		}
		if k == i {
			k++
		}
		i = k
	}
	return out, true
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// skipString returns the index after the string literal starting with a
// quote at i (string prefixes are ordinary identifier bytes before it).
func skipString(src string, i int) (int, bool) {
	q := src[i]
	triple := i+2 < len(src) && src[i+1] == q && src[i+2] == q
	k := i + 1
	if triple {
		k = i + 3
	}
	for k < len(src) {
		c := src[k]
		switch {
		case c == '\\':
			k += 2 // in raw strings too, a quote after a backslash does not end the literal
			continue
		case !triple && c == '\n':
			return 0, false
		case c == q:
			if !triple {
				return k + 1, true
			}
			if k+2 < len(src) && src[k+1] == q && src[k+2] == q {
				return k + 3, true
			}
		}
		k++
	}
	return 0, false
}

// pyQuote renders s as a single-quoted Python string literal that vmcfg
// reads back as s.
func pyQuote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
			i++
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
			i++
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError {
				b.WriteString(s[i : i+size])
				i += size
				continue
			}
			fallthrough
		default:
			const hex = "0123456789abcdef"
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			i++
		}
	}
	b.WriteByte('\'')
	return b.String()
}

func pyList(items []string) string {
	if len(items) == 0 {
		return "[]"
	}
	q := make([]string, len(items))
	for i, it := range items {
		q[i] = pyQuote(it)
	}
	return "[ " + strings.Join(q, ", ") + ", ]"
}

// rewriteVMCfg returns the text of src (a vm.cfg file) with the
// statements of the given keys replaced by key = value (value is Python
// source), keeping everything else (comments and layout included). A key
// assigned more than once keeps only its last place; a key not in the
// file is appended. It returns false when it cannot follow the text.
func rewriteVMCfg(src string, values map[string]string, order []string) (string, bool) {
	spans, ok := statementSpans(src)
	if !ok {
		return "", false
	}
	last := map[string]int{}
	for i, s := range spans {
		if _, want := values[s.key]; want {
			last[s.key] = i
		}
	}
	var b strings.Builder
	pos := 0
	for i, s := range spans {
		v, want := values[s.key]
		if !want {
			continue
		}
		b.WriteString(src[pos:s.start])
		if last[s.key] == i {
			b.WriteString(s.key + " = " + v)
		}
		pos = s.end
	}
	b.WriteString(src[pos:])
	out := b.String()
	for _, k := range order {
		if _, present := last[k]; present {
			continue
		}
		if out != "" && !strings.HasSuffix(out, "\n") {
			out += "\n"
		}
		out += k + " = " + values[k] + "\n"
	}
	return out, true
}

// Render writes want, a modified copy of the Config parsed from
// orig (new name, UUID, MACs or disk paths): it edits orig's text in place
// when it can, so comments stay, and checks that the result parses back to
// want; otherwise it writes want.Marshal().
func Render(orig []byte, want *Config) []byte {
	values := map[string]string{
		KeyName: pyQuote(want.Name),
		KeyUUID: pyQuote(want.UUID),
	}
	order := []string{KeyName, KeyUUID}
	if len(want.VIFs) > 0 {
		values[KeyVIF] = pyList(stringsOf(want.VIFs))
		order = append(order, KeyVIF)
	}
	if len(want.Disks) > 0 {
		values[KeyDisk] = pyList(stringsOf(want.Disks))
		order = append(order, KeyDisk)
	}
	if text, ok := rewriteVMCfg(string(orig), values, order); ok {
		if got, err := Parse("vm.cfg", []byte(text)); err == nil && got.Equal(want) {
			return []byte(text)
		}
	}
	return want.Marshal()
}

// stringsOf returns the String of every item.
func stringsOf[T fmt.Stringer](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	return out
}
