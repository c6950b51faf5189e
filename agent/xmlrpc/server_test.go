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
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Register(Method{
		Name: "test.add", Help: "Adds two ints.", Signatures: [][]string{{"int", "int", "int"}},
		Handler: func(_ context.Context, p Params) (any, error) {
			if err := p.Want(2); err != nil {
				return nil, err
			}
			a, err := p.Int(0)
			if err != nil {
				return nil, err
			}
			b, err := p.Int(1)
			if err != nil {
				return nil, err
			}
			return a + b, nil
		},
	}))
	must(s.Register(Method{
		Name: "test.echo", Help: "Returns its parameters.",
		Handler: func(_ context.Context, p Params) (any, error) {
			if len(p) == 1 {
				return p[0], nil
			}
			return []any(p), nil
		},
	}))
	must(s.Register(Method{
		Name: "test.fail",
		Handler: func(_ context.Context, p Params) (any, error) {
			code, err := p.OptInt(0, NotFound)
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("looking up vm1: %w", Faultf(int(code), "domain vm1 not found"))
		},
	}))
	must(s.Register(Method{
		Name: "test.error",
		Handler: func(context.Context, Params) (any, error) {
			return nil, errors.New("mount /OVS/x: device busy")
		},
	}))
	must(s.Register(Method{
		Name: "test.panic",
		Handler: func(context.Context, Params) (any, error) {
			var m map[string]int
			m["boom"] = 1
			return nil, nil
		},
	}))
	must(s.Register(Method{
		Name: "test.nan",
		Handler: func(context.Context, Params) (any, error) {
			return map[string]any{"load": math.NaN()}, nil
		},
	}))
	must(s.Register(Method{
		Name: "test.ctx",
		Handler: func(ctx context.Context, _ Params) (any, error) {
			v, _ := ctx.Value(ctxKey{}).(string)
			return v, nil
		},
	}))
	return s, rec
}

type ctxKey struct{}

func TestRegister(t *testing.T) {
	s := NewServer()
	h := func(context.Context, Params) (any, error) { return nil, nil }
	bad := []struct {
		m    Method
		want string
	}{
		{Method{Name: "", Handler: h}, "method name is empty"},
		{Method{Name: "a b", Handler: h}, `method name "a b" contains " "`},
		{Method{Name: strings.Repeat("a", 257), Handler: h}, "longer than 256"},
		{Method{Name: "system.foo", Handler: h}, "system. prefix is reserved"},
		{Method{Name: "x.nil"}, "nil handler"},
		{Method{Name: "x.sig", Handler: h, Signatures: [][]string{{}}}, "signature 1 is empty"},
		{Method{Name: "x.sig", Handler: h, Signatures: [][]string{{"int"}, {"string", "float"}}}, `signature 2: unknown XML-RPC type "float"`},
	}
	for _, tc := range bad {
		err := s.Register(tc.m)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Register(%q) = %v, want error containing %q", tc.m.Name, err, tc.want)
		}
	}
	if err := s.Register(Method{Name: "a.b", Handler: h}); err != nil {
		t.Fatal(err)
	}
	if err := s.Register(Method{Name: "a.b", Handler: h}); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("duplicate Register = %v", err)
	}
	aliasBad := []struct {
		alias, target, want string
	}{
		{"a.b", "a.b", "name already registered"},
		{"x.y", "no.such", `target method "no.such" is not registered`},
		{"system.x", "a.b", "reserved"},
		{"bad name", "a.b", "contains"},
	}
	for _, tc := range aliasBad {
		if err := s.Alias(tc.alias, tc.target, ""); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Alias(%q, %q) = %v, want %q", tc.alias, tc.target, err, tc.want)
		}
	}
}

