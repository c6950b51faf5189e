package xmlrpc

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// fuzzLimits keep each fuzz input cheap while still exercising the limits.
var fuzzLimits = Limits{MaxBodyBytes: 1 << 16, MaxDepth: 12, MaxElements: 4000}

// redecodeLimits are used to decode a re-encoded document, which may be
// larger than its source (<value/> becomes <value><string></string></value>).
var redecodeLimits = Limits{MaxBodyBytes: 1 << 24, MaxDepth: 12, MaxElements: 1 << 20}

var valueSeeds = []string{
	"<value><int>42</int></value>", "<value><i4>-7</i4></value>", "<value><i8>9223372036854775807</i8></value>",
	"<value><i8>-9223372036854775808</i8></value>", "<value><boolean>1</boolean></value>", "<value><boolean>0</boolean></value>",
	"<value><string>a &lt;b&gt; &amp; &#xD;&#x9;</string></value>", "<value>bare text</value>", "<value/>", "<value></value>",
	"<value><string/></value>", "<value><double>-1.5e+300</double></value>", "<value><double>.5</double></value>",
	"<value><dateTime.iso8601>20240229T23:59:59</dateTime.iso8601></value>",
	"<value><dateTime.iso8601>2024-02-29T23:59:59.123+05:30</dateTime.iso8601></value>",
	"<value><base64>aGVs\nbG8=</base64></value>", "<value><base64></base64></value>", "<value><nil/></value>",
	`<value><ex:nil xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions"/></value>`,
	"<value><array><data></data></array></value>",
	"<value><array><data><value><int>1</int></value><value>x</value><value><nil/></value></data></array></value>",
	"<value><struct></struct></value>",
	"<value><struct><member><name>a</name><value><struct><member><name/><value><array><data><value/></data></array></value></member></struct></value></member></struct></value>",
	"<value><string><![CDATA[<x>]]></string></value>", "<value>h\u00e9llo \u2603 \U0001F600</value>",
	nestedArrays(12), nestedStructs(13),
	// Rejected values, so the fuzzer starts near the error paths.
	"<value><int>12x</int></value>", "<value><i8>9223372036854775808</i8></value>", "<value><boolean>true</boolean></value>",
	"<value><double>nan</double></value>", "<value><dateTime.iso8601>20240230T00:00:00</dateTime.iso8601></value>",
	"<value><base64>a</base64></value>", "<value><float>1</float></value>", "<value>x<int>1</int></value>",
	"<value><struct><member><name>a</name><value/></member><member><name>a</name><value/></member></struct></value>",
}

func callSeeds() []string {
	seeds := []string{
		"", "<methodCall/>", "<methodCall><methodName>system.listMethods</methodName></methodCall>",
		"<?xml version='1.0'?>\n<methodCall>\n<methodName>echo</methodName>\n<params>\n<param>\n<value><int>1</int></value>\n</param>\n</params>\n</methodCall>\n",
		"\uFEFF<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><methodCall><methodName>m</methodName><params><param><value>caf\xe9</value></param></params></methodCall>",
		`<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "b">]><methodCall><methodName>m</methodName></methodCall>`,
		"<methodCall><methodName>m</methodName><params><param></param></params></methodCall><!-- c -->",
		"<methodCall><methodName> a b </methodName></methodCall>", "<methodResponse/>",
	}
	for _, v := range valueSeeds {
		seeds = append(seeds, callXML("t.m", v))
	}
	seeds = append(seeds, callXML("t.m", valueSeeds[:8]...))
	return seeds
}

func responseSeeds() []string {
	seeds := []string{
		"", "<methodResponse/>",
		`<?xml version="1.0"?><methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1002</int></value></member><member><name>faultString</name><value><string>not found</string></value></member></struct></value></fault></methodResponse>`,
		`<methodResponse><fault><value><struct><member><name>faultCode</name><value>x</value></member></struct></value></fault></methodResponse>`,
		"<methodResponse><params><param><value/></param><param><value/></param></params></methodResponse>",
	}
	for _, v := range valueSeeds {
		seeds = append(seeds, responseXML(v))
	}
	return seeds
}

