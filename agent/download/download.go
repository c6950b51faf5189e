package download

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
)

const (
	// MaxURLBytes is the longest URL CheckURL accepts.
	MaxURLBytes = 2048
	// MaxNameBytes is the longest file name CheckName accepts.
	MaxNameBytes = 255
	// MaxRedirects is how many redirects Fetch follows.
	MaxRedirects = 5

	defaultConnectTimeout = 30 * time.Second
	defaultIdleTimeout    = 60 * time.Second

	blockSize = 64 << 10
)

// progressEvery is how often Fetch logs its progress; tests shorten it.
var progressEvery = 10 * time.Second

var zeros [blockSize]byte

// Options bound and observe one Fetch.
type Options struct {
	// MaxBytes bounds the image; the caller passes the file system's free
	// space. It must be positive. A larger Content-Length is refused
	// before any byte is written, and a body that grows past it is cut
	// and removed.
	MaxBytes int64
	// ConnectTimeout bounds dialing, the TLS handshake and waiting for
	// the response header (default 30s).
	ConnectTimeout time.Duration
	// IdleTimeout aborts the transfer when no byte arrives for this long
	// (default 60s). There is no overall timeout: cancel ctx.
	IdleTimeout time.Duration
	// Client, if set, is used instead of one over http.DefaultTransport
	// (tests pass one trusting their TLS server). Fetch uses a copy with
	// its own redirect policy.
	Client *http.Client
	// Log gets one Info line at the start, one about every 10 s with the
	// bytes so far, and one at the end. Nil logs nothing.
	Log *zap.Logger
}

// Result describes the file Fetch made.
type Result struct {
	// Bytes is the size of the file.
	Bytes int64
	// SHA256 is the hex SHA-256 of its content.
	SHA256 string
}

var (
	errConnectTimeout = errors.New("connect timeout")
	errIdleTimeout    = errors.New("idle timeout")
)

// The kinds of failure a caller tells apart (besides fs.ErrExist and
// ctx.Err()).
var (
	// ErrTooLarge: the image is larger than Options.MaxBytes.
	ErrTooLarge = errors.New("image too large")
	// ErrTimeout: no response, or no byte, within the timeouts.
	ErrTimeout = errors.New("timed out")
)

// StatusError is a response other than 200 OK.
type StatusError struct {
	Code   int
	Status string
}

func (e *StatusError) Error() string { return "GET answered " + e.Status + ", not 200 OK" }

const giveURL = "give an http:// or https:// URL of the image"

// CheckURL parses rawURL and accepts it only if it is an http or https
// URL with a host, at most MaxURLBytes long. Userinfo is allowed (it is
// sent as basic authentication). Its errors never quote the URL.
func CheckURL(rawURL string) (*url.URL, error) {
	if len(rawURL) > MaxURLBytes {
		return nil, fmt.Errorf("download: the URL is %d bytes, longer than %d: %s", len(rawURL), MaxURLBytes, giveURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the whole URL, and its Err may quote a part
		// (a port, an escape, a character): keep what precedes a quote.
		why := "it does not parse"
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			why, _, _ = strings.Cut(ue.Err.Error(), `"`)
			why = strings.TrimSpace(why)
		}
		return nil, fmt.Errorf("download: bad URL (%s): %s", why, giveURL)
	}
	if u.User == nil && strings.Contains(rawURL, "@") {
		// a user:password@ whose password holds / ? or # ends the host
		// early: the rest (the password) would be taken for the path
		return nil, fmt.Errorf("download: the URL has an '@' but no user:password@ before its host: escape / ? # and @ in the user name and password (%%2F %%3F %%23 %%40), or @ elsewhere as %%40: %s", giveURL)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		if u.Scheme == "" {
			return nil, fmt.Errorf("download: the URL has no scheme: %s", giveURL)
		}
		return nil, fmt.Errorf("download: the URL's scheme is %.16q, not http or https: %s", u.Scheme, giveURL)
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("download: the URL has no host: %s", giveURL)
	}
	return u, nil
}

// partInfix is in the name of Fetch's temporary file, ".NAME.part-XXXX".
const partInfix = ".part-"

// IsPartial reports whether a file name is one of Fetch's temporary files
// (a hidden ".NAME.part-" and 16 random characters): what a transfer that
// was killed leaves, for the caller to sweep when none runs.
func IsPartial(name string) bool {
	i := strings.LastIndex(name, partInfix)
	if !strings.HasPrefix(name, ".") || i < 2 || len(name)-i-len(partInfix) != 16 {
		return false
	}
	return strings.Trim(name[i+len(partInfix):], "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") == ""
}