func TestMethodsAndIntrospection(t *testing.T) {
	s, _ := testServer(t)
	if err := s.Alias("xend.add", "test.add", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Alias("xend.old.add", "xend.add", "Legacy add."); err != nil {
		t.Fatal(err)
	}
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
	helps := map[string]string{"test.add": "Adds two ints.", "xend.add": "Adds two ints.", "xend.old.add": "Legacy add.", "test.fail": ""}
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
		"test.echo":              "undef",
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
		{"test.add", Params{int64(1)}, BadParams, "test.add: expected 2 parameters, got 1"},
		{"test.add", Params{int64(1), "2"}, BadParams, "test.add: parameter 2 must be an int, got string"},
		{"test.fail", nil, NotFound, "looking up vm1: domain vm1 not found"},
		{"test.fail", Params{int64(Busy)}, Busy, "looking up vm1: domain vm1 not found"},
		{"test.fail", Params{int64(BadParams)}, BadParams, "test.fail: looking up vm1: domain vm1 not found"},
		{"test.fail", Params{"x"}, BadParams, "test.fail: parameter 1 must be an int, got string"},
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
	want := []string{"test.add:BadParams", "test.add:BadParams", "test.fail:NotFound", "test.fail:Busy", "test.fail:BadParams",
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
	fault := func(code int, msg string) any { return map[string]any{"faultCode": code, "faultString": msg} }
	want := []any{
		[]any{int64(3)},
		fault(NotFound, "looking up vm1: domain vm1 not found"),
		fault(UnknownMethod, `unknown method "no.such" (system.listMethods lists the methods)`),
		fault(InvalidRequest, "call 4: system.multicall cannot be called from inside system.multicall"),
		fault(BadParams, "call 5 must be a struct {methodName, params}, got string"),
		fault(BadParams, "call 6 has no methodName member"),
		fault(BadParams, "call 7: methodName must be a string, got int"),
		fault(Internal, "test.nan: internal error: the result cannot be sent: at .load: double NaN cannot be represented in XML-RPC"),
	}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("multicall results\n got %v\nwant %v", res, want)
	}
	wantReports := []string{"test.add:ok:m", "test.fail:NotFound:m", "no.such:UnknownMethod:m", "system.multicall:InvalidRequest:m",
		":BadParams:m", ":BadParams:m", ":BadParams:m", "test.nan:Internal:m", "system.multicall:ok"}
	if got := summary(rec.take()); !slices.Equal(got, wantReports) {
		t.Errorf("reports\n got %v\nwant %v", got, wantReports)
	}

	// Entry shapes: params missing is an empty list, params not an array is refused.
	res, err = s.Call(ctx, "system.multicall", Params{[]any{
		map[string]any{"methodName": "test.echo"},
		map[string]any{"methodName": "test.echo", "params": "x"},
		map[string]any{"methodName": "", "params": []any{}},
	}})
	want = []any{
		[]any{[]any{}},
		fault(BadParams, "call 2 (test.echo): params must be an array, got string"),
		fault(InvalidRequest, "call 3: method name is empty"),
	}
	if err != nil || fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("entry shapes: %v, %v\nwant %v", res, err, want)
	}
	rec.take()

	// Bad outer parameters.
	for _, p := range []Params{{}, {"x"}, {[]any{}, []any{}}} {
		if _, err := s.Call(ctx, "system.multicall", p); AsFault(err) == nil || AsFault(err).Code != BadParams {
			t.Errorf("system.multicall%v = %v", p, err)
		}
	}
	if res, err := s.Call(ctx, "system.multicall", Params{[]any{}}); err != nil || len(res.([]any)) != 0 {
		t.Errorf("empty multicall = %v, %v", res, err)
	}
	rec.take()

	// A cancelled request runs no further calls.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	res, err = s.Call(cctx, "system.multicall", Params{[]any{mc("test.add", int64(1), int64(1))}})
	if err != nil || !strings.Contains(fmt.Sprint(res), "call 1 (test.add) was not run: the request was cancelled") {
		t.Errorf("cancelled multicall = %v, %v", res, err)
	}
	if got := summary(rec.take()); !slices.Equal(got, []string{"test.add:Cancelled:m", "system.multicall:ok"}) {
		t.Errorf("cancelled reports: %v", got)
	}
}

func TestConcurrentRegisterAndCall(t *testing.T) {
	s, _ := testServer(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range 50 {
				_ = s.Register(Method{Name: fmt.Sprintf("c.m%d_%d", i, j), Handler: func(context.Context, Params) (any, error) { return 1, nil }})
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
	if n := len(s.Methods()); n != 4+7+200 {
		t.Errorf("%d methods after concurrent registration", n)
	}
}
