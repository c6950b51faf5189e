package xmlrpc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
)

// recorder collects OnCall reports.
type recorder struct {
	mu    sync.Mutex
	calls []CallInfo
}

func (r *recorder) onCall(_ context.Context, info CallInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, info)
}

func (r *recorder) take() []CallInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

// summary renders reports as "method:code[:m]" for comparison.
func summary(calls []CallInfo) []string {
	var out []string
	for _, c := range calls {
		s := c.Method + ":"
		if c.Fault != nil {
			s += CodeName(c.Fault.Code)
		} else {
			s += "ok"
		}
		if c.InMulticall {
			s += ":m"
		}
		if c.Duration < 0 {
			s += ":negative-duration"
		}
		out = append(out, s)
	}
	return out
}

func testServer(t *testing.T, opts ...Option) (*Server, *recorder) {
	t.Helper()
	s := NewServer(opts...)
	rec := &recorder{}
	s.OnCall = rec.onCall
	for _, d := range testMethods() {
		if err := s.Define(d); err != nil {
			t.Fatal(err)
		}
	}
	return s, rec
}

// testMethods are the methods of testServer: test.add has two aliases,
// xend.add and xend.old.add.
func testMethods() []Def {
	return []Def{
		{Name: "test.add", Help: "Adds two ints.", Params: []Param{Req("a", Int), Req("b", Int)}, Result: Int,
			Aliases: []Alias{{Name: "xend.add"}, {Name: "xend.old.add", Note: " (legacy)"}},
			Run:     func(_ context.Context, a Args) (any, error) { return a.Int(0) + a.Int(1), nil }},
		{Name: "test.echo", Help: "Returns its one parameter, or an array of its parameters.", Variadic: true, Result: Array,
			Run: func(_ context.Context, a Args) (any, error) {
				if a.Len() == 1 {
					return a.All()[0], nil
				}
				return []any(a.All()), nil
			}},
		{Name: "test.fail", Params: []Param{Opt("code", Int)}, Result: Nil,
			Run: func(_ context.Context, a Args) (any, error) {
				return nil, fmt.Errorf("looking up vm1: %w", Faultf(int(a.IntOr(0, NotFound)), "domain vm1 not found"))
			}},
		{Name: "test.error", Result: Nil, Run: func(context.Context, Args) (any, error) {
			return nil, errors.New("mount /OVS/x: device busy")
		}},
		{Name: "test.panic", Result: Nil, Run: func(context.Context, Args) (any, error) {
			var m map[string]int
			m["boom"] = 1
			return nil, nil
		}},
		{Name: "test.nan", Result: Struct, Run: func(context.Context, Args) (any, error) {
			return map[string]any{"load": math.NaN()}, nil
		}},
		{Name: "test.ctx", Result: String, Run: func(ctx context.Context, _ Args) (any, error) {
			v, _ := ctx.Value(ctxKey{}).(string)
			return v, nil
		}},
	}
}

type ctxKey struct{}

