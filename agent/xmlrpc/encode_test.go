package xmlrpc

import (
	"bytes"
	"errors"
	"math"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const (
	respPrefix = xmlHeader + "<methodResponse><params><param><value>"
	respSuffix = "</value></param></params></methodResponse>\n"
)

// encodeInner returns what EncodeResponse puts inside the result <value>.
func encodeInner(t *testing.T, v any) (string, error) {
	t.Helper()
	var b bytes.Buffer
	if err := EncodeResponse(&b, v); err != nil {
		if b.Len() != 0 {
			t.Errorf("EncodeResponse wrote %d bytes despite failing", b.Len())
		}
		return "", err
	}
	s := b.String()
	if !strings.HasPrefix(s, respPrefix) || !strings.HasSuffix(s, respSuffix) {
		t.Fatalf("unexpected envelope: %q", s)
	}
	return strings.TrimSuffix(strings.TrimPrefix(s, respPrefix), respSuffix), nil
}

type named string
type blob []byte

type inner struct {
	Zone string `xmlrpc:"zone"`
}

type innerPtr struct {
	Rack int `xmlrpc:"rack"`
}

type domainInfo struct {
	Name     string            `xmlrpc:"name"`
	ID       int               `xmlrpc:"domid"`
	Memory   uint64            `xmlrpc:"memory"`
	Running  bool              `xmlrpc:"running"`
	Labels   map[string]string `xmlrpc:"labels,omitempty"`
	Note     string            `xmlrpc:"note,omitempty"`
	Secret   string            `xmlrpc:"-"`
	NoTag    float32
	internal int
	inner
	*innerPtr
	Started *time.Time `xmlrpc:"started"`
}

type dupFields struct {
	A string `xmlrpc:"x"`
	B string `xmlrpc:"x"`
}

type badInside struct {
	List []any `xmlrpc:"list"`
}

// encodeTest is a Go value and the XML-RPC value it encodes to.
type encodeTest struct {
	name string
	in   any
	want string
}

// encodeWhen is the time the encode tests send.
var encodeWhen = time.Date(2024, 2, 29, 23, 59, 58, 999_000_000, time.UTC)

func encodeScalarTests() []encodeTest {
	plus2 := time.FixedZone("X", 2*3600)
	zero := 0.0
	n := 7
	var nilPtr *int
	when := encodeWhen
	return []encodeTest{
		{"nil", nil, "<nil/>"},
		{"nil pointer", nilPtr, "<nil/>"},
		{"pointer", &n, "<int>7</int>"},
		{"true", true, "<boolean>1</boolean>"},
		{"false", false, "<boolean>0</boolean>"},
		{"empty string", "", "<string></string>"},
		{"escaped", `a<b&c>d"e'f`, `<string>a&lt;b&amp;c&gt;d"e'f</string>`},
		{"unicode", "héllo ☃ 😀 日本", "<string>héllo ☃ 😀 日本</string>"},
		{"whitespace kept", "a\r\nb\tc\n", "<string>a&#xD;\nb\tc\n</string>"},
		{"controls replaced", "a\x00b\x1bc\x7f", "<string>a\uFFFDb\uFFFDc\x7f</string>"},
		{"invalid utf8 replaced", "a\xffb\xc3", "<string>a\uFFFDb\uFFFD</string>"},
		{"non-characters replaced", "\uFFFE\uFFFF\uFFFD", "<string>\uFFFD\uFFFD\uFFFD</string>"},
		{"named string", named("x"), "<string>x</string>"},
		{"int zero", 0, "<int>0</int>"},
		{"int32 max", int64(math.MaxInt32), "<int>2147483647</int>"},
		{"int32 max+1", int64(math.MaxInt32) + 1, "<i8>2147483648</i8>"},
		{"int32 min", int64(math.MinInt32), "<int>-2147483648</int>"},
		{"int32 min-1", int64(math.MinInt32) - 1, "<i8>-2147483649</i8>"},
		{"int64 max", int64(math.MaxInt64), "<i8>9223372036854775807</i8>"},
		{"int64 min", int64(math.MinInt64), "<i8>-9223372036854775808</i8>"},
		{"int", 5_000_000_000, "<i8>5000000000</i8>"},
		{"int32", int32(-3), "<int>-3</int>"},
		{"int8", int8(-128), "<int>-128</int>"},
		{"uint8", uint8(255), "<int>255</int>"},
		{"uint32 max", uint32(math.MaxUint32), "<i8>4294967295</i8>"},
		{"uint64 max int64", uint64(math.MaxInt64), "<i8>9223372036854775807</i8>"},
		{"double", 1.5, "<double>1.5</double>"},
		{"double negative", -0.25, "<double>-0.25</double>"},
		{"double zero", zero, "<double>0</double>"},
		{"double large", 1e21, "<double>1000000000000000000000</double>"},
		{"double small", 1.25e-7, "<double>0.000000125</double>"},
		{"float32", float32(0.1), "<double>0.1</double>"},
		{"time", when, "<dateTime.iso8601>20240229T23:59:58</dateTime.iso8601>"},
		{"time zone", time.Date(2024, 1, 1, 1, 0, 0, 0, plus2), "<dateTime.iso8601>20231231T23:00:00</dateTime.iso8601>"},
		{"time year 0", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), "<dateTime.iso8601>00000101T00:00:00</dateTime.iso8601>"},
		{"bytes", []byte("hi"), "<base64>aGk=</base64>"},
		{"empty bytes", []byte{}, "<base64></base64>"},
		{"nil bytes", []byte(nil), "<base64></base64>"},
		{"named bytes", blob{0, 255}, "<base64>AP8=</base64>"},
	}
}

