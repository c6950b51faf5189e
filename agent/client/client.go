package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kolo/xmlrpc"
)

// DefaultSocket is where a system agent serves its unix socket.
const DefaultSocket = "/var/run/ovs-agent/agent.sock"

// Options say how to reach an agent.
type Options struct {
	// URL is http://host:port/RPC2, https://host:port/RPC2 or unix:///path.
	// Empty means the default unix socket.
	URL      string
	User     string
	Password string
	// CAFile verifies the agent's certificate; Insecure skips verification.
	CAFile   string
	Insecure bool
	// Fingerprint, when set, pins the agent's TLS certificate: the
	// SHA-256 of its leaf certificate, hex (colons allowed), as
	// agent.status shows it; any other certificate is refused, whoever
	// signed it.
	Fingerprint string
	Timeout     time.Duration
	// Header is added to every request (an agent forwarding a call marks
	// it so).
	Header http.Header
}

// Client is a connection to one agent. It is safe for concurrent use.
type Client struct {
	endpoint string // URL the requests are posted to
	display  string // the URL as the user gave it, without a password
	user     string
	password string
	header   http.Header
	http     *http.Client
}

// New checks the options and prepares a client; it does not connect.
func New(o Options) (*Client, error) {
	raw := o.URL
	if raw == "" {
		raw = "unix://" + DefaultSocket
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("agent URL %q: %w", raw, err)
	}
	c := &Client{user: o.User, password: o.Password, header: o.Header.Clone()}
	if u.User != nil {
		if c.user == "" {
			c.user = u.User.Username()
		}
		if p, ok := u.User.Password(); ok && c.password == "" {
			c.password = p
		}
		u.User = nil
	}
	c.display = u.String()
	tr := &http.Transport{
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if u.Host != "" && u.Host != "localhost" {
			path = u.Host + u.Path // unix://./relative/path
		}
		if path == "" {
			return nil, fmt.Errorf("agent URL %q: no socket path", raw)
		}
		d := &net.Dialer{Timeout: 5 * time.Second}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
		c.endpoint = "http://unix/RPC2"
		c.display = "unix://" + path
	case "http", "https":
		if u.Path == "" || u.Path == "/" {
			u.Path = "/RPC2"
		}
		c.endpoint = u.String()
		if u.Scheme == "https" {
			tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.Insecure}
			if o.CAFile != "" {
				pem, err := os.ReadFile(o.CAFile)
				if err != nil {
					return nil, fmt.Errorf("CA file: %w", err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("CA file %s: no PEM certificate in it", o.CAFile)
				}
				tc.RootCAs = pool
			}
			if fp := strings.ToLower(strings.ReplaceAll(o.Fingerprint, ":", "")); fp != "" {
				// The pin replaces the chain check: a self-signed agent
				// certificate is verified by its fingerprint alone.
				tc.InsecureSkipVerify = true
				tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
					if len(raw) == 0 {
						return errors.New("the agent sent no certificate")
					}
					sum := sha256.Sum256(raw[0])
					if got := hex.EncodeToString(sum[:]); got != fp {
						return fmt.Errorf("the agent's certificate has SHA-256 %s, not the pinned %s", got, fp)
					}
					return nil
				}
			}
			tr.TLSClientConfig = tc
		}
	default:
		return nil, fmt.Errorf("agent URL %q: scheme must be http, https or unix", raw)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	c.http = &http.Client{Transport: tr, Timeout: timeout}
	return c, nil
}

// String is the agent's address, without credentials.
func (c *Client) String() string { return c.display }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Fault is an XML-RPC fault the agent answered with.
type Fault struct {
	Code    int
	Message string
}

func (f *Fault) Error() string { return fmt.Sprintf("%s (fault %d)", f.Message, f.Code) }

// HTTPError is a non-200 answer: 401 for a bad password, 403 for an address
// the access rules refuse, 413 for a request that is too large.
type HTTPError struct {
	Status  int
	Message string // the fault message the agent sent with it, if any
}

func (e *HTTPError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("HTTP %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	}
	return fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
}

// ConnError is a failure to reach the agent at all.
type ConnError struct {
	Addr string
	Err  error
}

func (e *ConnError) Error() string {
	return fmt.Sprintf("cannot reach the agent at %s: %v", e.Addr, e.Err)
}
func (e *ConnError) Unwrap() error { return e.Err }

// Call invokes method with args and decodes the result into reply (a
// pointer, or nil to ignore it). Maps and slices decode as kolo/xmlrpc does.
func (c *Client) Call(ctx context.Context, method string, reply any, args ...any) error {
	body, err := xmlrpc.EncodeMethodCall(method, args...)
	if err != nil {
		return fmt.Errorf("encode %s call: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("User-Agent", "ovm")
	for k, v := range c.header {
		req.Header[k] = v
	}
	// No password, no credentials: an empty password would only count as
	// a failed login against this address (and slow its next, right one).
	if c.password != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &ConnError{Addr: c.display, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return &ConnError{Addr: c.display, Err: fmt.Errorf("read answer: %w", err)}
	}
	r := xmlrpc.Response(data)
	if resp.StatusCode != http.StatusOK {
		he := &HTTPError{Status: resp.StatusCode}
		var fe xmlrpc.FaultError
		if errors.As(r.Err(), &fe) {
			he.Message = fe.String
		}
		return he
	}
	if err := r.Err(); err != nil {
		var fe xmlrpc.FaultError
		if errors.As(err, &fe) {
			return &Fault{Code: fe.Code, Message: fe.String}
		}
		return fmt.Errorf("%s: bad answer: %w", method, err)
	}
	if reply == nil {
		return nil
	}
	if err := r.Unmarshal(reply); err != nil {
		return fmt.Errorf("%s: decode answer: %w", method, err)
	}
	return nil
}

// IsAuth reports whether err means the agent refused the caller (password or
// access rules).
func IsAuth(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden)
}

// IsConn reports whether err means the agent could not be reached.
func IsConn(err error) bool {
	var ce *ConnError
	return errors.As(err, &ce)
}

// Hint suggests what to do about err, or "".
func Hint(err error) string {
	var he *HTTPError
	switch {
	case errors.As(err, &he) && he.Status == http.StatusUnauthorized:
		return "check --user and --password-file (or OVM_USER / OVM_PASSWORD_FILE)"
	case errors.As(err, &he) && he.Status == http.StatusForbidden:
		return "this address is refused by the agent's allow/deny rules (ovs-agent configure)"
	case IsConn(err) && strings.Contains(err.Error(), "permission denied"):
		return "the local socket is for root: run as root, or use --url https://HOST:8899"
	case IsConn(err):
		return "is the agent running? (ovs-agent status); pass --url to reach another agent"
	}
	return ""
}