func TestMethodsAndIntrospection(t *testing.T) {
	s, _ := testServer(t)
	want := []string{"system.listMethods", "system.methodHelp", "system.methodSignature", "system.multicall",
		"test.add", "test.ctx", "test.echo", "test.error", "test.fail", "test.nan", "test.panic", "xend.add", "xend.old.add"}
	slices.Sort(want)
	if got := s.Methods(); !slices.Equal(got, want) {
		t.Errorf("Methods() = %v\nwant %v", got, want)
	}
	ctx := context.Background()
	call := func(name string, params ...any) (any, *Fault) {
		res, err := s.Call(ctx, name, Params(params))
		return res, AsFault(err)
	}
	res, f := call("system.listMethods")
	if f != nil || !slices.Equal(res.([]string), want) {
		t.Errorf("system.listMethods = %v, %v", res, f)
	}
	if _, f := call("system.listMethods", "extra"); f == nil || f.Code != BadParams || f.Message != "system.listMethods: expected no parameters, got 1" {
		t.Errorf("system.listMethods with a parameter: %v", f)
	}
	helps := map[string]string{"test.add": "Adds two ints.", "xend.add": "Alias of test.add. Adds two ints.",
		"xend.old.add": "Alias of test.add (legacy). Adds two ints.", "test.fail": ""}
	for name, help := range helps {
		if res, f := call("system.methodHelp", name); f != nil || res != help {
			t.Errorf("system.methodHelp(%s) = %v, %v", name, res, f)
		}
	}
	if res, f := call("system.methodHelp", "system.multicall"); f != nil || !strings.Contains(res.(string), "256") {
		t.Errorf("system.methodHelp(system.multicall) = %v, %v", res, f)
	}
	if _, f := call("system.methodHelp", "nope"); f == nil || f.Code != UnknownMethod {
		t.Errorf("system.methodHelp(nope) = %v", f)
	}
	if _, f := call("system.methodHelp", int64(1)); f == nil || f.Code != BadParams || !strings.Contains(f.Message, "parameter 1 must be a string, got int") {
		t.Errorf("system.methodHelp(1) = %v", f)
	}
	sigs := map[string]any{
		"test.add":               [][]string{{"int", "int", "int"}},
		"xend.old.add":           [][]string{{"int", "int", "int"}},
		"xend.add":               [][]string{{"int", "int", "int"}},
		"test.echo":              [][]string{{"array"}},
		"test.fail":              [][]string{{"nil"}, {"nil", "int"}},
		"system.methodSignature": [][]string{{"array", "string"}},
		"system.listMethods":     [][]string{{"array"}},
	}
	for name, want := range sigs {
		res, f := call("system.methodSignature", name)
		if f != nil || fmt.Sprint(res) != fmt.Sprint(want) {
			t.Errorf("system.methodSignature(%s) = %v, %v; want %v", name, res, f, want)
		}
	}
	if _, f := call("system.methodSignature", "nope"); f == nil || f.Code != UnknownMethod {
		t.Errorf("system.methodSignature(nope) = %v", f)
	}
	if _, f := call("system.methodSignature"); f == nil || f.Code != BadParams {
		t.Errorf("system.methodSignature() = %v", f)
	}
}

