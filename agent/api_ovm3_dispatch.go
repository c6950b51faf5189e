package agent

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/agent/poolmaster"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// ovm3DispatchTimeout bounds a dispatched call.
const ovm3DispatchTimeout = 2 * time.Minute

// ovm3DispatchMethods: agent 3's dispatch, the master forwarding a call to
// another agent of its pool.
func (a *Agent) ovm3DispatchMethods(names map[string]bool) []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "dispatch", Result: xmlrpc.Nil, Variadic: true,
			Params: []xmlrpc.Param{xmlrpc.Req("uri", xmlrpc.String), xmlrpc.Req("func", xmlrpc.String)},
			Help:   "Oracle VM Agent 3: call func on the agent at uri (http:// or https://user:password@host:port/api/3/) with the further parameters (or one array of them, as CloudStack sends them), and answer what it answers. func must be one of the Oracle VM Agent 3 calls this agent serves, not dispatch itself; the call is bounded to 2 minutes. The peer's certificate is not verified (agent 3's are self-signed); integers come back as <int> when they fit in 32 bits.",
			Run:    func(ctx context.Context, args xmlrpc.Args) (any, error) { return a.ovm3Dispatch(ctx, args, names) }},
	}
}

func (a *Agent) ovm3Dispatch(ctx context.Context, args xmlrpc.Args, names map[string]bool) (any, error) {
	raw, fn := args.String(0), args.String(1)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "dispatch: the uri must be http://HOST:PORT/ or https://HOST:PORT/ (with user:password@ if the agent needs them)")
	}
	display := u.Redacted()
	if !names[fn] || fn == "dispatch" {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "dispatch: %q is not an Oracle VM Agent 3 call this agent forwards (dispatch itself is not)", fn)
	}
	params := []any(args.All()[2:])
	if len(params) == 1 {
		if l, ok := params[0].([]any); ok {
			params = l // CloudStack sends the function's arguments as one array
		}
	}
	host, _ := os.Hostname()
	hdr := http.Header{}
	hdr.Set(poolmaster.ForwardedHeader, host)
	c, err := client.New(client.Options{URL: raw, Insecure: true, Timeout: ovm3DispatchTimeout, Header: hdr})
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "dispatch to %s: %v", display, err)
	}
	cctx, cancel := context.WithTimeout(ctx, ovm3DispatchTimeout)
	defer cancel()
	var res any
	if err := c.Call(cctx, fn, &res, params...); err != nil {
		var f *client.Fault
		if errors.As(err, &f) {
			return nil, xmlrpc.Faultf(f.Code, "dispatch %s to %s: %s", fn, display, f.Message)
		}
		var he *client.HTTPError
		if errors.As(err, &he) && he.Status == http.StatusUnauthorized {
			return nil, xmlrpc.Faultf(xmlrpc.AuthFailed, "dispatch %s to %s: the agent there refused the credentials in the uri: %s", fn, display, he.Message)
		}
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "dispatch %s to %s: %v", fn, display, redactURL(err.Error(), u))
	}
	return res, nil
}

// redactURL keeps the uri's password out of a message.
func redactURL(msg string, u *url.URL) string {
	if p, ok := u.User.Password(); ok && p != "" {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	return msg
}
