package domr

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// Port and User are where CloudStack's system VMs take ssh.
const (
	Port = 3922
	User = "root"
)

// MaxOutput bounds what is kept of a command's standard output and of its
// standard error, each.
const MaxOutput = 1 << 20

// MaxUpload bounds a file copied in.
const MaxUpload = 16 << 20

// MaxTimeout bounds a command's time.
const MaxTimeout = 10 * time.Minute

// MaxKey bounds a private key's PEM text.
const MaxKey = 64 << 10

// ErrKey: a key that is not an unencrypted private key.
var ErrKey = errors.New("not a private key")

// ParseKey reads a PEM private key (RSA, ECDSA, Ed25519; not encrypted).
func ParseKey(pem []byte) (ssh.Signer, error) {
	if len(pem) > MaxKey {
		return nil, fmt.Errorf("%w: the key is %d bytes, more than %d", ErrKey, len(pem), MaxKey)
	}
	s, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		var pe *ssh.PassphraseMissingError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%w: the key is encrypted; upload it without a passphrase, as CloudStack's system VM key is", ErrKey)
		}
		return nil, fmt.Errorf("%w: %v (want a PEM private key, such as CloudStack's id_rsa.cloud)", ErrKey, err)
	}
	return s, nil
}

// Target is one system VM.
type Target struct {
	Addr netip.AddrPort
	Key  ssh.Signer
	// Timeout bounds the whole exchange (dial, handshake, command);
	// 0 is MaxTimeout.
	Timeout time.Duration
	// Device, when set, is the network device the connection must leave
	// by (SO_BINDTODEVICE): the control bridge.
	Device string
}

// Result is what a command did.
type Result struct {
	RC       int
	Out, Err string
}

// dialer is a net.Dialer bound to device (when not "").
func dialer(device string) *net.Dialer {
	d := &net.Dialer{}
	if device != "" {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.BindToDevice(int(fd), device)
			}); err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("bind to %s: %w", device, serr)
			}
			return nil
		}
	}
	return d
}

// dial connects and logs in, bounded by the context (a cancel closes the
// connection, the handshake included).
func dial(ctx context.Context, t Target) (*ssh.Client, error) {
	conn, err := dialer(t.Device).DialContext(ctx, "tcp", t.Addr.String())
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", t.Addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	cfg := &ssh.ClientConfig{
		User: User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(t.Key)},
		// The system VMs' host keys change with every rebuild; the
		// caller keeps the address on the host's own control network.
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, t.Addr.String(), cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh to %s: %w", t.Addr, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

func timeoutOf(t Target) time.Duration {
	if t.Timeout <= 0 || t.Timeout > MaxTimeout {
		return MaxTimeout
	}
	return t.Timeout
}

func bounded(ctx context.Context, t Target) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, timeoutOf(t))
}

// limited keeps the first MaxOutput bytes written (a field, not an
// embedded Buffer: io.Copy would use the Buffer's ReadFrom past Write).
type limited struct{ buf bytes.Buffer }

func (l *limited) Write(p []byte) (int, error) {
	if room := MaxOutput - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limited) String() string { return l.buf.String() }

// Exec runs cmd on the target as root and answers its exit status and
// output. A command killed by a signal answers -1; one that outlives the
// timeout is an error.
func Exec(ctx context.Context, t Target, cmd string) (Result, error) {
	ctx, cancel := bounded(ctx, t)
	defer cancel()
	c, err := dial(ctx, t)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	s, err := c.NewSession()
	if err != nil {
		return Result{}, fmt.Errorf("ssh to %s: %w", t.Addr, err)
	}
	defer s.Close()
	var out, errb limited
	s.Stdout, s.Stderr = &out, &errb
	err = s.Run(cmd)
	res := Result{Out: out.String(), Err: errb.String()}
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	dl, _ := ctx.Deadline()
	switch {
	case ctx.Err() != nil || (err != nil && !time.Now().Before(dl)):
		// (the connection's deadline may fire a moment before the context's)
		return Result{}, fmt.Errorf("ssh to %s: the command did not end within %s: %w", t.Addr, timeoutOf(t), context.DeadlineExceeded)
	case err == nil:
	case errors.As(err, &ee):
		res.RC = ee.ExitStatus()
		if ee.Signal() != "" {
			res.RC = -1
		}
	case errors.As(err, &missing):
		res.RC = -1
	default:
		return Result{}, fmt.Errorf("ssh to %s: %w", t.Addr, err)
	}
	return res, nil
}

// Upload writes content into dir/name on the target by scp's protocol
// (scp -t dir/name), mode 0600 (CloudStack's files carry passwords); dir
// must exist there.
func Upload(ctx context.Context, t Target, dir, name string, content []byte) error {
	if len(content) > MaxUpload {
		return fmt.Errorf("the file is %d bytes, more than %d", len(content), MaxUpload)
	}
	if name == "" || strings.ContainsAny(name, "/\n\x00") || name == "." || name == ".." {
		return fmt.Errorf("%.64q is not a file name", name)
	}
	if !path.IsAbs(dir) || strings.ContainsAny(dir, "\n\x00") {
		return fmt.Errorf("%.64q is not an absolute folder", dir)
	}
	ctx, cancel := bounded(ctx, t)
	defer cancel()
	c, err := dial(ctx, t)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	s, err := c.NewSession()
	if err != nil {
		return fmt.Errorf("ssh to %s: %w", t.Addr, err)
	}
	defer s.Close()
	in, err := s.StdinPipe()
	if err != nil {
		return err
	}
	outp, err := s.StdoutPipe()
	if err != nil {
		return err
	}
	var errb limited
	s.Stderr = &errb
	if err := s.Start("scp -t " + quote(path.Join(dir, name))); err != nil {
		return fmt.Errorf("ssh to %s: scp: %w", t.Addr, err)
	}
	replies := bufio.NewReaderSize(io.LimitReader(outp, 64<<10), 512)
	ack := func(step string) error {
		b, err := replies.ReadByte()
		if err != nil {
			return fmt.Errorf("scp to %s: %s: %v %s", t.Addr, step, err, strings.TrimSpace(errb.String()))
		}
		if b != 0 { // 1 or 2, then a message line
			msg, _ := replies.ReadString('\n')
			return fmt.Errorf("scp to %s: %s: %s", t.Addr, step, strings.TrimSpace(msg))
		}
		return nil
	}
	if err := ack("start"); err != nil {
		return err
	}
	fmt.Fprintf(in, "C0600 %d %s\n", len(content), name)
	if err := ack("header"); err != nil {
		return err
	}
	in.Write(content)
	in.Write([]byte{0})
	if err := ack("content"); err != nil {
		return err
	}
	in.Close()
	if err := s.Wait(); err != nil {
		return fmt.Errorf("scp to %s: %v %s", t.Addr, err, strings.TrimSpace(errb.String()))
	}
	return nil
}

// quote is s for a POSIX shell, in single quotes.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// CheckPort reports whether a TCP connection to addr opens within timeout.
func CheckPort(ctx context.Context, addr netip.AddrPort, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := dialer("").DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return false
	}
	c.Close()
	return true
}
