package vmcfg

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// parseExtra parses src (a complete file apart from the name) and returns
// the Others value of key x.
func parseExtra(t *testing.T, src string) (Value, error) {
	t.Helper()
	c, err := Parse("vm.cfg", []byte("name = 'd'\n"+src))
	if err != nil {
		return Value{}, err
	}
	ev, ok := c.Others["x"]
	if !ok {
		t.Fatalf("no x in Others for %q", src)
	}
	return ev.Value, nil
}

func TestLiterals(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want Value
	}{
		{"single quotes", `x = 'a b'`, String("a b")},
		{"double quotes", `x = "a b"`, String("a b")},
		{"empty string", `x = ''`, String("")},
		{"escaped quote", `x = 'it\'s'`, String("it's")},
		{"other quote inside", `x = "it's"`, String("it's")},
		{"simple escapes", `x = "\\ \n \t \r \a \b \f \v \" \'"`, String("\\ \n \t \r \a \b \f \v \" '")},
		{"hex and octal escapes", `x = '\x41\101\0\x00\377'`, String("AA\x00\x00\xff")},
		{"unicode escapes", `x = '\u00e9\U0001F600'`, String("é😀")},
		{"unknown escape keeps backslash", `x = 'C:\dir\q'`, String(`C:\dir\q`)},
		{"raw string", `x = r'\n\d'`, String(`\n\d`)},
		{"raw string escaped quote", `x = R"a\"b"`, String(`a\"b`)},
		{"u prefix", `x = u'text'`, String("text")},
		{"utf-8 kept", `x = 'héllo'`, String("héllo")},
		{"triple single", "x = '''a\nb'c'''", String("a\nb'c")},
		{"triple double", `x = """say "hi" now"""`, String(`say "hi" now`)},
		{"backslash newline in string", "x = 'abc\\\ndef'", String("abcdef")},
		{"adjacent strings concatenate", `x = 'a' "b" '''c'''`, String("abc")},
		{"adjacent strings over lines", "x = ('a'\n     'b')", String("ab")},
		{"int", `x = 42`, Int(42)},
		{"negative int", `x = -42`, Int(-42)},
		{"plus int", `x = +7`, Int(7)},
		{"double minus", `x = --5`, Int(5)},
		{"hex", `x = 0x1F`, Int(31)},
		{"hex upper prefix", `x = 0XfF`, Int(255)},
		{"octal", `x = 0o17`, Int(15)},
		{"binary", `x = 0b101`, Int(5)},
		{"underscores", `x = 1_000_000`, Int(1000000)},
		{"hex underscore after prefix", `x = 0x_ff`, Int(255)},
		{"zero", `x = 0`, Int(0)},
		{"zeros", `x = 000`, Int(0)},
		{"max int", `x = 9223372036854775807`, Int(9223372036854775807)},
		{"min int", `x = -9223372036854775808`, Int(-9223372036854775808)},
		{"float", `x = 1.5`, Float(1.5)},
		{"float leading dot", `x = .5`, Float(0.5)},
		{"float trailing dot", `x = 1.`, Float(1)},
		{"float exponent", `x = 1e3`, Float(1000)},
		{"float negative exponent", `x = -2.5E-3`, Float(-0.0025)},
		{"float leading zero", `x = 01.5`, Float(1.5)},
		{"float underscores", `x = 1_0.5`, Float(10.5)},
		{"True", `x = True`, Bool(true)},
		{"False", `x = False`, Bool(false)},
		{"None", `x = None`, None()},
		{"empty list", `x = []`, List()},
		{"list trailing comma", `x = [1,]`, List(Int(1))},
		{"nested", `x = [1, [2, (3,)], ()]`, List(Int(1), List(Int(2), Tuple(Int(3))), Tuple())},
		{"empty tuple", `x = ()`, Tuple()},
		{"one tuple", `x = (1,)`, Tuple(Int(1))},
		{"parenthesised value", `x = (1)`, Int(1)},
		{"double parentheses", `x = ((1, 2))`, Tuple(Int(1), Int(2))},
		{"tuple", `x = ('a', 2, None)`, Tuple(String("a"), Int(2), None())},
		{"bare tuple", `x = 1, 2`, Tuple(Int(1), Int(2))},
		{"bare one tuple", `x = 'a',`, Tuple(String("a"))},
		{"dict", `x = {'a': 1, 2: [3], 'b': {},}`, Value{Kind: KindDict, Dict: []DictEntry{
			{String("a"), Int(1)}, {Int(2), List(Int(3))}, {String("b"), Value{Kind: KindDict}},
		}}},
		{"list over lines with comments", "x = [ 'a', # first\n  # a comment line\n  'b' # second\n  ,\n]", List(String("a"), String("b"))},
		{"backslash continuation", "x = \\\n  5", Int(5)},
		{"backslash continuation in list", "x = [1, \\\n 2]", List(Int(1), Int(2))},
		{"comment after value", "x = 5 # five", Int(5)},
		{"semicolons", "y = 1; x = 2;", Int(2)},
		{"leading blanks", "   x = 3", Int(3)},
		{"tabs", "x\t=\t3\t", Int(3)},
		{"crlf", "x = [1,\r\n 2]\r\n", List(Int(1), Int(2))},
		{"form feed", "\fx = 1", Int(1)},
		{"comment at end of file without newline", "x = 1\n# end", Int(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseExtra(t, tt.src)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.src, err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("Parse(%q) = %s (%s), want %s (%s)", tt.src, got, got.Kind, tt.want, tt.want.Kind)
			}
			// The canonical form reads back to the same value.
			back, err := parseExtra(t, "x = "+got.String())
			if err != nil || !back.Equal(got) {
				t.Errorf("re-parse of %s = %s, %v", got, back, err)
			}
		})
	}
}

