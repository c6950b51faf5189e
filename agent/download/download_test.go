package download

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestCheckURL(t *testing.T) {
	for _, ok := range []string{
		"http://example.com/disk.img",
		"https://example.com:8443/a/b.raw?x=1",
		"HTTP://example.com/x",
		"http://user:pass@127.0.0.1/x",
		"http://[::1]:80/x",
	} {
		u, err := CheckURL(ok)
		if err != nil {
			t.Errorf("CheckURL(%q): %v", ok, err)
		} else if u.Scheme != "http" && u.Scheme != "https" {
			t.Errorf("CheckURL(%q): scheme %q", ok, u.Scheme)
		}
	}
	for _, bad := range []string{
		"",
		"example.com/disk.img",
		"//example.com/disk.img",
		"ftp://example.com/disk.img",
		"file:///etc/passwd",
		"http:///disk.img",
		"http:disk.img",
		"http://:80/disk.img",
		"http://us er:secret@host/x",
		"http://host/%zzsecret",
		"http://host:port/x?token=secret",
		"http://user:secretpw/x",
		"http://secret\x01/x",
		"http://[secret/x",
		"javascript:alert(secret)",
		"http://host/" + strings.Repeat("a", MaxURLBytes),
	} {
		_, err := CheckURL(bad)
		if err == nil {
			t.Errorf("CheckURL(%q) accepted it", bad)
			continue
		}
		if !strings.Contains(err.Error(), giveURL) {
			t.Errorf("CheckURL(%q): %q does not say what to do", bad, err)
		}
		if strings.Contains(err.Error(), "secret") || (len(bad) > 8 && strings.Contains(err.Error(), bad)) {
			t.Errorf("CheckURL(%q): %q quotes the URL", bad, err)
		}
	}
}

func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"http://h/p", "https://u:p@h:1/p?q#f", "ftp://h", "http://[::1", "http:x", "//h/p", "http://%zz/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := CheckURL(s)
		if err != nil {
			if u != nil {
				t.Fatal("URL and error")
			}
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Hostname() == "" || len(s) > MaxURLBytes {
			t.Fatalf("CheckURL(%q) accepted %#v", s, u)
		}
		if r := Redact(u); strings.Contains(r, "?") || u.User != nil && strings.Contains(r, u.User.String()+"@") {
			t.Fatalf("Redact(%q) = %q", s, r)
		}
	})
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"0004fb0000120000a1b2c3d4e5f60718.img", "disk", "a.b", strings.Repeat("x", MaxNameBytes)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", ".hidden", "a/b", "/abs", "../x", "a\x00b", strings.Repeat("x", MaxNameBytes+1)} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) accepted it", bad)
		}
	}
}

// setup opens a fresh directory as a root.
func setup(t *testing.T) (*os.Root, string) {
	t.Helper()
	d := t.TempDir()
	r, err := os.OpenRoot(d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, d
}

// only checks that dir holds exactly the given names (no temporary left).
func only(t *testing.T, d string, names ...string) {
	t.Helper()
	es, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Name())
	}
	if fmt.Sprint(got) != fmt.Sprint(names) {
		t.Errorf("directory holds %q, want %q", got, names)
	}
}

func serve(t *testing.T, body []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var opts = Options{MaxBytes: 1 << 30}

// A plain GET lands in the file, with its size and digest, nothing else left.
func TestFetch(t *testing.T) {
	body := randBytes(300_000)
	srv := serve(t, body)
	dir, d := setup(t)
	r, err := Fetch(t.Context(), srv.URL+"/disk.img", dir, "disk.img", opts)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(d + "/disk.img")
	if !bytes.Equal(got, body) || r.Bytes != int64(len(body)) || r.SHA256 != sum(body) {
		t.Errorf("got %d bytes, result %+v", len(got), r)
	}
	only(t, d, "disk.img")
}

// https works with the caller's client (its TLS roots); without them the
// certificate is refused.
func TestFetchHTTPS(t *testing.T) {
	body := randBytes(10_000)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	t.Cleanup(srv.Close)
	dir, d := setup(t)
	if _, err := Fetch(t.Context(), srv.URL+"/x", dir, "a", opts); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: %v", err)
	}
	o := opts
	o.Client = srv.Client()
	if r, err := Fetch(t.Context(), srv.URL+"/x", dir, "b", o); err != nil || r.SHA256 != sum(body) {
		t.Fatal(r, err)
	}
	only(t, d, "b")
}