func TestCallFaults(t *testing.T) {
	s, rec := testServer(t)
	var panics []string
	s.OnPanic = func(_ context.Context, method string, v any, stack []byte) {
		panics = append(panics, fmt.Sprintf("%s %v %t", method, v, strings.Contains(string(stack), "server_test.go")))
	}
	ctx := context.Background()
	tests := []struct {
		method string
		params Params
		code   int
		msg    string
	}{
		{"test.add", Params{int64(1)}, BadParams, "test.add: expected 2 parameters, got 1; usage: test.add(a int, b int)"},
		{"test.add", Params{int64(1), "2"}, BadParams, "test.add: parameter 2 must be an int, got string; usage: test.add(a int, b int)"},
		{"xend.add", Params{int64(1), "2"}, BadParams, "xend.add: parameter 2 must be an int, got string; usage: xend.add(a int, b int)"},
		{"test.fail", nil, NotFound, "looking up vm1: domain vm1 not found"},
		{"test.fail", Params{int64(Busy)}, Busy, "looking up vm1: domain vm1 not found"},
		{"test.fail", Params{int64(BadParams)}, BadParams, "test.fail: looking up vm1: domain vm1 not found"},
		{"test.fail", Params{"x"}, BadParams, "test.fail: parameter 1 must be an int, got string; usage: test.fail([code int])"},
		{"test.error", nil, Internal, "mount /OVS/x: device busy"},
		{"test.panic", nil, Internal, "test.panic: internal error: handler panicked: assignment to entry in nil map"},
		{"test.nan", nil, Internal, "test.nan: internal error: the result cannot be sent: at .load: double NaN cannot be represented in XML-RPC"},
		{"no.such", nil, UnknownMethod, `unknown method "no.such" (system.listMethods lists the methods)`},
		{"", nil, InvalidRequest, "method name is empty"},
	}
	for _, tc := range tests {
		res, err := s.Call(ctx, tc.method, tc.params)
		var f *Fault
		if !errors.As(err, &f) {
			t.Errorf("%s%v: result %v, error %v is not a fault", tc.method, tc.params, res, err)
			continue
		}
		if res != nil || f.Code != tc.code || f.Message != tc.msg {
			t.Errorf("%s%v = %v, %v\nwant code %d %q", tc.method, tc.params, res, f, tc.code, tc.msg)
		}
	}
	if len(panics) != 1 || panics[0] != "test.panic assignment to entry in nil map true" {
		t.Errorf("OnPanic calls: %q", panics)
	}
	got := summary(rec.take())
	want := []string{"test.add:BadParams", "test.add:BadParams", "xend.add:BadParams", "test.fail:NotFound", "test.fail:Busy", "test.fail:BadParams",
		"test.fail:BadParams", "test.error:Internal", "test.panic:Internal", "test.nan:Internal", "no.such:UnknownMethod", ":InvalidRequest"}
	if !slices.Equal(got, want) {
		t.Errorf("OnCall reports %v\nwant %v", got, want)
	}
	// Success, and the context reaches the handler.
	res, err := s.Call(context.WithValue(ctx, ctxKey{}, "v"), "test.ctx", nil)
	if err != nil || res != "v" {
		t.Errorf("test.ctx = %v, %v", res, err)
	}
	if got := summary(rec.take()); !slices.Equal(got, []string{"test.ctx:ok"}) {
		t.Errorf("OnCall for success: %v", got)
	}
}

func mc(name string, params ...any) map[string]any {
	return map[string]any{"methodName": name, "params": params}
}

func TestMulticall(t *testing.T) {
	s, rec := testServer(t, WithMaxMulticall(8))
	ctx := context.Background()
	calls := []any{
		mc("test.add", int64(1), int64(2)),
		mc("test.fail"),
		mc("no.such"),
		mc("system.multicall", []any{}),
		"not a struct",
		map[string]any{"params": []any{}},
		map[string]any{"methodName": int64(1)},
		map[string]any{"methodName": "test.echo", "params": "x"},
		map[string]any{"methodName": "test.echo"},
	}
	_, err := s.Call(ctx, "system.multicall", Params{calls})
	if f := AsFault(err); f == nil || f.Code != BadParams || f.Message != "system.multicall: 9 calls exceed the limit of 8 per system.multicall" {
		t.Errorf("over the cap: %v", err)
	}
	if got := summary(rec.take()); !slices.Equal(got, []string{"system.multicall:BadParams"}) {
		t.Errorf("reports for a refused multicall: %v", got)
	}
	calls = calls[:8]
	calls[7] = mc("test.nan")
	res, err := s.Call(ctx, "system.multicall", Params{calls})
	if err != nil {
		t.Fatal(err)
	}
	want := []any{
		[]any{int64(3)},
		mcFault(NotFound, "looking up vm1: domain vm1 not found"),
		mcFault(UnknownMethod, `unknown method "no.such" (system.listMethods lists the methods)`),
		mcFault(InvalidRequest, "call 4: system.multicall cannot be called from inside system.multicall"),
		mcFault(BadParams, "call 5 must be a struct {methodName, params}, got string"),
		mcFault(BadParams, "call 6 has no methodName member"),
		mcFault(BadParams, "call 7: methodName must be a string, got int"),
		mcFault(Internal, "test.nan: internal error: the result cannot be sent: at .load: double NaN cannot be represented in XML-RPC"),
	}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("multicall results\n got %v\nwant %v", res, want)
	}
	wantReports := []string{"test.add:ok:m", "test.fail:NotFound:m", "no.such:UnknownMethod:m", "system.multicall:InvalidRequest:m",
		":BadParams:m", ":BadParams:m", ":BadParams:m", "test.nan:Internal:m", "system.multicall:ok"}
	if got := summary(rec.take()); !slices.Equal(got, wantReports) {
		t.Errorf("reports\n got %v\nwant %v", got, wantReports)
	}
}