func TestByteOrderMark(t *testing.T) {
	c, err := Parse("vm.cfg", []byte("\xef\xbb\xbfname = 'd'\n"))
	if err != nil || c.Name != "d" {
		t.Fatalf("Parse with BOM: %v, %+v", err, c)
	}
}

func TestValueLines(t *testing.T) {
	c, err := Parse("vm.cfg", []byte("name = 'd'\n\nx = [\n  1,\n  # c\n  [2],\n]\n"))
	if err != nil {
		t.Fatal(err)
	}
	ev := c.Others["x"]
	if ev.Line != 3 || ev.Value.Line != 3 || ev.Value.Items[0].Line != 4 || ev.Value.Items[1].Line != 6 {
		t.Errorf("lines: key %d, list %d, items %d %d", ev.Line, ev.Value.Line, ev.Value.Items[0].Line, ev.Value.Items[1].Line)
	}
	if ev.Raw != "[\n  1,\n  # c\n  [2],\n]" {
		t.Errorf("Raw = %q", ev.Raw)
	}
}

// TestSyntaxErrors checks every syntax error: the whole message, with the
// file and line.
func TestSyntaxErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string // after a first line "name = 'd'"
		want string
	}{
		{"unterminated string", "x = 'abc", `vm.cfg:2: string is not closed before the end of the line (use a backslash or triple quotes to continue it)`},
		{"unterminated triple", "x = '''abc\n\n", `vm.cfg:2: string starting here is never closed`},
		{"unclosed list", "x = [1, 2\ny = 3\n", `vm.cfg:2: '[' is never closed`},
		{"missing comma", "x = [1 2]", `vm.cfg:2: x: expected ',' or ']' (closing the '[' on line 2), found number 2`},
		{"missing comma in tuple", "x = (1 2)", `vm.cfg:2: x: expected ',' or ')' (closing the '(' on line 2), found number 2`},
		{"missing comma in dict", "x = {'a': 1 'b': 2}", `vm.cfg:2: x: expected ',' or '}' (closing the '{' on line 2), found string "b"`},
		{"wrong closer", "x = [1)", `vm.cfg:2: x: expected ',' or ']' (closing the '[' on line 2), found ')'`},
		{"import", "import os", `vm.cfg:2: "import" statements are not supported: vm.cfg is read as data (key = value lines), not run as Python`},
		{"if", "if x:\n  y = 1", `vm.cfg:2: "if" statements are not supported: vm.cfg is read as data (key = value lines), not run as Python`},
		{"name reference", "x = arch_libdir", `vm.cfg:2: x: name references such as arch_libdir are not supported: vm.cfg is read as data, so write the value itself`},
		{"expression", "x = '/usr/' + 'lib'", `vm.cfg:2: x: expressions are not supported (found '+'): vm.cfg values must be literals`},
		{"attribute", "x = 5 .real", `vm.cfg:2: x: expressions are not supported (found '.'): vm.cfg values must be literals`},
		{"call", "x = 'a' ('b')", `vm.cfg:2: x: function calls are not supported: vm.cfg values must be literals`},
		{"subscript", "x = [1][0]", `vm.cfg:2: x: unexpected '[' after the value`},
		{"leading zero", "x = 0755", `vm.cfg:2: x: invalid number "0755": a leading zero is ambiguous (octal in Python 2, an error in Python 3); write 0o755 for octal or drop the zeros`},
		{"long suffix", "x = 10L", `vm.cfg:2: x: long integer suffix in "10L" is not supported; drop the L`},
		{"complex", "x = 3j", `vm.cfg:2: x: complex number "3j" is not supported`},
		{"int too large", "x = 9223372036854775808", `vm.cfg:2: x: integer "9223372036854775808" is too large`},
		{"int too small", "x = -9223372036854775809", `vm.cfg:2: x: integer -9223372036854775809 is too small`},
		{"float too large", "x = 1e999", `vm.cfg:2: x: float "1e999" is out of range`},
		{"double underscore", "x = 1__0", `vm.cfg:2: x: invalid number "1__0": underscores must sit between digits`},
		{"trailing underscore", "x = 10_", `vm.cfg:2: x: invalid number "10_": underscores must sit between digits`},
		{"underscore in exponent", "x = 1e_5", `vm.cfg:2: x: invalid number "1e_5": underscores must sit between digits`},
		{"bare hex prefix", "x = 0x", `vm.cfg:2: x: invalid number "0x"`},
		{"bad binary", "x = 0b102", `vm.cfg:2: x: invalid number "0b102"`},
		{"glued letters", "x = 12abc", `vm.cfg:2: x: invalid number "12abc"`},
		{"two dots", "x = 1.2.3", `vm.cfg:2: x: invalid number "1.2.3"`},
		{"bytes prefix", "x = b'abc'", `vm.cfg:2: string prefix "b" is not supported (only r and u are)`},
		{"f-string", "x = f'{y}'", `vm.cfg:2: string prefix "f" is not supported (only r and u are)`},
		{"short hex escape", `x = '\x4'`, `vm.cfg:2: \x must be followed by exactly two hex digits`},
		{"big octal escape", `x = '\777'`, `vm.cfg:2: octal escape \777 is larger than \377`},
		{"short unicode escape", `x = '\u12'`, `vm.cfg:2: \u must be followed by exactly 4 hex digits`},
		{"surrogate escape", `x = '\ud800'`, `vm.cfg:2: \ud800 is not a Unicode character`},
		{"out of range escape", `x = '\U00110000'`, `vm.cfg:2: \U00110000 is not a Unicode character`},
		{"named escape", `x = '\N{DASH}'`, `vm.cfg:2: \N{...} escapes are not supported; write the character or a \u escape`},
		{"NUL in string", "x = 'a\x00b'", `vm.cfg:2: NUL byte inside a string (write \x00)`},
		{"comparison", "x == 1", `vm.cfg:2: x: expected a value, found '='`},
		{"augmented", "x += 1", `vm.cfg:2: x: only plain assignment (x = value) is supported, found '+'`},
		{"chained", "x = y = 1", `vm.cfg:2: x: name references such as y are not supported: vm.cfg is read as data, so write the value itself`},
		{"chained literal", "x = 1 = 2", `vm.cfg:2: x: chained assignment is not supported`},
		{"no key", "= 5", `vm.cfg:2: expected an option name at the start of a statement, found '='`},
		{"string statement", "'doc'", `vm.cfg:2: expected an option name at the start of a statement, found string "doc"`},
		{"key without value", "x\n", `vm.cfg:2: x: expected '=' after the option name, found end of line`},
		{"key at end of file", "x", `vm.cfg:2: x: expected '=' after the option name, found end of file`},
		{"unterminated string on its line", "x = 'abc\ny = 1", `vm.cfg:2: string is not closed before the end of the line (use a backslash or triple quotes to continue it)`},
		{"key with space value", "vnclisten '0.0.0.0'", `vm.cfg:2: vnclisten: expected '=' after the option name, found string "0.0.0.0"`},
		{"missing value", "x =", `vm.cfg:2: x: missing value after '='`},
		{"missing value semicolon", "x = ;", `vm.cfg:2: x: missing value after '='`},
		{"missing list item", "x = [1, , 2]", `vm.cfg:2: x: expected a value, found ','`},
		{"duplicate dict key", "x = {1: 2, 1: 3}", `vm.cfg:2: x: dict key 1 appears twice`},
		{"list dict key", "x = {[1]: 2}", `vm.cfg:2: x: dict keys must be strings or integers, found list [1]`},
		{"missing colon", "x = {'a' 1}", `vm.cfg:2: x: expected ':' after dict key 'a', found number 1`},
		{"minus string", "x = -'a'", `vm.cfg:2: x: '-' must be followed by a number, found string "a"`},
		{"too deep", "x = " + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), `vm.cfg:2: x: values are nested more than 32 levels deep`},
		{"stray backslash", "x = 1 \\ 2", `vm.cfg:2: a backslash outside a string must be the last character of the line`},
		{"non-ascii outside string", "x = é", `vm.cfg:2: unexpected byte 0xc3 outside a string`},
		{"control character", "x = \x01", `vm.cfg:2: unexpected byte 0x01 outside a string`},
		{"unexpected closer", "x = 'a' ]", `vm.cfg:2: x: unexpected ']' after the value`},
		{"keyword as key", "None = 1", `vm.cfg:2: "None" statements are not supported: vm.cfg is read as data (key = value lines), not run as Python`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("vm.cfg", []byte("name = 'd'\n"+tt.src))
			if err == nil {
				t.Fatalf("Parse(%q) succeeded", tt.src)
			}
			var l ErrorList
			if !errors.As(err, &l) || len(l) == 0 {
				t.Fatalf("Parse(%q) error %T %v is not an ErrorList", tt.src, err, err)
			}
			if got := l[0].Error(); got != tt.want {
				t.Errorf("Parse(%q) first error\n got: %s\nwant: %s\n all: %v", tt.src, got, tt.want, err)
			}
		})
	}
}

