package xmlrpc

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// declared returns a server with one declared method, vm.console(name
// string[, offset int[, max int]]), whose Run records what it read, and a
// legacy alias of it whose faults become code 2.
func declared(t *testing.T) (*Server, *[]string) {
	t.Helper()
	var ran []string
	s := NewServer()
	err := s.Define(Def{
		Name: "vm.console", Help: "Reads a console.", Result: Struct,
		Params: []Param{Req("name", String), Opt("offset", Int), Opt("max", Int)},
		Aliases: []Alias{{Name: "old.console", Note: " (the old name)", Faults: func(f *Fault) *Fault {
			return &Fault{Code: XendGeneric, Message: f.Message}
		}}},
		Run: func(_ context.Context, a Args) (any, error) {
			ran = append(ran, fmt.Sprintf("%s %d %d %v", a.String(0), a.IntOr(1, -1), a.IntOr(2, 64), a.Has(1)))
			return map[string]any{"ok": true}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, &ran
}

func TestDeclaredCheckBeforeRun(t *testing.T) {
	s, ran := declared(t)
	usage := "; usage: vm.console(name string[, offset int[, max int]])"
	for _, tc := range []struct {
		params Params
		msg    string
	}{
		{Params{}, "vm.console: expected 1 to 3 parameters, got 0" + usage},
		{Params{"a", int64(1), int64(2), int64(3)}, "vm.console: expected 1 to 3 parameters, got 4" + usage},
		{Params{int64(7)}, "vm.console: parameter 1 must be a string, got int" + usage},
		{Params{nil}, "vm.console: parameter 1 must be a string, got nil" + usage},
		{Params{"a", "0"}, "vm.console: parameter 2 must be an int, got string" + usage},
		{Params{"a", nil, 1.5}, "vm.console: parameter 3 must be an int, got double" + usage},
	} {
		_, err := s.Call(context.Background(), "vm.console", tc.params)
		if f := AsFault(err); f == nil || f.Code != BadParams || f.Message != tc.msg {
			t.Errorf("vm.console%v = %v\nwant BadParams %q", tc.params, f, tc.msg)
		}
	}
	if len(*ran) != 0 {
		t.Fatalf("Run was called for wrong calls: %q", *ran)
	}
	// Optional parameters: left out or nil read as absent.
	for _, p := range []Params{{"a"}, {"a", nil}, {"a", int64(5)}, {"a", nil, int64(9)}, {"a", int64(5), int64(9)}} {
		if _, err := s.Call(context.Background(), "vm.console", p); err != nil {
			t.Errorf("vm.console%v: %v", p, err)
		}
	}
	want := []string{"a -1 64 false", "a -1 64 false", "a 5 64 true", "a -1 9 false", "a 5 9 true"}
	if fmt.Sprint(*ran) != fmt.Sprint(want) {
		t.Errorf("Run read %q, want %q", *ran, want)
	}
}

func TestAliasSharesDeclaration(t *testing.T) {
	s, ran := declared(t)
	ctx := context.Background()
	if _, err := s.Call(ctx, "old.console", Params{"b", int64(3)}); err != nil || fmt.Sprint(*ran) != "[b 3 64 true]" {
		t.Fatalf("old.console: %v, ran %q", err, *ran)
	}
	// The same check, under the alias's name, with the alias's fault code.
	_, err := s.Call(ctx, "old.console", Params{true})
	want := "old.console: parameter 1 must be a string, got boolean; usage: old.console(name string[, offset int[, max int]])"
	if f := AsFault(err); f == nil || f.Code != XendGeneric || f.Message != want {
		t.Errorf("old.console(true) = %v, want code 2 %q", f, want)
	}
	help, _ := s.Call(ctx, "system.methodHelp", Params{"old.console"})
	if help != "Alias of vm.console (the old name). Reads a console." {
		t.Errorf("alias help %q", help)
	}
	for _, name := range []string{"vm.console", "old.console"} {
		sigs, err := s.Call(ctx, "system.methodSignature", Params{name})
		if err != nil || fmt.Sprint(sigs) != "[[struct string] [struct string int] [struct string int int]]" {
			t.Errorf("methodSignature(%s) = %v, %v", name, sigs, err)
		}
	}
}

func TestDeclaredSignatureVariants(t *testing.T) {
	s := NewServer()
	run := func(context.Context, Args) (any, error) { return true, nil }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Define(Def{Name: "x.ping", Result: Boolean, Run: run}))
	must(s.Define(Def{Name: "x.echo", Result: Array, Variadic: true, Run: func(_ context.Context, a Args) (any, error) { return a.All(), nil }}))
	must(s.Define(Def{Name: "x.names", Result: Array, Run: run,
		Params: []Param{{Name: "detail", Type: Int, Or: []Type{Boolean}, Optional: true}}}))
	must(s.Define(Def{Name: "x.rate", Result: Double, Params: []Param{Req("r", Double)}, Run: func(_ context.Context, a Args) (any, error) { return a.Float(0), nil }}))
	ctx := context.Background()
	for name, want := range map[string]string{
		"x.ping": "[[boolean]]", "x.echo": "[[array]]", "x.names": "[[array] [array int] [array boolean]]", "x.rate": "[[double double]]",
	} {
		if sigs, err := s.Call(ctx, "system.methodSignature", Params{name}); err != nil || fmt.Sprint(sigs) != want {
			t.Errorf("methodSignature(%s) = %v, %v; want %s", name, sigs, err, want)
		}
	}
	for _, tc := range []struct {
		name   string
		params Params
		fault  string // "" for success
	}{
		{"x.ping", Params{"x"}, "x.ping: expected no parameters, got 1"},
		{"x.echo", Params{"x", int64(1), nil}, ""},
		{"x.names", Params{int64(1)}, ""},
		{"x.names", Params{true}, ""},
		{"x.names", Params{"yes"}, "x.names: parameter 1 must be an int or a boolean, got string; usage: x.names([detail int|boolean])"},
		{"x.rate", Params{int64(2)}, ""},
	} {
		_, err := s.Call(ctx, tc.name, tc.params)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.fault {
			t.Errorf("%s%v = %q, want %q", tc.name, tc.params, got, tc.fault)
		}
	}
	if res, _ := s.Call(ctx, "x.rate", Params{int64(2)}); res != 2.0 {
		t.Errorf("x.rate(2) read %v, want 2.0", res)
	}
}

// A method reading a parameter against its own declaration gets an
// Internal fault that names it, not a wrong value.
func TestArgsMisreadIsInternal(t *testing.T) {
	s := NewServer()
	if err := s.Define(Def{Name: "x.bad", Result: Int, Params: []Param{Req("n", String)},
		Run: func(_ context.Context, a Args) (any, error) { return a.Int(0), nil }}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Call(context.Background(), "x.bad", Params{"7"})
	if f := AsFault(err); f == nil || f.Code != Internal || !strings.Contains(f.Message, "x.bad reads parameter 1 (n) as int, but declares it a string") {
		t.Errorf("misread: %v", f)
	}
}

func TestDefineRefuses(t *testing.T) {
	run := func(context.Context, Args) (any, error) { return nil, nil }
	s := NewServer()
	if err := s.Define(Def{Name: "a.b", Result: Nil, Run: run}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		d    Def
		want string
	}{
		{Def{Name: "", Result: Nil, Run: run}, "method name is empty"},
		{Def{Name: "a b", Result: Nil, Run: run}, `method name "a b" contains " "`},
		{Def{Name: strings.Repeat("a", 257), Result: Nil, Run: run}, "longer than 256"},
		{Def{Name: "system.x", Result: Nil, Run: run}, "reserved"},
		{Def{Name: "x.y", Result: Nil}, "nil Run"},
		{Def{Name: "x.y", Result: "float", Run: run}, `result: unknown XML-RPC type "float"`},
		{Def{Name: "x.y", Result: Nil, Run: run, Params: []Param{Req("", String)}}, "parameter 1 has no name"},
		{Def{Name: "x.y", Result: Nil, Run: run, Params: []Param{Req("a", "i4")}}, `parameter a: unknown XML-RPC type "i4"`},
		{Def{Name: "x.y", Result: Nil, Run: run, Params: []Param{Opt("a", Int), Req("b", Int)}}, "required parameter b after an optional one"},
		{Def{Name: "x.y", Result: Nil, Run: run, Aliases: []Alias{{Name: "a.b"}}}, "a.b is already registered"},
		{Def{Name: "x.y", Result: Nil, Run: run, Aliases: []Alias{{Name: "system.y"}}}, "reserved"},
		{Def{Name: "x.y", Result: Nil, Run: run, Aliases: []Alias{{Name: "bad name"}}}, `method name "bad name" contains " "`},
		{Def{Name: "x.y", Result: Nil, Run: run, Aliases: []Alias{{Name: "x.z"}, {Name: "x.z"}}}, "alias x.z is named twice"},
		{Def{Name: "x.y", Result: Nil, Run: run, Aliases: []Alias{{Name: "x.y"}}}, "alias x.y is named twice"},
		{Def{Name: "a.b", Result: Nil, Run: run}, "already registered"},
	} {
		if err := s.Define(tc.d); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Define(%s) = %v, want %q", tc.d.Name, err, tc.want)
		}
	}
	// A refused definition adds none of its names.
	if _, ok := s.lookup("x.y"); ok {
		t.Error("x.y was registered by a refused Define")
	}
}
