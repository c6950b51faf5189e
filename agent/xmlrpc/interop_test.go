package xmlrpc

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	kolo "github.com/kolo/xmlrpc"
)

// interopServer is testServer plus a method returning integers that need
// <i8>, served over a real HTTP listener.
func interopServer(t *testing.T) (*httptest.Server, *recorder) {
	t.Helper()
	s, rec := testServer(t)
	err := s.Define(Def{
		Name: "test.big", Result: Array,
		Run: func(context.Context, Args) (any, error) {
			return []int64{1 << 40, -(1 << 62), 1<<63 - 1, 1<<31 - 1, -1 << 31}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv, rec
}

type koloDomain struct {
	Name    string    `xmlrpc:"name"`
	Memory  int64     `xmlrpc:"memory"`
	Running bool      `xmlrpc:"running"`
	Load    float64   `xmlrpc:"load"`
	Started time.Time `xmlrpc:"started"`
	Tags    []string  `xmlrpc:"tags"`
}

func TestInteropKolo(t *testing.T) {
	srv, rec := interopServer(t)
	c, err := kolo.NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var sum int64
	if err := c.Call("test.add", []any{2, 40}, &sum); err != nil || sum != 42 {
		t.Errorf("test.add = %d, %v", sum, err)
	}
	var big []int64
	if err := c.Call("test.big", nil, &big); err != nil || len(big) != 5 || big[0] != 1<<40 || big[1] != -(1<<62) || big[2] != 1<<63-1 {
		t.Errorf("test.big = %v, %v", big, err)
	}
	// kolo sends large ints as <int>; the server accepts the full int64 range.
	var echoed int64
	if err := c.Call("test.echo", int64(1)<<50, &echoed); err != nil || echoed != 1<<50 {
		t.Errorf("echo 2^50 = %d, %v", echoed, err)
	}
	in := koloDomain{Name: "vm1 <&> ☃", Memory: 5 << 30, Running: true, Load: 0.25,
		Started: time.Date(2024, 2, 29, 12, 0, 1, 0, time.UTC), Tags: []string{"a", ""}}
	var out koloDomain
	if err := c.Call("test.echo", in, &out); err != nil {
		t.Fatalf("echo struct: %v", err)
	}
	if out.Name != in.Name || out.Memory != in.Memory || !out.Running || out.Load != in.Load ||
		!out.Started.Equal(in.Started) || strings.Join(out.Tags, ",") != "a," {
		t.Errorf("echo struct = %+v, want %+v", out, in)
	}
	// kolo sends base64 as pre-encoded text and reads it back as text.
	var b64 string
	if err := c.Call("test.echo", kolo.Base64("aGk="), &b64); err != nil || b64 != "aGk=" {
		t.Errorf("echo base64 = %q, %v", b64, err)
	}
	// A nil argument arrives as an empty <param>, i.e. nil.
	var list []any
	if err := c.Call("test.echo", []any{nil, "x"}, &list); err != nil || len(list) != 2 || list[1] != "x" {
		t.Errorf("echo nil = %v, %v", list, err)
	}
	var methods []string
	if err := c.Call("system.listMethods", nil, &methods); err != nil || len(methods) == 0 || methods[0] != "system.listMethods" {
		t.Errorf("system.listMethods = %v, %v", methods, err)
	}
	var results []any
	calls := []any{
		map[string]any{"methodName": "test.add", "params": []any{1, 2}},
		map[string]any{"methodName": "test.fail", "params": []any{}},
	}
	if err := c.Call("system.multicall", []any{calls}, &results); err != nil || len(results) != 2 {
		t.Fatalf("system.multicall = %v, %v", results, err)
	}
	if r0, ok := results[0].([]any); !ok || len(r0) != 1 || r0[0] != int64(3) {
		t.Errorf("multicall result 0 = %#v", results[0])
	}
	if r1, ok := results[1].(map[string]any); !ok || r1["faultCode"] != int64(NotFound) {
		t.Errorf("multicall result 1 = %#v", results[1])
	}
	err = c.Call("test.fail", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "Fault(1002): looking up vm1: domain vm1 not found") {
		t.Errorf("test.fail = %v", err)
	}
	err = c.Call("no.such", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "Fault(-32601)") {
		t.Errorf("no.such = %v", err)
	}
	if n := len(rec.take()); n != 12 {
		t.Errorf("%d OnCall reports, want 12", n)
	}
}

// pythonScript drives the server with Python's standard client.
const pythonScript = `
import datetime, sys
import xmlrpc.client as x

s = x.ServerProxy(sys.argv[1], allow_none=True, use_builtin_types=True)

def check(got, want, what):
    if got != want or type(got) != type(want):
        raise AssertionError("%s: got %r, want %r" % (what, got, want))

check(s.test.add(2, 40), 42, "add")
check(s.test.big(), [2**40, -2**62, 2**63 - 1, 2**31 - 1, -2**31], "i8 results")
check(s.test.echo(2**31 - 1), 2**31 - 1, "int32 max")
try:
    s.test.echo(2**40)
    raise AssertionError("Python sent a big int")
except OverflowError:
    pass
check(s.test.echo(None), None, "nil")
check(s.test.echo([None, 1, "a", True, 1.5]), [None, 1, "a", True, 1.5], "array with nil")
dt = datetime.datetime(2024, 2, 29, 12, 34, 56)
check(s.test.echo(dt), dt, "dateTime")
check(s.test.echo(datetime.datetime(1, 1, 1)), datetime.datetime(1, 1, 1), "dateTime year 1")
b = bytes(range(256)) * 3
check(s.test.echo(b), b, "base64")
check(s.test.echo(b""), b"", "empty base64")
v = {"name": "vm1 <&> \u2603 \U0001F600", "ws": " a\nb\tc ", "n": 1e300, "small": 1e-7, "neg": -0.5,
     "t": True, "f": False, "l": [], "d": {}, "": "empty key", "nested": [[{"k": [1]}]]}
check(s.test.echo(v), v, "struct")
check(s.test.echo(""), "", "empty string")

m = x.MultiCall(s)
m.test.add(1, 2)
m.test.fail()
m.test.echo("x")
m.no.such()
r = m()
check(r[0], 3, "multicall 0")
try:
    r[1]
    raise AssertionError("multicall fault not raised")
except x.Fault as f:
    check(f.faultCode, 1002, "multicall fault code")
    check(f.faultString, "looking up vm1: domain vm1 not found", "multicall fault string")
check(r[2], "x", "multicall 2")
try:
    r[3]
    raise AssertionError("multicall unknown method not raised")
except x.Fault as f:
    check(f.faultCode, -32601, "multicall unknown method")

try:
    s.test.fail(1001)
    raise AssertionError("fault not raised")
except x.Fault as f:
    check(f.faultCode, 1001, "fault code")
    check(f.faultString, "looking up vm1: domain vm1 not found", "fault string")
try:
    s.test.add("1", 2)
    raise AssertionError("bad params not raised")
except x.Fault as f:
    check(f.faultCode, -32602, "bad params code")
    check(f.faultString, "test.add: parameter 1 must be an int, got string; usage: test.add(a int, b int)", "bad params message")
try:
    s.test.add(1)
    raise AssertionError("missing param not raised")
except x.Fault as f:
    check(f.faultCode, -32602, "arity code")
    check(f.faultString, "test.add: expected 2 parameters, got 1; usage: test.add(a int, b int)", "arity message")
try:
    s.no.such()
    raise AssertionError("unknown method not raised")
except x.Fault as f:
    check(f.faultCode, -32601, "unknown method code")

check("test.add" in s.system.listMethods(), True, "listMethods")
check(s.system.methodSignature("test.add"), [["int", "int", "int"]], "methodSignature")
check(s.system.methodSignature("test.echo"), [["array"]], "methodSignature variadic")
check(s.system.methodSignature("test.fail"), [["nil"], ["nil", "int"]], "methodSignature optional")
check(s.system.methodHelp("xend.add"), "Alias of test.add. Adds two ints.", "alias methodHelp")
check(s.system.methodHelp("test.add"), "Adds two ints.", "methodHelp")
print("python interop OK")
`

func findPython(t *testing.T) string {
	t.Helper()
	candidates := []string{"/root/.pyenv/shims/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := exec.Command(p, "-c", "import xmlrpc.client").Run(); err == nil {
			return p
		}
	}
	t.Skip("python3 with xmlrpc.client not found (tried /root/.pyenv/shims/python3 and PATH); Python interop not tested")
	return ""
}

func TestInteropPython(t *testing.T) {
	py := findPython(t)
	srv, rec := interopServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", pythonScript, srv.URL+"/RPC2").CombinedOutput()
	if err != nil {
		t.Fatalf("python client failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "python interop OK") {
		t.Errorf("unexpected python output: %s", out)
	}
	calls := rec.take()
	multicallSubs := 0
	for _, c := range calls {
		if c.InMulticall {
			multicallSubs++
		}
	}
	if multicallSubs != 4 {
		t.Errorf("%d multicall sub-calls reported, want 4", multicallSubs)
	}
}