// TestAllErrorsCollected: every bad statement is reported, in line order,
// and parsing goes on after each.
func TestAllErrorsCollected(t *testing.T) {
	src := "name = 'd'\n" + // 1
		"a = [1 2]\n" + // 2
		"memory = 'lots'\n" + // 3
		"import os\n" + // 4
		"b = 'ok'\n" + // 5
		"vcpus = 1.5\n" + // 6
		"c = [\n" + // 7
		"   'x',\n" + // 8
		"   y,\n" + // 9
		"]\n" + // 10
		"on_crash = 'explode'\n" + // 11
		"memory_backing = 'huge'\n" // 12
	_, err := Parse("vm.cfg", []byte(src))
	want := []string{
		`vm.cfg:2: a: expected ',' or ']' (closing the '[' on line 2), found number 2`,
		`vm.cfg:3: memory: "lots" is not an integer number of MiB`,
		`vm.cfg:4: "import" statements are not supported: vm.cfg is read as data (key = value lines), not run as Python`,
		`vm.cfg:6: vcpus: 1.5 is not an integer number of virtual CPUs`,
		`vm.cfg:9: c: name references such as y are not supported: vm.cfg is read as data, so write the value itself`,
		`vm.cfg:11: on_crash: "explode" is not one of destroy, restart, preserve, rename-restart, coredump-destroy, coredump-restart`,
		`vm.cfg:12: memory_backing: "huge" is not one of auto, 4k, hugetlb, thp`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("errors\n got: %v\nwant: %s", err, strings.Join(want, "\n"))
	}
}

