package sxp

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func atom(s string, line int) Value { return Value{Kind: Atom, Text: s, Line: line} }
func str(s string, line int) Value  { return Value{Kind: String, Text: s, Line: line} }
func list(line int, vs ...Value) Value {
	if vs == nil {
		vs = []Value{}
	}
	return Value{Kind: List, List: vs, Line: line}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Entry
	}{
		{"empty", "", nil},
		{"only comments", "# a\n   # b\n\n", nil},
		{"number", "(xend-relocation-port 8002)", []Entry{
			{Name: "xend-relocation-port", Values: []Value{atom("8002", 1)}, Line: 1},
		}},
		{"single-quoted with escaped backslashes", `(xend-relocation-hosts-allow '^localhost$ ^.*\\.example\\.org$')`, []Entry{
			{Name: "xend-relocation-hosts-allow", Values: []Value{str(`^localhost$ ^.*\.example\.org$`, 1)}, Line: 1},
		}},
		{"unknown escape keeps both characters", `(xend-relocation-hosts-allow '^.*\.example\.org$')`, []Entry{
			{Name: "xend-relocation-hosts-allow", Values: []Value{str(`^.*\.example\.org$`, 1)}, Line: 1},
		}},
		{"double-quoted empty", `(xend-relocation-address "")`, []Entry{
			{Name: "xend-relocation-address", Values: []Value{str("", 1)}, Line: 1},
		}},
		{"escapes", `(e "a\tb\n\\\"\'\a\b\v\f\r" '\x41\x4a\x4A\x7\101\0\12z\y' "\q")`, nil}, // checked below
		{"several forms and lines", "# header\n(logfile /var/log/xen/xend.log)\n\n(loglevel DEBUG) # trailing\n(xend-relocation-server\n    yes)\n", []Entry{
			{Name: "logfile", Values: []Value{atom("/var/log/xen/xend.log", 2)}, Line: 2},
			{Name: "loglevel", Values: []Value{atom("DEBUG", 4)}, Line: 4},
			{Name: "xend-relocation-server", Values: []Value{atom("yes", 6)}, Line: 5},
		}},
		{"nesting", "(xen-api-server ((9363 pam '^localhost$ example\\\\.com$')(unix none)))", []Entry{
			{Name: "xen-api-server", Values: []Value{list(1,
				list(1, atom("9363", 1), atom("pam", 1), str(`^localhost$ example\.com$`, 1)),
				list(1, atom("unix", 1), atom("none", 1)),
			)}, Line: 1},
		}},
		{"empty list value", "(a ())", []Entry{{Name: "a", Values: []Value{list(1)}, Line: 1}}},
		{"name only", "(xend-unix-server)", []Entry{{Name: "xend-unix-server", Values: []Value{}, Line: 1}}},
		{"quoted name", `("dom0-cpus" 0)`, []Entry{{Name: "dom0-cpus", Values: []Value{atom("0", 1)}, Line: 1}}},
		{"separators split atoms", "(a b}c d{e [x]!y;z)", []Entry{{Name: "a", Values: []Value{
			atom("b", 1), atom("}c", 1), atom("d", 1), atom("{e", 1), atom("[x", 1), atom("]", 1), atom("!y", 1), atom(";z", 1),
		}, Line: 1}}},
		{"comment ends atom", "(a b#c\n d)", []Entry{{Name: "a", Values: []Value{atom("b", 1), atom("d", 2)}, Line: 1}}},
		{"quote inside atom is ordinary", "(a it's)", []Entry{{Name: "a", Values: []Value{atom("it's", 1)}, Line: 1}}},
		{"multi-line string", "(a 'x\ny')\n(b c)", []Entry{
			{Name: "a", Values: []Value{str("x\ny", 1)}, Line: 1},
			{Name: "b", Values: []Value{atom("c", 3)}, Line: 3},
		}},
		{"CRLF", "(a 1)\r\n(b 2)\r\n", []Entry{
			{Name: "a", Values: []Value{atom("1", 1)}, Line: 1},
			{Name: "b", Values: []Value{atom("2", 2)}, Line: 2},
		}},
		{"non-ASCII inside string and atom", "(a 'café' x\xc3\xa9)", []Entry{
			{Name: "a", Values: []Value{str("café", 1), atom("xé", 1)}, Line: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("x.sxp", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.name == "escapes" {
				want := []string{"a\tb\n\\\"'\a\b\v\f\r", "AJJ\x07A\x00\nz\\y", `\q`}
				if len(got) != 1 || len(got[0].Values) != len(want) {
					t.Fatalf("got %+v", got)
				}
				for i, w := range want {
					if got[0].Values[i].Text != w {
						t.Errorf("value %d = %q, want %q", i, got[0].Values[i].Text, w)
					}
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unclosed list", "(a 1)\n(b 2\n(c 3)\n", "x.sxp:4: unexpected end of file: '(' opened at line 2 is not closed"},
		{"manual's brace typo", "(xend-relocation-port 8002}\n(xend-relocation-address '')\n", "x.sxp:3: unexpected end of file: '(' opened at line 1 is not closed"},
		{"stray close", "(a 1))\n", "x.sxp:1: unexpected ')' with no open '('"},
		{"top-level atom", "\nxend-relocation-port 8002\n", `x.sxp:2: expected a form "(name value...)", found atom xend-relocation-port`},
		{"top-level string", "'x'", `x.sxp:1: expected a form "(name value...)", found string 'x'`},
		{"empty form", "# c\n()", `x.sxp:2: empty form "()"`},
		{"list as name", "((a) b)", "x.sxp:1: form name must be a symbol, found list (a)"},
		{"unterminated string", "(a 'abc\n\n", "x.sxp:3: unexpected end of file: string opened at line 1 is not closed"},
		{"unterminated after backslash", "(a 'abc\\", "x.sxp:1: unexpected end of file: string opened at line 1 is not closed"},
		{"bad hex escape", `(a '\xg')`, `x.sxp:1: invalid escape \x: no hex digit follows`},
		{"octal out of range", `(a '\400')`, `x.sxp:1: invalid octal escape \400: larger than \377`},
		{"control character", "(a \x01)", "x.sxp:1: invalid character 0x01"},
		{"end-of-text", "(a 1)\x04(b 2)", "x.sxp:1: invalid character 0x04"},
		{"non-ASCII start", "(a \xc3\xa9)", "x.sxp:1: invalid character 0xc3"},
		{"too deep", strings.Repeat("(", MaxDepth+1) + strings.Repeat(")", MaxDepth+1), "x.sxp:1: lists nested deeper than 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("x.sxp", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", got)
			}
			if err.Error() != tt.want {
				t.Errorf("error %q\nwant  %q", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error is %T, not *Error", err)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	if _, err := Parse("x", make([]byte, MaxSize+1)); err == nil || !strings.Contains(err.Error(), "larger than the limit") {
		t.Errorf("oversized: %v", err)
	}
	deep := strings.Repeat("(a ", MaxDepth) + strings.Repeat(")", MaxDepth)
	if _, err := Parse("x", []byte(deep)); err != nil {
		t.Errorf("depth %d rejected: %v", MaxDepth, err)
	}
	many := "(a" + strings.Repeat(" 1", MaxValues) + ")"
	if _, err := Parse("x", []byte(many)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("too many values: %v", err)
	}
}

// A realistic xend-config.sxp in the shape Xen 3.x and Oracle VM 2.x shipped.
const realistic = `# -*- sh -*-
#
# Xend configuration file.
#

#(xend-http-server no)
(xend-unix-server yes)
(xend-tcp-xmlrpc-server yes)
(xend-unix-xmlrpc-server yes)
(xend-relocation-server yes)
(xend-relocation-ssl-server no)

(xend-unix-path /var/lib/xend/xend-socket)

(xend-tcp-xmlrpc-server-address 'localhost')
(xend-tcp-xmlrpc-server-port 8006)

#(xend-tcp-xmlrpc-server-ssl-key-file  /etc/xen/xmlrpc.key)
(xend-relocation-port 8002)
(xend-relocation-address '')
(xend-relocation-hosts-allow '^localhost$ ^localhost\\.localdomain$ ^.*\\.example\\.org$')

(xen-api-server ((9363 pam '^localhost$ example\\.com$')
                 (unix none)))

(network-script network-bridge)
(vif-script vif-bridge)
(dom0-min-mem 256)
(dom0-cpus 0)
(vncpasswd '')
(vnc-listen '0.0.0.0')
`

func TestRealistic(t *testing.T) {
	entries, err := Parse("/etc/xen/xend-config.sxp", []byte(realistic))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Entry{}
	for _, e := range entries {
		byName[e.Name] = e
	}
	if len(entries) != 18 {
		t.Errorf("got %d entries, want 18", len(entries))
	}
	checks := []struct {
		name, value string
		line        int
	}{
		{"xend-unix-server", "yes", 7},
		{"xend-relocation-port", "8002", 19},
		{"xend-relocation-address", "", 20},
		{"xend-relocation-hosts-allow", `^localhost$ ^localhost\.localdomain$ ^.*\.example\.org$`, 21},
		{"vnc-listen", "0.0.0.0", 31},
	}
	for _, c := range checks {
		e, ok := byName[c.name]
		if !ok {
			t.Errorf("%s missing", c.name)
			continue
		}
		if len(e.Values) != 1 || e.Values[0].Text != c.value || e.Line != c.line {
			t.Errorf("%s = %+v at line %d; want %q at line %d", c.name, e.Values, e.Line, c.value, c.line)
		}
	}
	api := byName["xen-api-server"]
	if len(api.Values) != 1 || api.Values[0].Kind != List || len(api.Values[0].List) != 2 || api.Values[0].List[1].Line != 24 {
		t.Errorf("xen-api-server = %+v", api)
	}
}

func TestValueString(t *testing.T) {
	v := list(1, atom("a", 1), str("it's\n\x01", 1), list(1))
	if got, want := v.String(), `(a 'it\'s\n\x01' ())`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	// What String writes reads back the same.
	entries, err := Parse("x", []byte("(n "+v.String()+")"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(entries[0].Values[0], v) {
		t.Errorf("round trip: %+v", entries[0].Values[0])
	}
	if List.String() != "list" || Kind(9).String() != "Kind(9)" {
		t.Error("Kind.String")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		realistic,
		"(xend-relocation-port 8002}\n",
		`(e "a\tb\n\\\"\'" '\x41\x4a\101\0\12z\x' "\q")`,
		"(a (b (c 'd')) \"e\" # c\n f)",
		"(a 'x\ny')\r\n(b c)",
		"((a) b)", "()", "a", ")", "(a '\\400')", "(a '\\xg')", "(a \x04)",
		"(a b}c d{e [x]!y;z it's)",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Parse("f.sxp", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.sxp") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		lines := strings.Count(string(data), "\n") + 1
		var check func(v Value, depth int)
		check = func(v Value, depth int) {
			if v.Line < 1 || v.Line > lines {
				t.Fatalf("value %s has line %d outside 1..%d", v, v.Line, lines)
			}
			if depth > MaxDepth {
				t.Fatalf("depth %d", depth)
			}
			if v.Kind == List {
				if v.List == nil {
					t.Fatalf("nil list")
				}
				for _, x := range v.List {
					if x.Line < v.Line {
						t.Fatalf("element before its list")
					}
					check(x, depth+1)
				}
			}
		}
		// Rendering every entry and parsing it again gives the same values.
		var b strings.Builder
		for _, e := range entries {
			if e.Line < 1 || e.Line > lines {
				t.Fatalf("entry line %d outside 1..%d", e.Line, lines)
			}
			for _, v := range e.Values {
				check(v, 2)
			}
			b.WriteString(Value{Kind: List, List: append([]Value{{Kind: String, Text: e.Name}}, e.Values...)}.String())
			b.WriteByte('\n')
		}
		again, err := Parse("g.sxp", []byte(b.String()))
		if err != nil {
			t.Fatalf("rendered entries do not parse: %v\n%s", err, b.String())
		}
		if len(again) != len(entries) {
			t.Fatalf("got %d entries back, want %d", len(again), len(entries))
		}
		for i := range entries {
			if again[i].Name != entries[i].Name || !sameValues(again[i].Values, entries[i].Values) {
				t.Fatalf("entry %d changed: %+v -> %+v", i, entries[i], again[i])
			}
		}
	})
}

// sameValues compares values ignoring lines.
func sameValues(a, b []Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Kind != b[i].Kind || a[i].Text != b[i].Text || !sameValues(a[i].List, b[i].List) {
			return false
		}
	}
	return true
}