// An existing destination is refused before connecting.
func TestFetchExists(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	dir, d := setup(t)
	os.WriteFile(d+"/disk", []byte("old"), 0o644)
	os.Symlink("nowhere", d+"/link")
	for _, name := range []string{"disk", "link"} {
		_, err := Fetch(t.Context(), srv.URL, dir, name, opts)
		if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "delete it first or choose another disk id") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests made", hits.Load())
	}
	if b, _ := os.ReadFile(d + "/disk"); string(b) != "old" {
		t.Errorf("disk now holds %q", b)
	}
}

// A destination that appears during the transfer is not replaced.
func TestFetchExistsAtEnd(t *testing.T) {
	dir, d := setup(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		os.WriteFile(d+"/disk", []byte("theirs"), 0o644)
		w.Write([]byte("mine"))
	}))
	t.Cleanup(srv.Close)
	_, err := Fetch(t.Context(), srv.URL, dir, "disk", opts)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("got %v", err)
	}
	if b, _ := os.ReadFile(d + "/disk"); string(b) != "theirs" {
		t.Errorf("disk now holds %q", b)
	}
	only(t, d, "disk")
}

// Anything but 200 fails with the status line.
func TestFetchStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.Split(r.URL.Path, "/")[1])
		w.WriteHeader(code)
		w.Write([]byte("some body"))
	}))
	t.Cleanup(srv.Close)
	dir, d := setup(t)
	for _, code := range []int{404, 204, 206, 500} {
		_, err := Fetch(t.Context(), srv.URL+"/"+strconv.Itoa(code)+"/a%20b%2Fc", dir, "disk", opts)
		want := fmt.Sprintf("download %s/%d/a%%20b%%2Fc: GET answered %d %s, not 200 OK", srv.URL, code, code, http.StatusText(code))
		var se *StatusError
		if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.As(err, &se) || se.Code != code {
			t.Errorf("%d: %v, want %q", code, err, want)
		}
	}
	only(t, d)
}

// Up to MaxRedirects redirects are followed, only to http and https.
func TestFetchRedirects(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ftp" {
			http.Redirect(w, r, "ftp://127.0.0.1/secret", http.StatusFound)
			return
		}
		n, _ := strconv.Atoi(r.URL.Path[1:])
		if n > 0 {
			http.Redirect(w, r, "/"+strconv.Itoa(n-1), http.StatusFound)
			return
		}
		w.Write([]byte("image"))
	}))
	t.Cleanup(srv.Close)
	dir, d := setup(t)
	if r, err := Fetch(t.Context(), srv.URL+"/5", dir, "five", opts); err != nil || r.Bytes != 5 {
		t.Errorf("5 redirects: %v %v", r, err)
	}
	if _, err := Fetch(t.Context(), srv.URL+"/6", dir, "six", opts); err == nil || !strings.Contains(err.Error(), "more than 5 redirects") {
		t.Errorf("6 redirects: %v", err)
	}
	_, err := Fetch(t.Context(), srv.URL+"/ftp", dir, "ftp", opts)
	if err == nil || !strings.Contains(err.Error(), `redirected to a "ftp" URL`) || strings.Contains(err.Error(), "secret") {
		t.Errorf("redirect to ftp: %v", err)
	}
	only(t, d, "five")
}

// A Content-Length past MaxBytes is refused before a file is made; a body
// of unknown length past it is cut; exactly MaxBytes is fine.
func TestFetchMaxBytes(t *testing.T) {
	body := randBytes(200_000)
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/length" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		for i := 0; i < len(body); i += 1000 { // unknown length: chunked
			n, err := w.Write(body[i : i+1000])
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	dir, d := setup(t)
	o := opts
	o.MaxBytes = int64(len(body)) - 1
	_, err := Fetch(t.Context(), srv.URL+"/length", dir, "a", o)
	want := fmt.Sprintf("the image is %d bytes, more than the %d bytes allowed", len(body), o.MaxBytes)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), want) {
		t.Errorf("Content-Length: %v", err)
	}
	_, err = Fetch(t.Context(), srv.URL+"/chunked", dir, "b", o)
	want = fmt.Sprintf("the image is more than the %d bytes allowed", o.MaxBytes)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), want) {
		t.Errorf("chunked: %v", err)
	}
	only(t, d)
	o.MaxBytes = int64(len(body))
	for _, p := range []string{"/length", "/chunked"} {
		if r, err := Fetch(t.Context(), srv.URL+p, dir, p[1:], o); err != nil || r.SHA256 != sum(body) {
			t.Errorf("%s at the limit: %v %v", p, r, err)
		}
	}
	only(t, d, "chunked", "length")
	if _, err := Fetch(t.Context(), srv.URL, dir, "c", Options{}); err == nil || !strings.Contains(err.Error(), "MaxBytes") {
		t.Errorf("no MaxBytes: %v", err)
	}
}