// measure returns the number of values and the array/struct depth of v.
func measure(v any) (nodes, depth int) {
	switch x := v.(type) {
	case []any:
		nodes = 1
		for _, e := range x {
			n, d := measure(e)
			nodes += n
			depth = max(depth, d)
		}
		return nodes, depth + 1
	case map[string]any:
		nodes = 1
		for _, e := range x {
			n, d := measure(e)
			nodes += n
			depth = max(depth, d)
		}
		return nodes, depth + 1
	}
	return 1, 0
}

// truncTimes drops what the wire format cannot carry: sub-second time.
func truncTimes(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.Truncate(time.Second)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = truncTimes(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = truncTimes(e)
		}
		return out
	}
	return v
}

// checkDecoded checks the properties every accepted document must have.
func checkDecoded(t *testing.T, v any, lim Limits) {
	t.Helper()
	nodes, depth := measure(v)
	if depth > lim.MaxDepth {
		t.Fatalf("accepted depth %d over MaxDepth %d", depth, lim.MaxDepth)
	}
	if nodes > lim.MaxElements {
		t.Fatalf("accepted %d values over MaxElements %d", nodes, lim.MaxElements)
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			if !validXMLString(x) {
				t.Fatalf("decoded string %q has characters XML cannot carry", x)
			}
		case time.Time:
			if x.Location() != time.UTC || x.Year() < 0 || x.Year() > 9999 {
				t.Fatalf("decoded time %v is not UTC within 0000-9999", x)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for k, e := range x {
				walk(k)
				walk(e)
			}
		}
	}
	walk(v)
}

func FuzzDecodeCall(f *testing.F) {
	for _, s := range callSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCall(bytes.NewReader(data), fuzzLimits)
		if err != nil {
			var fault *Fault
			if !errors.As(err, &fault) || (fault.Code != ParseError && fault.Code != InvalidRequest) || fault.Message == "" {
				t.Fatalf("error %T %v is not a ParseError/InvalidRequest fault", err, err)
			}
			if c != nil {
				t.Fatal("non-nil call with an error")
			}
			return
		}
		if err := checkMethodName(c.Method); err != nil {
			t.Fatalf("accepted method name: %v", err)
		}
		checkDecoded(t, []any(c.Params), Limits{MaxDepth: fuzzLimits.MaxDepth + 1, MaxElements: fuzzLimits.MaxElements})
		var b bytes.Buffer
		if err := EncodeCall(&b, c.Method, c.Params); err != nil {
			t.Fatalf("accepted call does not re-encode: %v", err)
		}
		c2, err := DecodeCall(&b, redecodeLimits)
		if err != nil {
			t.Fatalf("re-encoded call does not decode: %v\n%s", err, b.String())
		}
		if c2.Method != c.Method || !valueEqual(truncTimes([]any(c2.Params)), truncTimes([]any(c.Params))) {
			t.Fatalf("round trip changed the call:\n%s %s\n%s %s", c.Method, show(c.Params), c2.Method, show(c2.Params))
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	for _, s := range responseSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeResponse(bytes.NewReader(data), fuzzLimits)
		var b bytes.Buffer
		var fault *Fault
		switch {
		case err == nil:
			checkDecoded(t, v, fuzzLimits)
			if err := EncodeResponse(&b, v); err != nil {
				t.Fatalf("accepted response does not re-encode: %v", err)
			}
			v2, err := DecodeResponse(&b, redecodeLimits)
			if err != nil || !valueEqual(truncTimes(v2), truncTimes(v)) {
				t.Fatalf("round trip changed the response: %s -> %s, %v", show(v), show(v2), err)
			}
		case errors.As(err, &fault):
			if errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("fault also wraps ErrMalformedResponse: %v", err)
			}
			if err := EncodeFault(&b, fault); err != nil {
				t.Fatal(err)
			}
			_, err2 := DecodeResponse(&b, redecodeLimits)
			var f2 *Fault
			if !errors.As(err2, &f2) || *f2 != *fault {
				t.Fatalf("fault round trip: %v -> %v", fault, err2)
			}
		default:
			if !errors.Is(err, ErrMalformedResponse) || !strings.Contains(err.Error(), ": ") {
				t.Fatalf("error %v does not wrap ErrMalformedResponse", err)
			}
		}
	})
}