// CheckName accepts one plain file name: not empty, no '/' or NUL, not
// starting with '.' (so not "." or ".." nor hidden, like Fetch's
// temporary files), at most MaxNameBytes long.
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameBytes || name[0] == '.' || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("download: %.64q is not a plain file name: choose a disk id of at most %d bytes, without '/' and not starting with '.'", name, MaxNameBytes)
	}
	return nil
}

// Redact gives u as scheme://host/path, without userinfo, query or
// fragment: what Fetch logs and puts in its errors.
func Redact(u *url.URL) string {
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return fmt.Errorf("more than %d redirects: give the image's final URL", MaxRedirects)
	}
	if s := req.URL.Scheme; s != "http" && s != "https" {
		return fmt.Errorf("redirected to a %.16q URL: only http and https are followed", s)
	}
	return nil
}

// Fetch downloads rawURL into the new file name of dir and returns its
// size and digest. name must not exist in dir (the error then wraps
// fs.ErrExist); it is checked before connecting and again when the file
// is made, which never replaces anything. The body goes to a hidden
// temporary file, fsynced and hard-linked to name; on any failure or
// cancel it is removed and name is not created. When ctx is done the
// error wraps ctx.Err().
func Fetch(ctx context.Context, rawURL string, dir *os.Root, name string, o Options) (Result, error) {
	u, err := CheckURL(rawURL)
	if err != nil {
		return Result{}, err
	}
	if err := CheckName(name); err != nil {
		return Result{}, err
	}
	f := &fetch{Options: o, url: Redact(u), dir: dir, name: name, ctx: ctx}
	if f.MaxBytes <= 0 {
		return Result{}, f.errorf("Options.MaxBytes is %d: the limit must be positive", f.MaxBytes)
	}
	if f.ConnectTimeout <= 0 {
		f.ConnectTimeout = defaultConnectTimeout
	}
	if f.IdleTimeout <= 0 {
		f.IdleTimeout = defaultIdleTimeout
	}
	if f.Log == nil {
		f.Log = zap.NewNop()
	}
	f.Log = f.Log.With(zap.String("url", f.url), zap.String("file", name))
	if err := f.absent(); err != nil {
		return Result{}, err
	}
	r, err := f.run(u)
	if err != nil {
		f.Log.Warn("download failed", zap.Int64("bytes", f.n), zap.Error(err))
		return Result{}, err
	}
	d := time.Since(f.start)
	f.Log.Info("download finished", zap.Int64("bytes", r.Bytes), zap.Duration("duration", d),
		zap.Int64("bytes_per_second", rate(r.Bytes, d)), zap.String("sha256", r.SHA256))
	return r, nil
}

type fetch struct {
	Options
	url  string // redacted
	dir  *os.Root
	name string
	ctx  context.Context

	start time.Time
	n     int64 // bytes received
	total int64 // Content-Length, or -1
}

func (f *fetch) errorf(format string, a ...any) error {
	return fmt.Errorf("download %s: %w", f.url, fmt.Errorf(format, a...))
}

// absent refuses an existing destination.
func (f *fetch) absent() error {
	_, err := f.dir.Lstat(f.name)
	switch {
	case err == nil:
		return f.existErr()
	case errors.Is(err, fs.ErrNotExist):
		return nil
	}
	return f.errorf("%w", err)
}

func (f *fetch) existErr() error {
	return f.errorf("%s already exists in %s: delete it first or choose another disk id: %w", f.name, f.dir.Name(), fs.ErrExist)
}