// A body shorter than its Content-Length is a truncated transfer.
func TestFetchTruncated(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write(randBytes(70_000))
	}))
	t.Cleanup(srv.Close)
	dir, d := setup(t)
	_, err := Fetch(t.Context(), srv.URL, dir, "disk", opts)
	if err == nil || !strings.Contains(err.Error(), "truncated transfer") || !strings.Contains(err.Error(), "of 100000 bytes") {
		t.Errorf("got %v", err)
	}
	only(t, d)
}

// stall serves a few bytes, then blocks until the test ends or the
// client goes away.
func stall(t *testing.T, started chan<- struct{}) *httptest.Server {
	end := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("some bytes"))
		w.(http.Flusher).Flush()
		if started != nil {
			started <- struct{}{}
		}
		select {
		case <-end:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(end) }) // runs before srv.Close
	return srv
}

// A server that stalls after its headers fails within IdleTimeout.
func TestFetchIdleTimeout(t *testing.T) {
	srv := stall(t, nil)
	dir, d := setup(t)
	o := opts
	o.IdleTimeout = 200 * time.Millisecond
	start := time.Now()
	_, err := Fetch(t.Context(), srv.URL, dir, "disk", o)
	if el := time.Since(start); el < o.IdleTimeout || el > 2*time.Second {
		t.Errorf("failed after %s", el)
	}
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "no byte received for 200ms after 10 bytes") {
		t.Errorf("got %v", err)
	}
	only(t, d)
}

// A server that does not answer fails within ConnectTimeout.
func TestFetchConnectTimeout(t *testing.T) {
	end := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-end:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(end) })
	dir, d := setup(t)
	o := opts
	o.ConnectTimeout = 200 * time.Millisecond
	start := time.Now()
	_, err := Fetch(t.Context(), srv.URL, dir, "disk", o)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("failed after %s", el)
	}
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "no response within 200ms") {
		t.Errorf("got %v", err)
	}
	only(t, d)
}

// Cancelling ctx mid-transfer removes the temporary file; the error wraps
// ctx.Err().
func TestFetchCancel(t *testing.T) {
	started := make(chan struct{}, 1)
	srv := stall(t, started)
	dir, d := setup(t)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-started
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	_, err := Fetch(ctx, srv.URL, dir, "disk", opts)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v", err)
	}
	only(t, d)
	if _, err := Fetch(ctx, srv.URL, dir, "disk", opts); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before: %v", err)
	}
}

// Blocks of zeros are not written: an all-zero image stays a hole.
func TestFetchSparse(t *testing.T) {
	body := make([]byte, 8<<20)
	srv := serve(t, body)
	dir, d := setup(t)
	r, err := Fetch(t.Context(), srv.URL, dir, "disk", opts)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(d + "/disk")
	if err != nil {
		t.Fatal(err)
	}
	used := st.Sys().(*syscall.Stat_t).Blocks * 512
	if st.Size() != int64(len(body)) || used > 1<<20 || r.SHA256 != sum(body) {
		t.Errorf("size %d, %d bytes allocated, result %+v", st.Size(), used, r)
	}
}

