package xmlrpc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func utc(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
}

// decodeValueTests are values as sent, and what they decode to.
var decodeValueTests = []struct {
	name string
	xml  string
	want any
}{
	{"int", "<value><int>42</int></value>", int64(42)},
	{"i4", "<value><i4>-7</i4></value>", int64(-7)},
	{"i8 max", "<value><i8>9223372036854775807</i8></value>", int64(math.MaxInt64)},
	{"i8 min", "<value><i8>-9223372036854775808</i8></value>", int64(math.MinInt64)},
	{"int beyond int32 in <int>", "<value><int>5000000000</int></value>", int64(5000000000)},
	{"int32 boundary in i4", "<value><i4>2147483647</i4></value>", int64(math.MaxInt32)},
	{"int plus sign and spaces", "<value><int> +5\n</int></value>", int64(5)},
	{"apache ex:i8", `<value><ex:i8 xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions">8</ex:i8></value>`, int64(8)},
	{"ex:i8 undeclared prefix", `<value><ex:i8>8</ex:i8></value>`, int64(8)},
	{"boolean 1", "<value><boolean>1</boolean></value>", true},
	{"boolean 0 spaced", "<value><boolean> 0 </boolean></value>", false},
	{"string", "<value><string>hello</string></value>", "hello"},
	{"string kept as is", "<value><string>  a  b \n</string></value>", "  a  b \n"},
	{"empty string element", "<value><string></string></value>", ""},
	{"self-closed string", "<value><string/></value>", ""},
	{"bare text", "<value>plain</value>", "plain"},
	{"bare text untrimmed", "<value>  spaced  </value>", "  spaced  "},
	{"empty value", "<value/>", ""},
	{"empty value pair", "<value></value>", ""},
	{"entities", "<value><string>&lt;&amp;&gt;&quot;&apos;&#65;&#x42;&#xD;</string></value>", "<&>\"'AB\r"},
	{"CRLF normalised", "<value><string>a\r\nb</string></value>", "a\nb"},
	{"CDATA", "<value><string><![CDATA[<x>&]]></string></value>", "<x>&"},
	{"comment inside", "<value><string>ab<!-- c -->cd</string></value>", "abcd"},
	{"unicode", "<value>héllo ☃ 😀</value>", "héllo ☃ 😀"},
	{"whitespace around type", "<value>\n  <int>1</int>\n</value>", int64(1)},
	{"double", "<value><double>1.5</double></value>", 1.5},
	{"double negative", "<value><double>-0.25</double></value>", -0.25},
	{"double exponent (Python repr)", "<value><double>1e+100</double></value>", 1e100},
	{"double fraction only", "<value><double>.5</double></value>", 0.5},
	{"double trailing dot", "<value><double>5.</double></value>", 5.0},
	{"double integer form", "<value><double> 3 </double></value>", 3.0},
	{"double underflow", "<value><double>1e-400</double></value>", 0.0},
	{"dateTime spec form", "<value><dateTime.iso8601>20240102T03:04:05</dateTime.iso8601></value>", utc(2024, 1, 2, 3, 4, 5, 0)},
	{"dateTime dashes Z", "<value><dateTime.iso8601>2024-01-02T03:04:05Z</dateTime.iso8601></value>", utc(2024, 1, 2, 3, 4, 5, 0)},
	{"dateTime offset", "<value><dateTime.iso8601>2024-01-02T03:04:05+02:00</dateTime.iso8601></value>", utc(2024, 1, 2, 1, 4, 5, 0)},
	{"dateTime fraction", "<value><dateTime.iso8601>20240102T03:04:05.25</dateTime.iso8601></value>", utc(2024, 1, 2, 3, 4, 5, 250_000_000)},
	{"base64", "<value><base64>aGk=</base64></value>", []byte("hi")},
	{"base64 with line breaks", "<value><base64>aGVs\nbG8g\r\nd29y bGQ=\n</base64></value>", []byte("hello world")},
	{"base64 unpadded", "<value><base64>aGk</base64></value>", []byte("hi")},
	{"base64 empty", "<value><base64></base64></value>", []byte{}},
	{"nil", "<value><nil/></value>", nil},
	{"nil pair", "<value><nil></nil></value>", nil},
	{"apache ex:nil", `<value><ex:nil xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions"/></value>`, nil},
	{"empty array", "<value><array><data></data></array></value>", []any{}},
	{"empty array self-closed data", "<value><array><data/></array></value>", []any{}},
	{"array", "<value><array><data><value><int>1</int></value><value>x</value><value/></data></array></value>", []any{int64(1), "x", ""}},
	{"empty struct", "<value><struct></struct></value>", map[string]any{}},
	{"struct", "<value><struct><member><name>a</name><value><int>1</int></value></member><member><name> b </name><value><boolean>1</boolean></value></member></struct></value>", map[string]any{"a": int64(1), " b ": true}},
	{"struct empty name", "<value><struct><member><name/><value>v</value></member></struct></value>", map[string]any{"": "v"}},
	{"pretty printed", "<value>\n <struct>\n  <member>\n   <name>k</name>\n   <value><array>\n <data>\n <value><i4>1</i4></value>\n </data>\n </array></value>\n  </member>\n </struct>\n</value>", map[string]any{"k": []any{int64(1)}}},
	{"nested", "<value><array><data><value><struct><member><name>l</name><value><array><data><value><nil/></value></data></array></value></member></struct></value></data></array></value>", []any{map[string]any{"l": []any{nil}}}},
}

