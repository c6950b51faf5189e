package xmlrpc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// post sends body to h and returns the recorded response.
func post(h http.Handler, body string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/RPC2", strings.NewReader(body))
	req.Header.Set("Content-Type", "text/xml")
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// checkXMLResponse checks the headers of an XML-RPC reply and decodes it.
func checkXMLResponse(t *testing.T, w *httptest.ResponseRecorder) (any, error) {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, want 200; body %q", w.Code, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/xml; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cl := w.Header().Get("Content-Length"); cl != strconv.Itoa(w.Body.Len()) {
		t.Errorf("Content-Length %q, body has %d bytes", cl, w.Body.Len())
	}
	return DecodeResponse(bytes.NewReader(w.Body.Bytes()), Limits{})
}

func TestHTTPSuccessAndFault(t *testing.T) {
	s, rec := testServer(t)
	w := post(s, callXML("test.add", "<value><int>2</int></value>", "<value><i4>40</i4></value>"), nil)
	v, err := checkXMLResponse(t, w)
	if err != nil || v != int64(42) {
		t.Errorf("test.add = %v, %v", v, err)
	}
	w = post(s, callXML("test.fail"), nil)
	_, err = checkXMLResponse(t, w)
	var f *Fault
	if !errors.As(err, &f) || f.Code != NotFound || f.Message != "looking up vm1: domain vm1 not found" {
		t.Errorf("test.fail = %v", err)
	}
	if !strings.Contains(w.Body.String(), "<fault>") {
		t.Errorf("fault body has no <fault>: %s", w.Body.String())
	}
	w = post(s, callXML("test.nan"), nil)
	if _, err = checkXMLResponse(t, w); AsFault(err) == nil || AsFault(err).Code != Internal {
		t.Errorf("test.nan = %v", err)
	}
	w = post(s, "<methodCall><methodName>test.add</methodName><params><param><value><int>x</int></value></param></params></methodCall>", nil)
	if _, err = checkXMLResponse(t, w); AsFault(err) == nil || AsFault(err).Message != `line 1: <int> value "x" is not an integer` {
		t.Errorf("parse error = %v", err)
	}
	w = post(s, "garbage", nil)
	if _, err = checkXMLResponse(t, w); AsFault(err) == nil || AsFault(err).Code != ParseError {
		t.Errorf("garbage = %v", err)
	}
	want := []string{"test.add:ok", "test.fail:NotFound", "test.nan:Internal", "test.add:ParseError", ":ParseError"}
	if got := summary(rec.take()); !slices.Equal(got, want) {
		t.Errorf("reports %v, want %v", got, want)
	}
}

func TestHTTPContext(t *testing.T) {
	s, _ := testServer(t)
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(callXML("test.ctx")))
	req = req.WithContext(context.WithValue(req.Context(), ctxKey{}, "from-request"))
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if v, err := checkXMLResponse(t, w); err != nil || v != "from-request" {
		t.Errorf("handler context: %v, %v", v, err)
	}
}

func TestHTTPMethodNotAllowed(t *testing.T) {
	s, rec := testServer(t)
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodOptions, http.MethodDelete} {
		req := httptest.NewRequest(m, "/RPC2", nil)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
			t.Errorf("%s: status %d, Allow %q", m, w.Code, w.Header().Get("Allow"))
		}
	}
	if got := rec.take(); len(got) != 0 {
		t.Errorf("405s were reported: %v", summary(got))
	}
}

