package xmlrpc

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"
)

// faultOf calls name and returns the BadParams message, "" on success;
// any other outcome fails the test.
func faultOf(t *testing.T, s *Server, name string, p Params) string {
	t.Helper()
	_, err := s.Call(context.Background(), name, p)
	if err == nil {
		return ""
	}
	f := AsFault(err)
	if f.Code != BadParams {
		t.Fatalf("%s%v: %v, want a BadParams fault", name, p, f)
	}
	return f.Message
}

func defineAll(t *testing.T, s *Server, defs ...Def) {
	t.Helper()
	for _, d := range defs {
		if err := s.Define(d); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckArity(t *testing.T) {
	s := NewServer()
	run := func(context.Context, Args) (any, error) { return true, nil }
	defineAll(t, s,
		Def{Name: "x.none", Result: Boolean, Run: run},
		Def{Name: "x.one", Result: Boolean, Run: run, Params: []Param{Req("s", String)}},
		Def{Name: "x.two", Result: Boolean, Run: run, Params: []Param{Req("a", String), Req("b", Int)}},
		Def{Name: "x.range", Result: Boolean, Run: run, Params: []Param{Req("a", String), Req("b", Int), Req("c", Int), Opt("d", Int)}},
		Def{Name: "x.opt", Result: Boolean, Run: run, Params: []Param{Opt("a", String)}},
		Def{Name: "x.var", Result: Boolean, Run: run, Params: []Param{Req("s", String)}, Variadic: true},
	)
	for _, tc := range []struct {
		name string
		p    Params
		want string // "" for success
	}{
		{"x.none", Params{}, ""},
		{"x.none", Params{"a"}, "x.none: expected no parameters, got 1"},
		{"x.one", Params{"a"}, ""},
		{"x.one", Params{}, "x.one: expected 1 parameter, got 0; usage: x.one(s string)"},
		{"x.one", Params{"a", "b"}, "x.one: expected 1 parameter, got 2; usage: x.one(s string)"},
		{"x.two", Params{"a", int64(1)}, ""},
		{"x.two", Params{"a"}, "x.two: expected 2 parameters, got 1; usage: x.two(a string, b int)"},
		{"x.two", Params{"a", int64(1), int64(2)}, "x.two: expected 2 parameters, got 3; usage: x.two(a string, b int)"},
		{"x.range", Params{"a", int64(1), int64(2)}, ""},
		{"x.range", Params{"a", int64(1), int64(2), int64(3)}, ""},
		{"x.range", Params{"a", int64(1)}, "x.range: expected 3 to 4 parameters, got 2; usage: x.range(a string, b int, c int[, d int])"},
		{"x.opt", Params{}, ""},
		{"x.opt", Params{"a", "b"}, "x.opt: expected 0 to 1 parameters, got 2; usage: x.opt([a string])"},
		{"x.var", Params{"a", int64(1), nil, []any{}}, ""},
		{"x.var", Params{}, "x.var: expected at least 1 parameter, got 0; usage: x.var(s string, ...)"},
	} {
		if got := faultOf(t, s, tc.name, tc.p); got != tc.want {
			t.Errorf("%s%v = %q\nwant %q", tc.name, tc.p, got, tc.want)
		}
	}
}

// allTypes declares x.all, one required parameter of each type, whose Run
// reports what it read through Args.
func allTypes(t *testing.T) *Server {
	t.Helper()
	s := NewServer()
	defineAll(t, s, Def{Name: "x.all", Result: Array,
		Params: []Param{Req("s", String), Req("n", Int), Req("b", Boolean), Req("f", Double), Req("t", DateTime),
			Req("raw", Base64), Req("list", Array), Req("m", Struct)},
		Run: func(_ context.Context, a Args) (any, error) {
			return []any{a.String(0), a.Int(1), a.Bool(2), a.Float(3), a.Time(4), a.Bytes(5), a.Array(6), a.Struct(7)}, nil
		}})
	return s
}

func TestCheckTypes(t *testing.T) {
	s := allTypes(t)
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	good := Params{"s", int64(-3), true, 2.5, now, []byte("b"), []any{"x"}, map[string]any{"k": "v"}}
	res, err := s.Call(context.Background(), "x.all", good)
	if err != nil || !valueEqual([]any(res.([]any)), []any(good)) {
		t.Fatalf("x.all%v read %s, %v", good, show(res), err)
	}
	// In-process callers may pass any Go integer; an int is a double too.
	with := func(i int, v any) Params {
		p := append(Params{}, good...)
		p[i] = v
		return p
	}
	res, err = s.Call(context.Background(), "x.all", with(3, int64(-3)))
	if err != nil || res.([]any)[3] != -3.0 {
		t.Errorf("an int for a double read %s, %v", show(res), err)
	}
	res, err = s.Call(context.Background(), "x.all", with(1, int(7)))
	if err != nil || res.([]any)[1] != int64(7) {
		t.Errorf("a Go int read %s, %v", show(res), err)
	}
	usage := "; usage: x.all(s string, n int, b boolean, f double, t dateTime.iso8601, raw base64, list array, m struct)"
	for _, tc := range []struct {
		i    int
		v    any
		want string
	}{
		{0, int64(1), "parameter 1 must be a string, got int"},
		{1, "1", "parameter 2 must be an int, got string"},
		{1, 2.5, "parameter 2 must be an int, got double"},
		{1, uint64(math.MaxUint64), "parameter 2 must be an int, got int"},
		{2, int64(1), "parameter 3 must be a boolean, got int"},
		{3, "2.5", "parameter 4 must be a double, got string"},
		{4, "20240102T03:04:05", "parameter 5 must be a dateTime.iso8601, got string"},
		{5, "Yg==", "parameter 6 must be base64, got string"},
		{6, map[string]any{}, "parameter 7 must be an array, got struct"},
		{7, []any{}, "parameter 8 must be a struct, got array"},
		{7, nil, "parameter 8 must be a struct, got nil"},
		{0, now, "parameter 1 must be a string, got dateTime.iso8601"},
		{0, []byte("b"), "parameter 1 must be a string, got base64"},
		{0, struct{}{}, "parameter 1 must be a string, got Go struct {}"},
	} {
		p := with(tc.i, tc.v)
		if got, want := faultOf(t, s, "x.all", p), "x.all: "+tc.want+usage; got != want {
			t.Errorf("x.all with parameter %d = %s:\n got %q\nwant %q", tc.i+1, show(tc.v), got, want)
		}
	}
}

func TestArgsOptional(t *testing.T) {
	s := NewServer()
	defineAll(t, s, Def{Name: "x.opt", Result: String,
		Params: []Param{Req("s", String), Opt("o", String), Opt("n", Int), Opt("b", Boolean), Opt("m", Struct)},
		Run: func(_ context.Context, a Args) (any, error) {
			return fmt.Sprintf("%s %s %d %v %v %v %v", a.StringOr(0, "d"), a.StringOr(1, "d"), a.IntOr(2, 9),
				a.Bool(3), a.Struct(4) == nil, a.Has(1), a.Has(2)), nil
		}})
	for _, tc := range []struct {
		p    Params
		want string
	}{
		{Params{"x", nil, int64(3)}, "x d 3 false true false true"},
		{Params{"x"}, "x d 9 false true false false"},
		{Params{"x", "y", nil, true, map[string]any{}}, "x y 9 true false true false"},
	} {
		if res, err := s.Call(context.Background(), "x.opt", tc.p); err != nil || res != tc.want {
			t.Errorf("x.opt%v = %v, %v; want %q", tc.p, res, err, tc.want)
		}
	}
	// A parameter sent with the wrong type is refused, optional or not.
	usage := "; usage: x.opt(s string[, o string[, n int[, b boolean[, m struct]]]])"
	for _, tc := range []struct {
		p    Params
		want string
	}{
		{Params{"x", int64(1)}, "x.opt: parameter 2 must be a string, got int" + usage},
		{Params{"x", nil, "3"}, "x.opt: parameter 3 must be an int, got string" + usage},
		{Params{"x", nil, nil, "yes"}, "x.opt: parameter 4 must be a boolean, got string" + usage},
		{Params{"x", nil, nil, nil, "m"}, "x.opt: parameter 5 must be a struct, got string" + usage},
	} {
		if got := faultOf(t, s, "x.opt", tc.p); got != tc.want {
			t.Errorf("x.opt%v = %q\nwant %q", tc.p, got, tc.want)
		}
	}
}