func TestDecodeValues(t *testing.T) {
	for _, tc := range decodeValueTests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCall(strings.NewReader(callXML("t.m", tc.xml)), Limits{})
			if err != nil {
				t.Fatalf("DecodeCall: %v", err)
			}
			if c.Method != "t.m" || len(c.Params) != 1 {
				t.Fatalf("DecodeCall = %+v", c)
			}
			if !valueEqual(c.Params[0], tc.want) {
				t.Errorf("got %s, want %s", show(c.Params[0]), show(tc.want))
			}
			if tm, ok := c.Params[0].(time.Time); ok && tm.Location() != time.UTC {
				t.Errorf("time %v is not in UTC", tm)
			}
			// The same value decodes the same way in a response.
			v, err := DecodeResponse(strings.NewReader(responseXML(tc.xml)), Limits{})
			if err != nil || !valueEqual(v, tc.want) {
				t.Errorf("DecodeResponse = %s, %v", show(v), err)
			}
		})
	}
}

func TestDecodeCallShapes(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		method string
		params Params
	}{
		{"no params element", "<methodCall><methodName>system.listMethods</methodName></methodCall>", "system.listMethods", Params{}},
		{"empty params", "<methodCall><methodName>a</methodName><params/></methodCall>", "a", Params{}},
		{"method name trimmed", "<methodCall><methodName>\n  domain.start \n</methodName></methodCall>", "domain.start", Params{}},
		{"all name characters", "<methodCall><methodName>aZ09_.:/</methodName></methodCall>", "aZ09_.:/", Params{}},
		{"python style", "<?xml version='1.0'?>\n<methodCall>\n<methodName>echo</methodName>\n<params>\n<param>\n<value><int>1</int></value>\n</param>\n<param>\n<value><string>x</string></value>\n</param>\n</params>\n</methodCall>\n", "echo", Params{int64(1), "x"}},
		{"comments and declaration", "<?xml version=\"1.0\" encoding=\"UTF-8\"?><!-- hi --><methodCall><!-- a --><methodName>m</methodName><params><!-- b --><param><value>v</value></param></params></methodCall><!-- end -->\n", "m", Params{"v"}},
		{"byte order mark", "\uFEFF<?xml version=\"1.0\"?><methodCall><methodName>m</methodName></methodCall>", "m", Params{}},
		{"latin-1", "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><methodCall><methodName>m</methodName><params><param><value>caf\xe9</value></param></params></methodCall>", "m", Params{"café"}},
		{"us-ascii", "<?xml version=\"1.0\" encoding=\"us-ascii\"?><methodCall><methodName>m</methodName><params><param><value>abc</value></param></params></methodCall>", "m", Params{"abc"}},
		{"empty param is nil (kolo/xmlrpc)", "<methodCall><methodName>m</methodName><params><param></param><param/></params></methodCall>", "m", Params{nil, nil}},
		{"attributes ignored", `<methodCall xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions"><methodName>m</methodName><params><param><value><ex:nil/></value></param></params></methodCall>`, "m", Params{nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCall(strings.NewReader(tc.doc), Limits{})
			if err != nil {
				t.Fatalf("DecodeCall: %v", err)
			}
			if c.Method != tc.method || !valueEqual(c.Params, tc.params) {
				t.Errorf("got %q %s, want %q %s", c.Method, show(c.Params), tc.method, show(tc.params))
			}
		})
	}
}