func (f *fetch) run(u *url.URL) (Result, error) {
	rctx, cancel := context.WithCancelCause(f.ctx)
	defer cancel(nil)

	c := &http.Client{}
	if f.Client != nil {
		*c = *f.Client
	}
	c.CheckRedirect = checkRedirect
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Result{}, f.errorf("cannot make the request: %s", giveURL)
	}
	f.start = time.Now()
	f.Log.Info("download started")

	t := time.AfterFunc(f.ConnectTimeout, func() { cancel(errConnectTimeout) })
	resp, err := c.Do(req)
	t.Stop()
	if err != nil {
		return Result{}, f.failed(rctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Result{}, f.errorf("%w", &StatusError{Code: resp.StatusCode, Status: resp.Status})
	}
	f.total = resp.ContentLength
	if f.total > f.MaxBytes {
		return Result{}, f.errorf("the image is %d bytes, more than the %d bytes allowed (free space): make room in the repository first: %w", f.total, f.MaxBytes, ErrTooLarge)
	}

	tmp := "." + f.name[:min(len(f.name), MaxNameBytes-32)] + partInfix + rand.Text()[:16]
	file, err := f.dir.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return Result{}, f.errorf("%w", err)
	}
	done := false
	defer func() {
		if !done {
			file.Close()
			f.dir.Remove(tmp)
		}
	}()

	h := sha256.New()
	idle := time.AfterFunc(f.IdleTimeout, func() { cancel(errIdleTimeout) })
	idle.Stop() // armed only around each Read
	defer idle.Stop()
	body := &idleReader{r: resp.Body, t: idle, d: f.IdleTimeout}
	if err := f.copy(rctx, file, body, h); err != nil {
		return Result{}, err
	}
	if err := file.Truncate(f.n); err != nil {
		return Result{}, f.errorf("%w", err)
	}
	if err := file.Sync(); err != nil {
		return Result{}, f.errorf("%w", err)
	}
	if err := file.Close(); err != nil {
		return Result{}, f.errorf("%w", err)
	}
	done = true
	err = f.dir.Link(tmp, f.name)
	f.dir.Remove(tmp)
	if errors.Is(err, fs.ErrExist) {
		return Result{}, f.existErr()
	} else if err != nil {
		return Result{}, f.errorf("%w", err)
	}
	if d, err := f.dir.Open("."); err == nil { // best effort: persist the new name
		d.Sync()
		d.Close()
	}
	return Result{Bytes: f.n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// copy writes body to file block by block, seeking over blocks of zeros.
// Reading stops one byte past MaxBytes.
func (f *fetch) copy(rctx context.Context, file *os.File, body io.Reader, h hash.Hash) error {
	body = io.LimitReader(body, f.MaxBytes+min(1, math.MaxInt64-f.MaxBytes))
	buf := make([]byte, blockSize)
	last := f.start
	for {
		k, rerr := fill(body, buf)
		if k > 0 {
			if int64(k) > f.MaxBytes-f.n {
				return f.errorf("the image is more than the %d bytes allowed (free space): cut; make room in the repository first: %w", f.MaxBytes, ErrTooLarge)
			}
			b := buf[:k]
			h.Write(b)
			if !bytes.Equal(b, zeros[:k]) {
				if _, err := file.WriteAt(b, f.n); err != nil {
					return f.errorf("%w", err)
				}
			}
			f.n += int64(k)
			if now := time.Now(); now.Sub(last) >= progressEvery {
				last = now
				fields := []zap.Field{zap.Int64("bytes", f.n), zap.Int64("bytes_per_second", rate(f.n, now.Sub(f.start)))}
				if f.total >= 0 {
					fields = append(fields, zap.Int64("total", f.total))
				}
				f.Log.Info("download progress", fields...)
			}
		}
		switch {
		case rerr == io.EOF:
			if f.total >= 0 && f.n != f.total {
				return f.truncated()
			}
			return nil
		case rerr != nil:
			return f.failed(rctx, rerr)
		}
	}
}

func (f *fetch) truncated() error {
	if f.total < 0 {
		return f.errorf("truncated transfer: the connection ended after %d bytes: try again", f.n)
	}
	return f.errorf("truncated transfer: the connection ended after %d of %d bytes: try again", f.n, f.total)
}

// failed explains an error of the request or of reading the body.
func (f *fetch) failed(rctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) { // it quotes the URL with its query
		err = ue.Err
	}
	switch cause := context.Cause(rctx); {
	case f.ctx.Err() != nil:
		return f.errorf("stopped after %d bytes: %w", f.n, f.ctx.Err())
	case cause == errConnectTimeout:
		return f.errorf("no response within %s: check the URL's host and port, or try again later: %w", f.ConnectTimeout, ErrTimeout)
	case cause == errIdleTimeout:
		return f.errorf("no byte received for %s after %d bytes: the server stalled; try again later: %w", f.IdleTimeout, f.n, ErrTimeout)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return f.truncated()
	}
	return f.errorf("%w", err)
}

// idleReader arms a timer around each Read, so only waiting for the
// server counts, not writing to the disk.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.t.Reset(r.d)
	n, err := r.r.Read(p)
	r.t.Stop()
	return n, err
}

// fill reads into b until it is full or r fails; unlike io.ReadFull it
// passes r's error through as is.
func fill(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := r.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func rate(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}