func encodeContainerTests() []encodeTest {
	when := encodeWhen
	ip := net.ParseIP("10.1.2.3")
	return []encodeTest{
		{"empty array", []any{}, "<array><data></data></array>"},
		{"nil array", []any(nil), "<array><data></data></array>"},
		{"array", []any{int64(1), "a", nil}, "<array><data><value><int>1</int></value><value><string>a</string></value><value><nil/></value></data></array>"},
		{"strings", []string{"a", "b"}, "<array><data><value><string>a</string></value><value><string>b</string></value></data></array>"},
		{"ints", []int{1, 1 << 40}, "<array><data><value><int>1</int></value><value><i8>1099511627776</i8></value></data></array>"},
		{"Go array", [2]bool{true, false}, "<array><data><value><boolean>1</boolean></value><value><boolean>0</boolean></value></data></array>"},
		{"nested", [][]string{{"a"}, {}}, "<array><data><value><array><data><value><string>a</string></value></data></array></value><value><array><data></data></array></value></data></array>"},
		{"empty struct", map[string]any{}, "<struct></struct>"},
		{"nil map", map[string]int(nil), "<struct></struct>"},
		{"sorted members", map[string]any{"b": int64(2), "a": "x", "A": true}, "<struct><member><name>A</name><value><boolean>1</boolean></value></member><member><name>a</name><value><string>x</string></value></member><member><name>b</name><value><int>2</int></value></member></struct>"},
		{"map string", map[string]string{"k": "v", "<": "&"}, "<struct><member><name>&lt;</name><value><string>&amp;</string></value></member><member><name>k</name><value><string>v</string></value></member></struct>"},
		{"invalid key replaced", map[string]any{"a\xff": int64(1), "b": int64(2)}, "<struct><member><name>a\uFFFD</name><value><int>1</int></value></member><member><name>b</name><value><int>2</int></value></member></struct>"},
		{"map int", map[string]int{"z": 1, "y": 2}, "<struct><member><name>y</name><value><int>2</int></value></member><member><name>z</name><value><int>1</int></value></member></struct>"},
		{"named key map", map[named]bool{"k": true}, "<struct><member><name>k</name><value><boolean>1</boolean></value></member></struct>"},
		{"text marshaler", ip, "<string>10.1.2.3</string>"},
		{"text marshaler value", netip.MustParseAddr("::1"), "<string>::1</string>"},
		{"Go struct", domainInfo{Name: "vm1", ID: 3, Memory: 1 << 32, Running: true, Secret: "pw", NoTag: 0.5, inner: inner{Zone: "z"}},
			"<struct><member><name>name</name><value><string>vm1</string></value></member>" +
				"<member><name>domid</name><value><int>3</int></value></member>" +
				"<member><name>memory</name><value><i8>4294967296</i8></value></member>" +
				"<member><name>running</name><value><boolean>1</boolean></value></member>" +
				"<member><name>NoTag</name><value><double>0.5</double></value></member>" +
				"<member><name>zone</name><value><string>z</string></value></member>" +
				"<member><name>started</name><value><nil/></value></member></struct>"},
		{"Go struct pointer, embedded pointer and omitempty set", &domainInfo{Name: "b", Labels: map[string]string{"k": "v"}, Note: "n", innerPtr: &innerPtr{Rack: 4}, Started: &when},
			"<struct><member><name>name</name><value><string>b</string></value></member>" +
				"<member><name>domid</name><value><int>0</int></value></member>" +
				"<member><name>memory</name><value><int>0</int></value></member>" +
				"<member><name>running</name><value><boolean>0</boolean></value></member>" +
				"<member><name>labels</name><value><struct><member><name>k</name><value><string>v</string></value></member></struct></value></member>" +
				"<member><name>note</name><value><string>n</string></value></member>" +
				"<member><name>NoTag</name><value><double>0</double></value></member>" +
				"<member><name>zone</name><value><string></string></value></member>" +
				"<member><name>rack</name><value><int>4</int></value></member>" +
				"<member><name>started</name><value><dateTime.iso8601>20240229T23:59:58</dateTime.iso8601></value></member></struct>"},
		{"slice of structs", []inner{{Zone: "a"}}, "<array><data><value><struct><member><name>zone</name><value><string>a</string></value></member></struct></value></data></array>"},
		{"interface in struct field", badInside{List: []any{[]byte("x")}}, "<struct><member><name>list</name><value><array><data><value><base64>eA==</base64></value></data></array></value></member></struct>"},
	}
}

