package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/auth"
	"github.com/ovs-agent/ovs-agent/agent/poolmaster"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// Caller says who is making an API call, for handlers and the audit log.
type Caller struct {
	Transport string // "tcp", "https" or "unix"
	Peer      string // address, or "uid=N pid=N" on the unix socket
	User      string
	// ForwardedBy is the pool member that forwarded the call (or
	// dispatched it) on its own caller's behalf, from the
	// poolmaster.ForwardedHeader of an authenticated request.
	ForwardedBy string
}

type callerKey struct{}
type connKey struct{}

// CallerFrom returns the caller of the API call running in ctx.
func CallerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// connContext remembers each connection so the handler can tell its kind and
// read unix peer credentials.
func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

const realm = `Basic realm="ovs-agent", charset="UTF-8"`

// ServeHTTP authenticates the request and hands it to the XML-RPC server.
func (a *Agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, _ := r.Context().Value(connKey{}).(net.Conn)
	var caller Caller
	switch {
	case conn == nil:
		a.deny(w, http.StatusForbidden, xmlrpc.Faultf(xmlrpc.AccessDenied, "connection of unknown kind"))
		return
	case isUnix(conn):
		caller.Transport = "unix"
		uid, pid, err := peerCred(conn)
		if err != nil {
			a.log.Warn("unix peer credentials unreadable", zap.Error(err))
		}
		caller.Peer = fmt.Sprintf("uid=%d pid=%d", uid, pid)
		if err == nil && uid == 0 {
			// Local root needs no password on the unix socket.
			caller.User = "root"
			break
		}
		user, ok := a.checkPassword(w, r, caller.Peer, nil)
		if !ok {
			return
		}
		caller.User = user
	default:
		caller.Transport = "tcp"
		if r.TLS != nil {
			caller.Transport = "https"
		}
		addr, _ := remoteAddr(conn)
		caller.Peer = addr.String()
		// Rules may have changed on reload since this connection was accepted.
		if d := a.checker.Check(r.Context(), *a.policy.Load(), addr); !d.Allowed {
			a.log.Warn("request refused by access rules", zap.String("peer", caller.Peer), zap.String("reason", d.Reason()))
			a.deny(w, http.StatusForbidden, xmlrpc.Faultf(xmlrpc.AccessDenied, "%s may not use this agent (%s)", caller.Peer, d.Reason()))
			return
		}
		user, ok := a.checkPassword(w, r, caller.Peer, &addr)
		if !ok {
			return
		}
		authenticated(conn)
		caller.User = user
	}
	if by := r.Header.Get(poolmaster.ForwardedHeader); by != "" && len(by) <= 128 {
		caller.ForwardedBy = by
	}
	ctx := context.WithValue(r.Context(), callerKey{}, caller)
	ctx = context.WithValue(ctx, longCallKey{}, func() {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	})
	a.rpc.ServeHTTP(w, r.WithContext(ctx))
}

type longCallKey struct{}

// longCall lifts the API server's write timeout (10 minutes)
// for the call of ctx: a call that copies or moves a whole image (copy_file,
// import_virtual_disk, migrate_vm) answers when it is done, however long
// that takes, and its answer still reaches the caller. Each such call has
// bounds of its own (the copy's end, an idle timeout, the migration's
// progress timeout).
func longCall(ctx context.Context) {
	if f, ok := ctx.Value(longCallKey{}).(func()); ok {
		f()
	}
}

func isUnix(c net.Conn) bool {
	_, ok := c.(*net.UnixConn)
	return ok
}

// checkPassword verifies HTTP Basic credentials; on failure it has already
// answered the request.
func (a *Agent) checkPassword(w http.ResponseWriter, r *http.Request, peer string, addr *netip.Addr) (string, bool) {
	st := a.state.Load()
	if !st.verifier.Enabled() {
		a.log.Warn("login refused: no API password is set", zap.String("peer", peer))
		a.deny(w, http.StatusUnauthorized, xmlrpc.Faultf(xmlrpc.AuthFailed, "no API password is set on this host; set one with `ovs-agent configure` or use the local unix socket as root"))
		return "", false
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		a.deny(w, http.StatusUnauthorized, xmlrpc.Faultf(xmlrpc.AuthFailed, "this agent needs a user name and password (HTTP Basic authentication)"))
		return "", false
	}
	switch err := st.verifier.Check(user, pass); err {
	case nil:
		if addr != nil {
			a.throttle.Succeeded(*addr)
		}
		return user, true
	case auth.ErrBusy:
		// Not a failed login: the password was never looked at.
		a.log.Debug("login refused: login workers busy", zap.String("peer", peer))
		w.Header().Set("Retry-After", "1")
		a.deny(w, http.StatusServiceUnavailable, xmlrpc.Faultf(xmlrpc.Busy, "%s", err.Error()))
		return "", false
	}
	var delay time.Duration
	var n int
	if addr != nil {
		delay, n = a.throttle.Failed(*addr)
	} else {
		delay, n = st.failedDelay, 1
	}
	a.metrics.LoginFailed()
	a.log.Warn("login failed", zap.String("peer", peer), zap.String("user", user),
		zap.Int("consecutive_failures", n), zap.Duration("delay", delay))
	// Read a small body to its end, so that the server watches the
	// connection during the delay and a peer that hangs up ends the wait
	// (an unread body keeps the request, and shutdown, waiting it out).
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
	select {
	case <-time.After(delay):
	case <-r.Context().Done():
		return "", false
	}
	a.deny(w, http.StatusUnauthorized, xmlrpc.Faultf(xmlrpc.AuthFailed, "wrong user name or password"))
	return "", false
}

func (a *Agent) deny(w http.ResponseWriter, status int, f *xmlrpc.Fault) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", realm)
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	_ = xmlrpc.EncodeFault(w, f)
}

// audit writes the one line per API call.
func (a *Agent) audit(ctx context.Context, info xmlrpc.CallInfo) {
	c := CallerFrom(ctx)
	if c.Transport == "" {
		// The agent's own self-checks (the watchdog) are not API calls.
		if info.Fault != nil {
			a.log.Debug("internal call failed", zap.String("method", info.Method), zap.String("fault", info.Fault.Message))
		}
		return
	}
	a.metrics.APICall(info.Method, info.Fault != nil, info.Duration)
	fields := []zap.Field{
		zap.String("method", info.Method),
		zap.String("transport", c.Transport),
		zap.String("peer", c.Peer),
		zap.String("user", c.User),
		zap.Duration("duration", info.Duration),
	}
	if c.ForwardedBy != "" {
		fields = append(fields, zap.String("forwarded_by", c.ForwardedBy))
	}
	if info.InMulticall {
		fields = append(fields, zap.Bool("multicall", true))
	}
	if info.Fault != nil {
		fields = append(fields, zap.String("result", "fault"), zap.Int("fault_code", info.Fault.Code), zap.String("fault", info.Fault.Message))
	} else {
		fields = append(fields, zap.String("result", "ok"))
	}
	a.audLog.Info("api call", fields...)
}