// inCall is a methodCall of m with one parameter, the value fragment frag.
func inCall(frag string) string { return callXML("m", frag) }

// malformedCalls are documents DecodeCall refuses, the code and a
// substring of the message.
var malformedCalls = []struct {
	name string
	doc  string
	code int
	msg  string
}{
	{"empty body", "", ParseError, "document is empty"},
	{"only whitespace", " \n ", ParseError, "document is empty"},
	{"not XML", "hello", ParseError, `unexpected text "hello" before <methodCall>`},
	{"JSON", `{"method":"x"}`, ParseError, "before <methodCall>"},
	{"truncated", "<methodCall><methodName>m</methodName><params>", ParseError, "malformed XML: unexpected EOF"},
	{"mismatched tags", "<methodCall><methodName>m</methodCall>", ParseError, "malformed XML"},
	{"wrong root", "<methodResponse/>", ParseError, "root element is <methodResponse>, expected <methodCall>"},
	{"two roots", "<methodCall><methodName>m</methodName></methodCall><methodCall/>", ParseError, "unexpected <methodCall> after </methodCall>"},
	{"text after root", "<methodCall><methodName>m</methodName></methodCall>x", ParseError, `unexpected text "x" after </methodCall>`},
	{"doctype", `<?xml version="1.0"?><!DOCTYPE methodCall [<!ENTITY a "aaaa">]><methodCall><methodName>m</methodName></methodCall>`, ParseError, "<!DOCTYPE> is not allowed"},
	{"entity reference", "<methodCall><methodName>m</methodName><params><param><value>&a;</value></param></params></methodCall>", ParseError, "invalid character entity &a;"},
	{"processing instruction", "<methodCall><?php x ?><methodName>m</methodName></methodCall>", ParseError, "processing instruction <?php?>"},
	{"unsupported charset", `<?xml version="1.0" encoding="KOI8-R"?><methodCall/>`, ParseError, `encoding "KOI8-R" is not supported`},
	{"bad byte in us-ascii", "<?xml version=\"1.0\" encoding=\"us-ascii\"?><methodCall><methodName>m\xe9</methodName></methodCall>", ParseError, "byte 0xe9 in a document declared US-ASCII"},
	{"invalid utf-8", "<methodCall><methodName>m</methodName><params><param><value>\xff</value></param></params></methodCall>", ParseError, "invalid UTF-8"},
	{"control character", "<methodCall><methodName>m</methodName><params><param><value>\x01</value></param></params></methodCall>", ParseError, "illegal character code U+0001"},
	{"control character reference", inCall("<value>&#0;</value>"), ParseError, "illegal character code U+0000"},
	{"missing methodName", "<methodCall><params/></methodCall>", ParseError, "expected <methodName> in <methodCall>, found <params>"},
	{"empty methodName", "<methodCall><methodName></methodName></methodCall>", InvalidRequest, "method name is empty"},
	{"blank methodName", "<methodCall><methodName>  </methodName></methodCall>", InvalidRequest, "method name is empty"},
	{"bad methodName chars", "<methodCall><methodName>a b</methodName></methodCall>", InvalidRequest, `method name "a b" contains " "`},
	{"methodName with element", "<methodCall><methodName><b>x</b></methodName></methodCall>", ParseError, "<methodName> must contain only text, found <b>"},
	{"unknown element in call", "<methodCall><methodName>m</methodName><foo/></methodCall>", ParseError, "expected <params> or </methodCall> after <methodName>, found <foo>"},
	{"text in params", "<methodCall><methodName>m</methodName><params>x</params></methodCall>", ParseError, `unexpected text "x" in <params>`},
	{"param with wrong element", "<methodCall><methodName>m</methodName><params><param><int>1</int></param></params></methodCall>", ParseError, "expected <value> in <param> 1, found <int>"},
	{"param with text", "<methodCall><methodName>m</methodName><params><param>1</param></params></methodCall>", ParseError, `unexpected text "1" in <param> 1`},
	{"two values in param", inCall("<value>a</value><value>b</value>"), ParseError, "expected </param>, found <value>"},
	{"unknown type", inCall("<value><float>1</float></value>"), ParseError, "unknown type element <float> in <value>"},
	{"text and type", inCall("<value>x<int>1</int></value>"), ParseError, `<value> has both text "x" and a <int> element`},
	{"two types", inCall("<value><int>1</int><int>2</int></value>"), ParseError, "expected </value>, found <int>"},
	{"int not a number", inCall("<value><int>12x</int></value>"), ParseError, `line 2: <int> value "12x" is not an integer`},
	{"int empty", inCall("<value><int></int></value>"), ParseError, "<int> is empty, expected an integer"},
	{"int float", inCall("<value><i4>1.0</i4></value>"), ParseError, `<i4> value "1.0" is not an integer`},
	{"int underscore", inCall("<value><int>1_000</int></value>"), ParseError, "is not an integer"},
	{"int hex", inCall("<value><int>0x10</int></value>"), ParseError, "is not an integer"},
	{"int overflow", inCall("<value><i8>9223372036854775808</i8></value>"), ParseError, `<i8> value "9223372036854775808" is out of range for a 64-bit integer`},
	{"int underflow", inCall("<value><int>-9223372036854775809</int></value>"), ParseError, "out of range"},
	{"int nested element", inCall("<value><int><b/></int></value>"), ParseError, "<int> must contain only text, found <b>"},
	{"boolean true", inCall("<value><boolean>true</boolean></value>"), ParseError, `<boolean> value "true" is not 0 or 1`},
	{"boolean 2", inCall("<value><boolean>2</boolean></value>"), ParseError, "is not 0 or 1"},
	{"boolean empty", inCall("<value><boolean/></value>"), ParseError, "is not 0 or 1"},
	{"double text", inCall("<value><double>abc</double></value>"), ParseError, `<double> value "abc" is not a decimal number`},
	{"double nan", inCall("<value><double>nan</double></value>"), ParseError, "is not a decimal number"},
	{"double inf", inCall("<value><double>inf</double></value>"), ParseError, "is not a decimal number"},
	{"double hex", inCall("<value><double>0x1p-2</double></value>"), ParseError, "is not a decimal number"},
	{"double overflow", inCall("<value><double>1e400</double></value>"), ParseError, "out of range for a 64-bit float"},
	{"double empty", inCall("<value><double></double></value>"), ParseError, "is not a decimal number"},
	{"double bad exponent", inCall("<value><double>1e</double></value>"), ParseError, "is not a decimal number"},
	{"date garbage", inCall("<value><dateTime.iso8601>yesterday</dateTime.iso8601></value>"), ParseError, `<dateTime.iso8601> value "yesterday" is not a date-time`},
	{"date february 30", inCall("<value><dateTime.iso8601>20240230T00:00:00</dateTime.iso8601></value>"), ParseError, "day 30 does not exist in 2024-02"},
	{"date hour 24", inCall("<value><dateTime.iso8601>20240101T24:00:00</dateTime.iso8601></value>"), ParseError, "out of range"},
	{"base64 bad char", inCall("<value><base64>aG!k</base64></value>"), ParseError, "<base64> value is not valid base64"},
	{"base64 bad length", inCall("<value><base64>a</base64></value>"), ParseError, "not valid base64"},
	{"base64 bad padding", inCall("<value><base64>aGk==</base64></value>"), ParseError, "not valid base64"},
	{"base64 non-canonical", inCall("<value><base64>aGl=</base64></value>"), ParseError, "not valid base64"},
	{"nil with content", inCall("<value><nil>x</nil></value>"), ParseError, `<nil> must be empty, found "x"`},
	{"struct text", inCall("<value><struct>x</struct></value>"), ParseError, `unexpected text "x" in <struct>`},
	{"struct wrong child", inCall("<value><struct><value/></struct></value>"), ParseError, "expected <member> in <struct>, found <value>"},
	{"member without name", inCall("<value><struct><member><value/></member></struct></value>"), ParseError, "expected <name> in <member>, found <value>"},
	{"member without value", inCall("<value><struct><member><name>a</name></member></struct></value>"), ParseError, `expected <value> in <member> "a", found </member>`},
	{"member value first", inCall("<value><struct><member><value>1</value><name>a</name></member></struct></value>"), ParseError, "expected <name> in <member>, found <value>"},
	{"member extra", inCall("<value><struct><member><name>a</name><value/><value/></member></struct></value>"), ParseError, "expected </member>, found <value>"},
	{"duplicate member", inCall("<value><struct><member><name>a</name><value>1</value></member><member><name>a</name><value>2</value></member></struct></value>"), ParseError, `<struct> has member "a" twice`},
	{"array without data", inCall("<value><array></array></value>"), ParseError, "expected <data> in <array>, found </array>"},
	{"array two data", inCall("<value><array><data/><data/></array></value>"), ParseError, "expected </array>, found <data>"},
	{"array bare value", inCall("<value><array><value/></array></value>"), ParseError, "expected <data> in <array>, found <value>"},
	{"data wrong child", inCall("<value><array><data><int>1</int></data></array></value>"), ParseError, "expected <value> in <data>, found <int>"},
	{"data text", inCall("<value><array><data>x</data></array></value>"), ParseError, `unexpected text "x" in <data>`},
	{"long text clipped", inCall("<value><int>" + strings.Repeat("9", 200) + "</int></value>"), ParseError, `"` + strings.Repeat("9", 64) + `..."`},
}