func TestHTTPTooLarge(t *testing.T) {
	s, rec := testServer(t, WithLimits(Limits{MaxBodyBytes: 200}))
	small := callXML("test.echo", "<value>"+strings.Repeat("x", 50)+"</value>")
	if v, err := checkXMLResponse(t, post(s, small, nil)); err != nil || v != strings.Repeat("x", 50) {
		t.Errorf("small request: %v, %v", v, err)
	}
	big := callXML("test.echo", "<value>"+strings.Repeat("x", 500)+"</value>")
	// Declared length over the limit.
	if w := post(s, big, nil); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("large request with Content-Length: status %d", w.Code)
	}
	// Unknown length (chunked): caught while reading.
	req := httptest.NewRequest(http.MethodPost, "/", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "limit of 200 bytes") {
		t.Errorf("large chunked request: status %d body %q", w.Code, w.Body.String())
	}
	if got := summary(rec.take()); !slices.Equal(got, []string{"test.echo:ok"}) {
		t.Errorf("reports %v", got)
	}
}

func TestHTTPHeaders(t *testing.T) {
	s, rec := testServer(t)
	body := callXML("test.add", "<value><int>1</int></value>", "<value><int>1</int></value>")
	ok := []map[string]string{
		{"Content-Type": "text/xml"},
		{"Content-Type": "text/xml; charset=utf-8"},
		{"Content-Type": "application/xml"},
		{"Content-Type": "TEXT/XML"},
		{"Content-Type": ""},
		{"Content-Encoding": "identity"},
	}
	for _, h := range ok {
		if v, err := checkXMLResponse(t, post(s, body, h)); err != nil || v != int64(2) {
			t.Errorf("%v: %v, %v", h, v, err)
		}
	}
	bad := []struct {
		h    map[string]string
		want string
	}{
		{map[string]string{"Content-Type": "application/json"}, `Content-Type "application/json" is not XML`},
		{map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "is not XML"},
		{map[string]string{"Content-Type": "text/xml; charset"}, "is malformed"},
		{map[string]string{"Content-Encoding": "gzip"}, `Content-Encoding "gzip" is not supported`},
	}
	for _, tc := range bad {
		_, err := checkXMLResponse(t, post(s, body, tc.h))
		if f := AsFault(err); f == nil || f.Code != InvalidRequest || !strings.Contains(f.Message, tc.want) {
			t.Errorf("%v: %v, want InvalidRequest %q", tc.h, err, tc.want)
		}
	}
	want := []string{"test.add:ok", "test.add:ok", "test.add:ok", "test.add:ok", "test.add:ok", "test.add:ok",
		":InvalidRequest", ":InvalidRequest", ":InvalidRequest", ":InvalidRequest"}
	if got := summary(rec.take()); !slices.Equal(got, want) {
		t.Errorf("reports %v", got)
	}
}

func TestWriteFault(t *testing.T) {
	w := httptest.NewRecorder()
	WriteFault(w, Faultf(AccessDenied, "address 10.0.0.9 is not allowed"))
	_, err := checkXMLResponse(t, w)
	if f := AsFault(err); f == nil || *f != (Fault{AccessDenied, "address 10.0.0.9 is not allowed"}) {
		t.Errorf("WriteFault round trip: %v", err)
	}
	w = httptest.NewRecorder()
	WriteFault(w, nil)
	if _, err := checkXMLResponse(t, w); AsFault(err) == nil || AsFault(err).Code != Internal {
		t.Errorf("WriteFault(nil): %v", err)
	}
}

func TestHTTPMulticall(t *testing.T) {
	s, rec := testServer(t)
	var b bytes.Buffer
	if err := EncodeCall(&b, "system.multicall", []any{[]any{mc("test.add", 1, 2), mc("test.fail")}}); err != nil {
		t.Fatal(err)
	}
	v, err := checkXMLResponse(t, post(s, b.String(), nil))
	want := []any{[]any{int64(3)}, map[string]any{"faultCode": int64(NotFound), "faultString": "looking up vm1: domain vm1 not found"}}
	if err != nil || !valueEqual(v, want) {
		t.Errorf("multicall over HTTP = %s, %v", show(v), err)
	}
	if got := summary(rec.take()); !slices.Equal(got, []string{"test.add:ok:m", "test.fail:NotFound:m", "system.multicall:ok"}) {
		t.Errorf("reports %v", got)
	}
}