func mcFault(code int, msg string) any { return map[string]any{"faultCode": code, "faultString": msg} }

// Entry shapes: params missing is an empty list, params not an array is refused.
func TestMulticallEntryShapes(t *testing.T) {
	s, _ := testServer(t)
	ctx := context.Background()
	res, err := s.Call(ctx, "system.multicall", Params{[]any{
		map[string]any{"methodName": "test.echo"},
		map[string]any{"methodName": "test.echo", "params": "x"},
		map[string]any{"methodName": "", "params": []any{}},
	}})
	want := []any{
		[]any{[]any{}},
		mcFault(BadParams, "call 2 (test.echo): params must be an array, got string"),
		mcFault(InvalidRequest, "call 3: method name is empty"),
	}
	if err != nil || fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("entry shapes: %v, %v\nwant %v", res, err, want)
	}
}

func TestMulticallOuterParams(t *testing.T) {
	s, rec := testServer(t)
	ctx := context.Background()
	usage := "; usage: system.multicall(calls array)"
	for _, tc := range []struct {
		p    Params
		want string
	}{
		{Params{}, "system.multicall: expected 1 parameter, got 0" + usage},
		{Params{"x"}, "system.multicall: parameter 1 must be an array, got string" + usage},
		{Params{[]any{}, []any{}}, "system.multicall: expected 1 parameter, got 2" + usage},
	} {
		if _, err := s.Call(ctx, "system.multicall", tc.p); AsFault(err) == nil || AsFault(err).Code != BadParams || AsFault(err).Message != tc.want {
			t.Errorf("system.multicall%v = %v, want %q", tc.p, err, tc.want)
		}
	}
	if res, err := s.Call(ctx, "system.multicall", Params{[]any{}}); err != nil || len(res.([]any)) != 0 {
		t.Errorf("empty multicall = %v, %v", res, err)
	}
	want := []string{"system.multicall:BadParams", "system.multicall:BadParams", "system.multicall:BadParams", "system.multicall:ok"}
	if got := summary(rec.take()); !slices.Equal(got, want) {
		t.Errorf("reports for bad outer parameters: %v", got)
	}
}

// A cancelled request runs no further calls.
func TestMulticallCancelled(t *testing.T) {
	s, rec := testServer(t)
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := s.Call(cctx, "system.multicall", Params{[]any{mc("test.add", int64(1), int64(1))}})
	if err != nil || !strings.Contains(fmt.Sprint(res), "call 1 (test.add) was not run: the request was cancelled") {
		t.Errorf("cancelled multicall = %v, %v", res, err)
	}
	if got := summary(rec.take()); !slices.Equal(got, []string{"test.add:Cancelled:m", "system.multicall:ok"}) {
		t.Errorf("cancelled reports: %v", got)
	}
}

func TestConcurrentDefineAndCall(t *testing.T) {
	s, _ := testServer(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range 50 {
				err := s.Define(Def{Name: fmt.Sprintf("c.m%d_%d", i, j), Result: Int, Run: func(context.Context, Args) (any, error) { return 1, nil }})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 50 {
				if _, err := s.Call(context.Background(), "test.add", Params{int64(1), int64(2)}); err != nil {
					t.Error(err)
					return
				}
				_ = s.Methods()
			}
		}()
	}
	wg.Wait()
	if n := len(s.Methods()); n != 4+9+200 {
		t.Errorf("%d methods after concurrent registration", n)
	}
}