// A mixed body (data, zero blocks, unaligned edges, zeros at the end) is
// written back exactly.
func TestFetchMixed(t *testing.T) {
	var body []byte
	for _, part := range []struct {
		zero bool
		n    int
	}{{false, 1000}, {true, 3 * blockSize}, {false, blockSize + 17}, {true, 5000}, {false, 1}, {true, 2*blockSize - 18}, {false, 300_000}, {true, 4*blockSize + 123}} {
		if part.zero {
			body = append(body, make([]byte, part.n)...)
		} else {
			body = append(body, randBytes(part.n)...)
		}
	}
	srv := serve(t, body)
	dir, d := setup(t)
	r, err := Fetch(t.Context(), srv.URL, dir, "disk", opts)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(d + "/disk")
	if sum(got) != sum(body) || r.SHA256 != sum(body) || r.Bytes != int64(len(body)) {
		t.Errorf("got %d bytes %s, result %+v, want %d bytes %s", len(got), sum(got), r, len(body), sum(body))
	}
}

// Userinfo and query reach the server but no log field nor error.
func TestFetchSecrets(t *testing.T) {
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = 0 // a progress line per block
	var auth atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		auth.Store(u == "user" && p == "pass" && r.URL.Query().Get("token") == "secret")
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "ftp://user:pass@127.0.0.1/x?token=secret", http.StatusFound)
		case "/missing":
			http.NotFound(w, r)
		default:
			w.Write(randBytes(5 * blockSize))
		}
	}))
	t.Cleanup(srv.Close)
	core, logs := observer.New(zapcore.DebugLevel)
	o := opts
	o.Log = zap.New(core)
	dir, _ := setup(t)
	host := strings.TrimPrefix(srv.URL, "http://")
	if _, err := Fetch(t.Context(), "http://user:pass@"+host+"/disk?token=secret", dir, "disk", o); err != nil || !auth.Load() {
		t.Fatalf("%v, authenticated: %v", err, auth.Load())
	}
	var errs []error
	for _, c := range []struct{ url, name string }{
		{"http://user:pass@" + host + "/missing?token=secret", "a"},
		{"http://user:pass@" + host + "/redirect?token=secret", "b"},
		{"http://user:pass@" + host + "/disk?token=secret", "disk"}, // exists
		{"http://user:pass@127.0.0.1:1/disk?token=secret", "c"},     // refused
		{"ftp://user:pass@" + host + "/disk?token=secret", "d"},
		{"http://user:pass@" + host + "/disk?token=secret", ".e"},
	} {
		_, err := Fetch(t.Context(), c.url, dir, c.name, o)
		if err == nil {
			t.Errorf("%s: no error", c.url)
			continue
		}
		errs = append(errs, err)
	}
	leaks := func(s string) bool {
		return strings.Contains(s, "pass") || strings.Contains(s, "secret") || strings.Contains(s, "user")
	}
	for _, err := range errs {
		if err != nil && leaks(err.Error()) {
			t.Errorf("error %q", err)
		}
	}
	var progress int
	for _, e := range logs.All() {
		if leaks(e.Message) || leaks(fmt.Sprint(e.ContextMap())) {
			t.Errorf("logged %q %v", e.Message, e.ContextMap())
		}
		if e.Message == "download progress" {
			progress++
		}
	}
	if progress < 5 || logs.FilterMessage("download started").Len() < 1 || logs.FilterMessage("download finished").Len() != 1 || logs.FilterMessage("download failed").Len() != 3 {
		t.Errorf("%d progress lines in %d", progress, logs.Len())
	}
}

func TestIsPartial(t *testing.T) {
	for name, want := range map[string]bool{
		".disk.img.part-ABCDEFGHIJKLMNOP": true,
		".d.part-2345672345672345":        true,
		"disk.img.part-ABCDEFGHIJKLMNOP":  false, // not hidden
		".disk.img.part-ABCDEFGHIJKLMNO":  false, // 15
		".disk.img.part-abcdefghijklmnop": false,
		".disk.img":                       false,
		".part-ABCDEFGHIJKLMNOP":          false,
	} {
		if IsPartial(name) != want {
			t.Errorf("IsPartial(%q) = %v", name, !want)
		}
	}
}

func TestCheckURLPasswordWithSlash(t *testing.T) {
	for _, u := range []string{"http://admin:1234/5678@files.example/img.raw", "https://files.example/a@b"} {
		_, err := CheckURL(u)
		if err == nil || strings.Contains(err.Error(), "1234") || strings.Contains(err.Error(), "5678") || !strings.Contains(err.Error(), "%2F") {
			t.Errorf("CheckURL(%q): %v", u, err)
		}
	}
}