func TestEncodeValues(t *testing.T) {
	for _, tc := range append(encodeScalarTests(), encodeContainerTests()...) {
		t.Run(tc.name, func(t *testing.T) {
			got, err := encodeInner(t, tc.in)
			if err != nil {
				t.Fatalf("EncodeResponse(%s): %v", show(tc.in), err)
			}
			if got != tc.want {
				t.Errorf("EncodeResponse(%s)\n got %s\nwant %s", show(tc.in), got, tc.want)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	type loop struct {
		Next *loop `xmlrpc:"next"`
	}
	l := &loop{}
	l.Next = l
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"NaN", math.NaN(), "double NaN cannot be represented"},
		{"+Inf", math.Inf(1), "double +Inf cannot be represented"},
		{"-Inf float32", float32(math.Inf(-1)), "double -Inf cannot be represented"},
		{"NaN nested", map[string]any{"a": []any{1, math.NaN()}}, "at .a[1]: double NaN"},
		{"NaN in struct", domainInfo{NoTag: float32(math.NaN())}, "at .NoTag: double NaN"},
		{"uint64 overflow", uint64(math.MaxInt64) + 1, "unsigned integer 9223372036854775808 does not fit"},
		{"uint overflow in slice", []uint{math.MaxUint}, "at [0]: unsigned integer"},
		{"year 10000", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "year 10000 cannot be written"},
		{"year -1 after UTC", time.Date(0, 1, 1, 0, 0, 0, 0, time.FixedZone("E", 3600)), "year -1 cannot be written"},
		{"chan", make(chan int), "Go type chan int cannot be encoded"},
		{"func", func() {}, "cannot be encoded"},
		{"complex", complex(1, 2), "Go type complex128 cannot be encoded"},
		{"int keys", map[int]string{1: "a"}, "map key type int is not a string"},
		{"duplicate members", dupFields{}, `two fields encoded as member "x"`},
		{"cyclic map", cyclic, "nested more than 512 levels"},
		{"colliding keys", map[string]any{"a\xff": 1, "a\xfe": 2}, "map keys \"a\\xfe\" and \"a\\xff\" both become member name \"a\uFFFD\""},
		{"key colliding with a valid one", map[string]string{"a\x01": "", "a\ufffd": ""}, "both become member name"},
		{"colliding keys via reflection", map[string]int{"\x00": 1, "\x01": 2}, "both become member name"},
		{"cyclic pointer", l, "nested more than 512 levels"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := encodeInner(t, tc.in)
			if err == nil {
				t.Fatalf("EncodeResponse(%T) succeeded, want error containing %q", tc.in, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestEncodeFault(t *testing.T) {
	var b bytes.Buffer
	if err := EncodeFault(&b, Faultf(NotFound, "domain %q not found <&>", "vm1")); err != nil {
		t.Fatal(err)
	}
	want := xmlHeader + "<methodResponse><fault><value><struct>" +
		"<member><name>faultCode</name><value><int>1002</int></value></member>" +
		"<member><name>faultString</name><value><string>domain \"vm1\" not found &lt;&amp;&gt;</string></value></member>" +
		"</struct></value></fault></methodResponse>\n"
	if b.String() != want {
		t.Errorf("got  %s\nwant %s", b.String(), want)
	}
	_, err := DecodeResponse(&b, Limits{})
	var f *Fault
	if !errors.As(err, &f) || f.Code != NotFound || f.Message != `domain "vm1" not found <&>` {
		t.Errorf("DecodeResponse of fault = %v", err)
	}
	if err := EncodeFault(&b, nil); err == nil {
		t.Error("EncodeFault(nil) succeeded")
	}
}

func TestEncodeCall(t *testing.T) {
	var b bytes.Buffer
	if err := EncodeCall(&b, "domain.start", []any{"vm1", int64(1)}); err != nil {
		t.Fatal(err)
	}
	want := xmlHeader + "<methodCall><methodName>domain.start</methodName><params>" +
		"<param><value><string>vm1</string></value></param><param><value><int>1</int></value></param>" +
		"</params></methodCall>\n"
	if b.String() != want {
		t.Errorf("got  %s\nwant %s", b.String(), want)
	}
	c, err := DecodeCall(&b, Limits{})
	if err != nil || c.Method != "domain.start" || !valueEqual(c.Params, Params{"vm1", int64(1)}) {
		t.Errorf("DecodeCall = %+v, %v", c, err)
	}
	for _, bad := range []string{"", "a b", "x<y>", "é"} {
		if err := EncodeCall(&b, bad, nil); err == nil {
			t.Errorf("EncodeCall(%q) succeeded", bad)
		}
	}
	if err := EncodeCall(&b, "m", []any{math.NaN()}); err == nil || !strings.Contains(err.Error(), "parameter 1") {
		t.Errorf("EncodeCall with NaN: %v", err)
	}
}

// TestEncodeDecodeRoundTrip: every value the encoder accepts decodes back
// to the canonical decoded form.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	when := time.Date(2031, 12, 31, 23, 59, 59, 0, time.UTC)
	tests := []struct {
		in, want any
	}{
		{nil, nil},
		{int64(math.MaxInt64), int64(math.MaxInt64)},
		{int64(math.MinInt64), int64(math.MinInt64)},
		{math.MaxInt32, int64(math.MaxInt32)},
		{uint32(7), int64(7)},
		{"", ""},
		{"\r\n\t <>&'\" 😀", "\r\n\t <>&'\" 😀"},
		{"a\x01b", "a\uFFFDb"},
		{math.MaxFloat64, math.MaxFloat64},
		{math.SmallestNonzeroFloat64, math.SmallestNonzeroFloat64},
		{-0.1, -0.1},
		{float32(1.1), 1.1},
		{when.Add(999 * time.Millisecond), when},
		{[]byte{0, 1, 2, 253, 254, 255}, []byte{0, 1, 2, 253, 254, 255}},
		{[]byte{}, []byte{}},
		{[]any{}, []any{}},
		{map[string]any{}, map[string]any{}},
		{[]string{"x"}, []any{"x"}},
		{map[string]int{"": 1}, map[string]any{"": int64(1)}},
		{inner{Zone: "q"}, map[string]any{"zone": "q"}},
		{[]any{[]any{[]any{map[string]any{"a": []any{true}}}}}, []any{[]any{[]any{map[string]any{"a": []any{true}}}}}},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		if err := EncodeResponse(&b, tc.in); err != nil {
			t.Errorf("EncodeResponse(%s): %v", show(tc.in), err)
			continue
		}
		got, err := DecodeResponse(&b, Limits{})
		if err != nil {
			t.Errorf("DecodeResponse(EncodeResponse(%s)): %v", show(tc.in), err)
			continue
		}
		if !valueEqual(got, tc.want) {
			t.Errorf("round trip of %s = %s, want %s", show(tc.in), show(got), show(tc.want))
		}
	}
}

func TestAppendEscapedMatchesValidity(t *testing.T) {
	for _, s := range []string{"", "abc", "a\x00", "\xff", "\uFFFE", "\t\n\r", "😀", "\xed\xa0\x80"} {
		escaped := string(appendEscaped(nil, s))
		replaced := strings.Contains(escaped, "\uFFFD") && !strings.Contains(s, "\uFFFD")
		if validXMLString(s) == replaced {
			t.Errorf("%q: validXMLString=%v but escaping replaced=%v", s, validXMLString(s), replaced)
		}
	}
}

type panicky struct{}

func (panicky) MarshalText() ([]byte, error) { panic("boom") }

type failing struct{}

func (failing) MarshalText() ([]byte, error) { return nil, errors.New("no text") }

func TestEncodeMarshalerFailures(t *testing.T) {
	if _, err := encodeInner(t, map[string]any{"p": panicky{}}); err == nil || !strings.Contains(err.Error(), "encoding panicked: boom") {
		t.Errorf("panicking MarshalText: %v", err)
	}
	if _, err := encodeInner(t, []any{failing{}}); err == nil || !strings.Contains(err.Error(), "at [0]: xmlrpc.failing.MarshalText: no text") {
		t.Errorf("failing MarshalText: %v", err)
	}
	// The pooled encoder is usable after a panic.
	if got, err := encodeInner(t, "ok"); err != nil || got != "<string>ok</string>" {
		t.Errorf("after panic: %q, %v", got, err)
	}
}
