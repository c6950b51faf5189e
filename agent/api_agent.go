package agent

import (
	"context"
	"os"
	"runtime"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/tlscert"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// agentMethods is the agent namespace: what this agent is and serves.
func (a *Agent) agentMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "agent.version", Result: xmlrpc.Struct, Run: a.apiVersion,
			Help: "The agent's version: a struct with version, protocol (API and relocation protocol number), go (toolchain) and build details."},
		{Name: "agent.ping", Result: xmlrpc.Boolean,
			Help: "Answers true when the agent is up; for health checks and round-trip measurements.",
			Run:  func(context.Context, xmlrpc.Args) (any, error) { return true, nil }},
		{Name: "agent.echo", Result: xmlrpc.Array, Variadic: true,
			Help: "Returns its parameters unchanged, as an array; for checking that a client encodes and decodes every XML-RPC type (int, i8, boolean, string, double, dateTime.iso8601, base64, struct, array, nil) the way the agent does.",
			Run:  func(_ context.Context, args xmlrpc.Args) (any, error) { return []any(args.All()), nil }},
		{Name: "agent.status", Result: xmlrpc.Struct, Run: a.apiStatus,
			Help: "What the running agent serves: pid, start time, uptime, configuration source, endpoints, TLS certificate fingerprint, and who is calling."},
	}
}

type versionInfo struct {
	Version  string `xmlrpc:"version"`
	Protocol int    `xmlrpc:"protocol"`
	Go       string `xmlrpc:"go"`
	OS       string `xmlrpc:"os"`
	Arch     string `xmlrpc:"arch"`
}

func (a *Agent) apiVersion(context.Context, xmlrpc.Args) (any, error) {
	return versionInfo{Version: a.opts.Version, Protocol: ProtocolVersion, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}, nil
}

type statusInfo struct {
	Version        string     `xmlrpc:"version"`
	PID            int        `xmlrpc:"pid"`
	Started        time.Time  `xmlrpc:"started"`
	UptimeSeconds  float64    `xmlrpc:"uptime_seconds"`
	Config         string     `xmlrpc:"config"`
	Endpoints      []Endpoint `xmlrpc:"endpoints"`
	TLSFingerprint string     `xmlrpc:"tls_sha256,omitempty"`
	PasswordSet    bool       `xmlrpc:"password_set"`
	Caller         string     `xmlrpc:"caller"`
}

func (a *Agent) apiStatus(ctx context.Context, _ xmlrpc.Args) (any, error) {
	c := CallerFrom(ctx)
	return statusInfo{
		Version:        a.opts.Version,
		PID:            os.Getpid(),
		Started:        a.started.UTC().Truncate(time.Second),
		UptimeSeconds:  time.Since(a.started).Seconds(),
		Config:         a.opts.ConfigName,
		Endpoints:      a.Endpoints(),
		TLSFingerprint: tlscert.Fingerprint(a.cert.Load()),
		PasswordSet:    a.state.Load().verifier.Enabled(),
		Caller:         c.User + "@" + c.Transport + ":" + c.Peer,
	}, nil
}