func TestTooManyErrors(t *testing.T) {
	src := "name = 'd'\n" + strings.Repeat("x = y\n", MaxErrors+20)
	_, err := Parse("vm.cfg", []byte(src))
	var l ErrorList
	if !errors.As(err, &l) {
		t.Fatalf("error %v", err)
	}
	if len(l) != MaxErrors+1 || !strings.Contains(l[MaxErrors].Error(), "too many errors") {
		t.Errorf("got %d errors, last %v", len(l), l[len(l)-1])
	}
}

func TestFileTooLarge(t *testing.T) {
	data := []byte("name = 'd'\n" + strings.Repeat("#", MaxFileSize))
	_, err := Parse("big.cfg", data)
	if err == nil || err.Error() != "big.cfg: file is larger than 1048576 bytes" {
		t.Errorf("error %v", err)
	}
}

// Large inputs near MaxFileSize parse in linear time: a big dict, a long
// list, many unknown keys, unclosed brackets. (A quadratic path makes this
// test take minutes rather than milliseconds.)
func TestLargeInputs(t *testing.T) {
	var dict, list, keys strings.Builder
	dict.WriteString("name = 'd'\nx = {")
	list.WriteString("name = 'd'\nx = [")
	keys.WriteString("name = 'd'\n")
	for i := 0; dict.Len() < MaxFileSize-64; i++ {
		dict.WriteString(strconv.Itoa(i) + ":1,")
	}
	for list.Len() < MaxFileSize-64 {
		list.WriteString("'abc',")
	}
	for i := 0; keys.Len() < MaxFileSize-64; i++ {
		keys.WriteString("unknown_option_" + strconv.Itoa(i) + " = 1\n")
	}
	dict.WriteString("}\n")
	list.WriteString("]\n")
	for _, src := range []string{dict.String(), list.String(), keys.String()} {
		c, err := Parse("vm.cfg", []byte(src))
		if err != nil {
			t.Fatalf("large input: %v", err)
		}
		if len(c.Warnings) > MaxErrors {
			t.Errorf("%d warnings", len(c.Warnings))
		}
	}
	deep := "name = 'd'\nx = " + strings.Repeat("[", MaxFileSize-32)
	if _, err := Parse("vm.cfg", []byte(deep)); err == nil {
		t.Error("unclosed brackets accepted")
	}
	// A huge value in an error message is cut short.
	_, err := Parse("vm.cfg", []byte(strings.Replace(list.String(), "x = [", "memory = [", 1)))
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("error message of %d bytes", len(err.Error()))
	}
}