func TestDecodeCallMalformed(t *testing.T) {
	for _, tc := range malformedCalls {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCall(strings.NewReader(tc.doc), Limits{})
			if err == nil {
				t.Fatalf("DecodeCall succeeded: %+v", c)
			}
			var f *Fault
			if !errors.As(err, &f) {
				t.Fatalf("error %T %v is not a *Fault", err, err)
			}
			if f.Code != tc.code {
				t.Errorf("code %d, want %d (%s)", f.Code, tc.code, f.Message)
			}
			if !strings.Contains(f.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", f.Message, tc.msg)
			}
			if !strings.HasPrefix(f.Message, "line ") {
				t.Errorf("message %q does not start with a line number", f.Message)
			}
		})
	}
}

func nestedArrays(depth int) string {
	return strings.Repeat("<value><array><data>", depth) + "<value>x</value>" + strings.Repeat("</data></array></value>", depth)
}

func nestedStructs(depth int) string {
	return strings.Repeat("<value><struct><member><name>n</name>", depth) + "<value/>" + strings.Repeat("</member></struct></value>", depth)
}

func TestDecodeLimits(t *testing.T) {
	t.Run("depth", func(t *testing.T) {
		lim := Limits{MaxDepth: 5}
		for _, nest := range []func(int) string{nestedArrays, nestedStructs} {
			if _, err := DecodeCall(strings.NewReader(callXML("m", nest(5))), lim); err != nil {
				t.Errorf("depth 5 with MaxDepth 5: %v", err)
			}
			_, err := DecodeCall(strings.NewReader(callXML("m", nest(6))), lim)
			if f := AsFault(err); f == nil || f.Code != ParseError || !strings.Contains(f.Message, "nested more than 5 levels deep") {
				t.Errorf("depth 6 with MaxDepth 5: %v", err)
			}
		}
		// The default allows 64 and refuses 65; a deep document costs no
		// recursion beyond the limit.
		if _, err := DecodeCall(strings.NewReader(callXML("m", nestedArrays(64))), Limits{}); err != nil {
			t.Errorf("depth 64 by default: %v", err)
		}
		if _, err := DecodeCall(strings.NewReader(callXML("m", nestedArrays(100000))), Limits{}); err == nil {
			t.Error("depth 100000 accepted")
		}
	})
	t.Run("elements", func(t *testing.T) {
		// methodCall, methodName, params + 2 per param.
		doc := callXML("m", "<value/>", "<value/>", "<value/>")
		if _, err := DecodeCall(strings.NewReader(doc), Limits{MaxElements: 9}); err != nil {
			t.Errorf("9 elements with MaxElements 9: %v", err)
		}
		_, err := DecodeCall(strings.NewReader(doc), Limits{MaxElements: 8})
		if f := AsFault(err); f == nil || f.Code != ParseError || !strings.Contains(f.Message, "more than 8 XML elements") {
			t.Errorf("9 elements with MaxElements 8: %v", err)
		}
	})
	t.Run("body size", func(t *testing.T) {
		doc := callXML("m", "<value>"+strings.Repeat("x", 1000)+"</value>")
		if _, err := DecodeCall(strings.NewReader(doc), Limits{MaxBodyBytes: int64(len(doc))}); err != nil {
			t.Errorf("exactly at the limit: %v", err)
		}
		_, err := DecodeCall(strings.NewReader(doc), Limits{MaxBodyBytes: int64(len(doc)) - 1})
		if f := AsFault(err); f == nil || f.Code != ParseError || !strings.Contains(f.Message, fmt.Sprintf("larger than the limit of %d bytes", len(doc)-1)) {
			t.Errorf("one byte over: %v", err)
		}
		// An endless body stops at the limit.
		r := io.MultiReader(strings.NewReader("<methodCall><methodName>m</methodName><params><param><value>"), infinite{})
		if _, err := DecodeCall(r, Limits{MaxBodyBytes: 1 << 16}); err == nil || !strings.Contains(err.Error(), "larger than the limit") {
			t.Errorf("endless body: %v", err)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		if got := DefaultLimits(); got != (Limits{MaxBodyBytes: 4 << 20, MaxDepth: 64, MaxElements: 250000}) {
			t.Errorf("DefaultLimits() = %+v", got)
		}
		if got := (Limits{MaxDepth: -1}).withDefaults(); got != DefaultLimits() {
			t.Errorf("negative limits not defaulted: %+v", got)
		}
	})
}

type infinite struct{}

func (infinite) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func TestDecodeResponse(t *testing.T) {
	t.Run("fault", func(t *testing.T) {
		doc := `<?xml version="1.0"?><methodResponse><fault><value><struct>
			<member><name>faultString</name><value><string>no such domain</string></value></member>
			<member><name>faultCode</name><value><int>1002</int></value></member>
			<member><name>extra</name><value>ignored</value></member>
			</struct></value></fault></methodResponse>`
		v, err := DecodeResponse(strings.NewReader(doc), Limits{})
		var f *Fault
		if v != nil || !errors.As(err, &f) || *f != (Fault{Code: NotFound, Message: "no such domain"}) {
			t.Errorf("got %v, %v", v, err)
		}
		if errors.Is(err, ErrMalformedResponse) {
			t.Error("a fault is reported as a malformed response")
		}
	})
	bad := []struct {
		name, doc, msg string
	}{
		{"wrong root", "<methodCall/>", "root element is <methodCall>, expected <methodResponse>"},
		{"empty", "<methodResponse></methodResponse>", "expected <params> or <fault> in <methodResponse>, found </methodResponse>"},
		{"no params", "<methodResponse><params></params></methodResponse>", "expected <param> in <params>, found </params>"},
		{"two params", "<methodResponse><params><param><value/></param><param><value/></param></params></methodResponse>", "expected </params>, found <param>"},
		{"unknown child", "<methodResponse><result/></methodResponse>", "expected <params> or <fault> in <methodResponse>, found <result>"},
		{"fault not struct", "<methodResponse><fault><value>x</value></fault></methodResponse>", "<fault> value is string, expected a struct"},
		{"fault code missing", "<methodResponse><fault><value><struct><member><name>faultString</name><value>x</value></member></struct></value></fault></methodResponse>", "faultCode is nil, expected an int"},
		{"fault code string", "<methodResponse><fault><value><struct><member><name>faultCode</name><value>1</value></member><member><name>faultString</name><value>x</value></member></struct></value></fault></methodResponse>", "faultCode is string, expected an int"},
		{"fault string missing", "<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1</int></value></member></struct></value></fault></methodResponse>", "faultString is nil, expected a string"},
		{"fault twice", "<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1</int></value></member><member><name>faultString</name><value>x</value></member></struct></value><value/></fault></methodResponse>", "expected </fault>, found <value>"},
		{"trailing", "<methodResponse><params><param><value/></param></params></methodResponse><x/>", "unexpected <x> after </methodResponse>"},
		{"bad value", responseXML("<value><int>x</int></value>"), `<int> value "x" is not an integer`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			v, err := DecodeResponse(strings.NewReader(tc.doc), Limits{})
			if err == nil {
				t.Fatalf("succeeded: %s", show(v))
			}
			if !errors.Is(err, ErrMalformedResponse) {
				t.Errorf("error %v does not wrap ErrMalformedResponse", err)
			}
			var f *Fault
			if errors.As(err, &f) {
				t.Errorf("malformed response reported as a fault: %v", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}

func TestDecodeCallIsolation(t *testing.T) {
	// Decoded strings and bytes must not alias the input buffer: the HTTP
	// server reuses it for the response.
	doc := []byte(callXML("m", "<value>abc</value>", "<value><base64>aGk=</base64></value>"))
	c, err := DecodeCall(bytes.NewReader(doc), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range doc {
		doc[i] = 'z'
	}
	if !valueEqual(c.Params, Params{"abc", []byte("hi")}) {
		t.Errorf("params changed with the input: %s", show(c.Params))
	}
}
