package ini

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	type kv struct {
		section, key, value string
		line                int
	}
	tests := []struct {
		name     string
		in       string
		want     []kv
		sections []Section
	}{
		{
			name: "empty",
			in:   "",
		},
		{
			name: "basic",
			in:   "[server]\nport = 8899\nssl=yes\n",
			want: []kv{{"server", "port", "8899", 2}, {"server", "ssl", "yes", 3}},
			sections: []Section{
				{Name: "server", Line: 1},
			},
		},
		{
			name: "global keys, comments and blanks",
			in:   "; head\n# also a comment\n\nfoo = bar\n[a]\n  ; indented comment\n\tx = 1\n",
			want: []kv{{"", "foo", "bar", 4}, {"a", "x", "1", 7}},
			sections: []Section{
				{Name: "", Line: 0},
				{Name: "a", Line: 5},
			},
		},
		{
			name: "inline comments",
			in:   "[s]\na = 1 ; one\nb = 2\t; two\nc = x;y\nd = ; only a comment\ne = p#q # not a comment\nf =;x\n",
			want: []kv{
				{"s", "a", "1", 2}, {"s", "b", "2", 3}, {"s", "c", "x;y", 4},
				{"s", "d", "", 5}, {"s", "e", "p#q # not a comment", 6}, {"s", "f", ";x", 7},
			},
		},
		{
			name: "value keeps inner blanks and later equals signs",
			in:   "[s]\nhosts_allow =  ^a$   ^b=c$  \n",
			want: []kv{{"s", "hosts_allow", "^a$   ^b=c$", 2}},
		},
		{
			name: "case-insensitive names are lower-cased",
			in:   "[Server]\nPort = 1\n",
			want: []kv{{"server", "port", "1", 2}, {"SERVER", "PORT", "1", 2}},
		},
		{
			name: "header with comment, CRLF, no final newline",
			in:   "[a] ; the a section\r\nk = v\r\nl = w",
			want: []kv{{"a", "k", "v", 2}, {"a", "l", "w", 3}},
		},
		{
			name: "byte-order mark",
			in:   "\uFEFF[a]\nk=v\n",
			want: []kv{{"a", "k", "v", 2}},
		},
		{
			name: "empty value",
			in:   "[access]\ndeny=\n",
			want: []kv{{"access", "deny", "", 2}},
		},
		{
			name: "unicode value",
			in:   "[a]\nk = café ✓\n",
			want: []kv{{"a", "k", "café ✓", 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("t.ini", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := string(f.Bytes()); got != tt.in {
				t.Errorf("Bytes() = %q, want the input %q", got, tt.in)
			}
			for _, w := range tt.want {
				v, line, ok := f.Get(w.section, w.key)
				if !ok || v != w.value || line != w.line {
					t.Errorf("Get(%q, %q) = %q, %d, %v; want %q, %d, true", w.section, w.key, v, line, ok, w.value, w.line)
				}
			}
			if tt.sections != nil {
				if got := f.Sections(); !reflect.DeepEqual(got, tt.sections) {
					t.Errorf("Sections() = %v, want %v", got, tt.sections)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // each error line, in order
	}{
		{"colon separator", "[a]\nport: 1\n", []string{`t.ini:2: expected "[section]", "key = value" or a comment, found "port: 1"`}},
		{"bare word", "[a]\nport\n", []string{`t.ini:2: expected "[section]", "key = value" or a comment, found "port"`}},
		{"missing key", "[a]\n = 1\n", []string{"t.ini:2: missing key name before '='"}},
		{"bad key", "[a]\nmy key = 1\n", []string{`t.ini:2: invalid key name "my key" (use letters, digits, '_', '-', '.')`}},
		{"unclosed header", "[a\n", []string{"t.ini:1: section header without closing ']'"}},
		{"bad section name", "[a b]\n", []string{`t.ini:1: invalid section name "a b" (use letters, digits, '_', '-', '.')`}},
		{"empty section name", "[]\n", []string{`t.ini:1: invalid section name "" (use letters, digits, '_', '-', '.')`}},
		{"junk after header", "[a] x\n", []string{`t.ini:1: unexpected "x" after section header`}},
		{"duplicate key", "[a]\nk = 1\n\nK = 2\n", []string{`t.ini:4: duplicate key "k" in [a] (first set at line 2)`}},
		{"duplicate global key", "k=1\nk=2\n", []string{`t.ini:2: duplicate key "k" in the keys before the first section (first set at line 1)`}},
		{"duplicate section", "[a]\nk=1\n[b]\n[A]\nk=2\n", []string{
			"t.ini:4: section [a] already declared at line 1",
			`t.ini:5: duplicate key "k" in [a] (first set at line 2)`,
		}},
		{"control character", "[a]\nk = a\x00b\n", []string{"t.ini:2: control character U+0000"}},
		{"lone carriage return", "[a]\nk = a\rb\n", []string{"t.ini:2: control character U+000D"}},
		{"invalid utf-8", "[a]\nk = \xff\n", []string{"t.ini:2: invalid UTF-8"}},
		{"inner BOM", "[a]\nk = \uFEFF\n", []string{"t.ini:2: byte-order mark inside the file"}},
		{"several errors", "[a]\nx\ny\n[b c]\n", []string{
			`t.ini:2: expected "[section]", "key = value" or a comment, found "x"`,
			`t.ini:3: expected "[section]", "key = value" or a comment, found "y"`,
			`t.ini:4: invalid section name "b c" (use letters, digits, '_', '-', '.')`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("t.ini", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded (%q), want errors", f.Bytes())
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error %T does not contain an *Error", err)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	if _, err := Parse("big.ini", make([]byte, MaxSize+1)); err == nil || !strings.Contains(err.Error(), "larger than the limit") {
		t.Errorf("oversized input: err = %v", err)
	}
	junk := strings.Repeat("junk\n", 100)
	_, err := Parse("j.ini", []byte(junk))
	if err == nil {
		t.Fatal("junk parsed")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxErrors+1 || !strings.HasSuffix(lines[len(lines)-1], "too many errors; stopped here") {
		t.Errorf("got %d error lines, last %q", len(lines), lines[len(lines)-1])
	}
}

func TestKeys(t *testing.T) {
	f, err := Parse("t.ini", []byte("g=0\n[a]\nx = 1\n; c\ny = 2\n[b]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Key{{Name: "x", Value: "1", Line: 3}, {Name: "y", Value: "2", Line: 5}}
	if got := f.Keys("A"); !reflect.DeepEqual(got, want) {
		t.Errorf("Keys(a) = %v, want %v", got, want)
	}
	if got := f.Keys("b"); len(got) != 0 {
		t.Errorf("Keys(b) = %v, want none", got)
	}
	if got := f.Keys("missing"); got != nil {
		t.Errorf("Keys(missing) = %v, want nil", got)
	}
	if got := f.Keys(""); !reflect.DeepEqual(got, []Key{{Name: "g", Value: "0", Line: 1}}) {
		t.Errorf("Keys(\"\") = %v", got)
	}
	if _, _, ok := f.Get("a", "z"); ok {
		t.Error("Get of a missing key succeeded")
	}
	if _, _, ok := f.Get("nope", "x"); ok {
		t.Error("Get in a missing section succeeded")
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		name                string
		in                  string
		section, key, value string
		want                string
		wantLine            int
	}{
		{"replace keeps layout", "[s]\n  port   =   8899   ; api\n", "s", "port", "9000", "[s]\n  port   =   9000   ; api\n", 2},
		{"replace no spaces", "[s]\nport=8899\n", "S", "PORT", "1", "[s]\nport=1\n", 2},
		{"fill empty value", "[access]\ndeny=\n", "access", "deny", "10.1.1.*", "[access]\ndeny=10.1.1.*\n", 2},
		{"fill empty value spaced like the equals sign", "[access]\ndeny =\n", "access", "deny", "*", "[access]\ndeny = *\n", 2},
		{"fill empty value before comment", "[access]\ndeny = ; nobody\n", "access", "deny", "*", "[access]\ndeny = * ; nobody\n", 2},
		{"empty a value", "[access]\ndeny = 1.2.3.4 ; c\n", "access", "deny", "", "[access]\ndeny =  ; c\n", 2},
		{"value with semicolon not after blank", "[s]\nk = v\n", "s", "k", "a;b", "[s]\nk = a;b\n", 2},
		{"append after last key", "[a]\nx = 1\n\n; about b\n[b]\ny = 2\n", "a", "z", "3", "[a]\nx = 1\nz = 3\n\n; about b\n[b]\ny = 2\n", 3},
		{"append to empty section", "[a]\n; nothing yet\n[b]\n", "a", "k", "v", "[a]\nk = v\n; nothing yet\n[b]\n", 2},
		{"append at end without newline", "[a]\nx = 1", "a", "y", "2", "[a]\nx = 1\ny = 2", 3},
		{"new section", "[a]\nx = 1\n", "b", "y", "2", "[a]\nx = 1\n\n[b]\ny = 2\n", 5},
		{"new section after blank", "[a]\nx = 1\n\n", "b", "y", "2", "[a]\nx = 1\n\n[b]\ny = 2\n", 5},
		{"new section no final newline", "[a]", "b", "y", "2", "[a]\n\n[b]\ny = 2\n", 4},
		{"new section in empty file", "", "b", "y", "2", "[b]\ny = 2\n", 2},
		{"global key goes first", "; c\n[a]\n", "", "g", "1", "g = 1\n; c\n[a]\n", 1},
		{"global key after other globals", "f = 0\n[a]\n", "", "g", "1", "f = 0\ng = 1\n[a]\n", 2},
		{"CRLF kept", "[a]\r\nx = 1\r\n", "a", "y", "2", "[a]\r\nx = 1\r\ny = 2\r\n", 3},
		{"BOM kept", "\uFEFF[a]\nx = 1\n", "", "g", "0", "\uFEFFg = 0\n[a]\nx = 1\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("t.ini", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Set(tt.section, tt.key, tt.value); err != nil {
				t.Fatalf("Set: %v", err)
			}
			if got := string(f.Bytes()); got != tt.want {
				t.Errorf("Bytes() =\n%q\nwant\n%q", got, tt.want)
			}
			v, line, ok := f.Get(tt.section, tt.key)
			if !ok || v != tt.value || line != tt.wantLine {
				t.Errorf("Get = %q, %d, %v; want %q, %d", v, line, ok, tt.value, tt.wantLine)
			}
			g, err := Parse("t.ini", f.Bytes())
			if err != nil {
				t.Fatalf("re-parse: %v", err)
			}
			if !reflect.DeepEqual(g.Sections(), f.Sections()) {
				t.Errorf("re-parse sections differ")
			}
		})
	}
}

func TestSetRejects(t *testing.T) {
	const in = "[a]\nk = v ; keep\n"
	tests := []struct {
		name, section, key, value, want string
	}{
		{"newline", "a", "k", "x\ny", "line break"},
		{"carriage return", "a", "k", "x\ry", "line break"},
		{"control", "a", "k", "x\x01", "control character"},
		{"comment inside", "a", "k", "x ;y", "would read back as"},
		{"leading blank", "a", "k", " x", "would read back as"},
		{"trailing blank", "a", "k", "x\t", "would read back as"},
		{"leading semicolon in new key", "a", "n", ";x", ""},
		{"bad key", "a", "my key", "x", "invalid key name"},
		{"bad section", "a b", "k", "x", "invalid section name"},
		{"empty key", "a", "", "x", "invalid key name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("t.ini", []byte(in))
			if err != nil {
				t.Fatal(err)
			}
			err = f.Set(tt.section, tt.key, tt.value)
			if tt.want == "" {
				// Allowed as long as it reads back.
				if err == nil {
					if v, _, _ := f.Get(tt.section, tt.key); v != tt.value {
						t.Errorf("Set succeeded but Get = %q", v)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Set err = %v, want it to mention %q", err, tt.want)
			}
			if got := string(f.Bytes()); got != in {
				t.Errorf("failed Set changed the document to %q", got)
			}
		})
	}
}

func TestSetSequence(t *testing.T) {
	f, err := Parse("t.ini", []byte("; agent\n[server]\nport = 8899 ; api\n"))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct{ s, k, v string }{
		{"server", "port", "9000"},
		{"server", "ssl", "no"},
		{"access", "allow", "10.0.0.0/8"},
		{"access", "deny", ""},
		{"server", "port", "9001"},
	}
	for _, st := range steps {
		if err := f.Set(st.s, st.k, st.v); err != nil {
			t.Fatal(err)
		}
	}
	want := "; agent\n[server]\nport = 9001 ; api\nssl = no\n\n[access]\nallow = 10.0.0.0/8\ndeny = \n"
	if got := string(f.Bytes()); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"[server]\nport = 8899\nssl=yes\n",
		"; c\n# c\n\ng = 1\n[a] ; x\n  k = v ; comment\nl = a;b\nm = ; only\n",
		"[a]\r\nk = v\r\nl = w",
		"\uFEFF[a]\nk=v\n",
		"[a]\nk = 1\nk = 2\n",
		"[a]\n[a]\n",
		"[a\nx\n= 1\n",
		"k = \xff\x00\r\n",
		"[a]\nk = v\r",
	} {
		f.Add([]byte(s), "a", "k", "v")
	}
	f.Add([]byte("[a]\nk = v ; c\n"), "a", "k", "")
	f.Add([]byte("[a]\nk = v ; c\n"), "b", "new", "x ;y")
	f.Add([]byte("x = 1"), "", "y", "2")
	f.Fuzz(func(t *testing.T, data []byte, section, key, value string) {
		doc, err := Parse("f.ini", data)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.ini:") {
					t.Fatalf("error line %q does not name the file", line)
				}
			}
			return
		}
		if !bytes.Equal(doc.Bytes(), data) {
			t.Fatalf("Bytes() = %q, want input %q", doc.Bytes(), data)
		}
		again, err := Parse("f.ini", doc.Bytes())
		if err != nil {
			t.Fatalf("re-parse of Bytes(): %v", err)
		}
		if !reflect.DeepEqual(again.Sections(), doc.Sections()) {
			t.Fatalf("sections differ after round trip")
		}
		for _, s := range doc.Sections() {
			if !reflect.DeepEqual(again.Keys(s.Name), doc.Keys(s.Name)) {
				t.Fatalf("keys of [%s] differ after round trip", s.Name)
			}
		}
		before := map[string][]Key{}
		for _, s := range doc.Sections() {
			before[s.Name] = doc.Keys(s.Name)
		}
		old := doc.Bytes()
		if err := doc.Set(section, key, value); err != nil {
			if !bytes.Equal(doc.Bytes(), old) {
				t.Fatalf("failed Set changed the document")
			}
			return
		}
		v, _, ok := doc.Get(section, key)
		if !ok || v != value {
			t.Fatalf("after Set(%q, %q, %q), Get = %q, %v", section, key, value, v, ok)
		}
		re, err := Parse("f.ini", doc.Bytes())
		if err != nil {
			t.Fatalf("document after Set does not parse: %v\n%q", err, doc.Bytes())
		}
		if v, _, _ := re.Get(section, key); v != value {
			t.Fatalf("re-parsed value %q, want %q", v, value)
		}
		// Every other key keeps its value.
		for sec, keys := range before {
			for _, k := range keys {
				if sec == strings.ToLower(section) && k.Name == strings.ToLower(key) {
					continue
				}
				if v, _, ok := re.Get(sec, k.Name); !ok || v != k.Value {
					t.Fatalf("[%s] %s changed from %q to %q", sec, k.Name, k.Value, v)
				}
			}
		}
	})
}
