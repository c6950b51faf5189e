package agent

import (
	"context"
	"os"
	"runtime"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
	"github.com/ovs-agent/ovs-agent/agent/tlscert"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config"
)

// ProtocolVersion is the version of the API and relocation protocol; peers
// and managers compare it. It changes when a method changes incompatibly.
const ProtocolVersion = 1

func (a *Agent) newRPCServer(cfg *config.Config) *xmlrpc.Server {
	lim := xmlrpc.DefaultLimits()
	if cfg.Server.MaxRequestBytes > 0 {
		lim.MaxBodyBytes = cfg.Server.MaxRequestBytes
	}
	s := xmlrpc.NewServer(xmlrpc.WithLimits(lim))
	s.OnCall = a.audit
	s.OnPanic = func(ctx context.Context, method string, recovered any, stack []byte) {
		a.log.Error("API handler panicked", zap.String("method", method), zap.Any("panic", recovered), zap.ByteString("stack", stack))
	}
	s.Register(xmlrpc.Method{
		Name:       "agent.version",
		Help:       "The agent's version: a struct with version, protocol (API and relocation protocol number), go (toolchain) and build details.",
		Signatures: [][]string{{"struct"}},
		Handler:    a.apiVersion,
	})
	s.Register(xmlrpc.Method{
		Name:       "agent.ping",
		Help:       "Answers true when the agent is up; for health checks and round-trip measurements.",
		Signatures: [][]string{{"boolean"}},
		Handler: func(_ context.Context, p xmlrpc.Params) (any, error) {
			if err := p.Want(0); err != nil {
				return nil, err
			}
			return true, nil
		},
	})
	s.Register(xmlrpc.Method{
		Name:       "agent.echo",
		Help:       "Returns its parameters unchanged, as an array; for checking that a client encodes and decodes every XML-RPC type (int, i8, boolean, string, double, dateTime.iso8601, base64, struct, array, nil) the way the agent does.",
		Signatures: [][]string{{"array"}},
		Handler:    func(_ context.Context, p xmlrpc.Params) (any, error) { return append([]any{}, p...), nil },
	})
	s.Register(xmlrpc.Method{
		Name:       "agent.status",
		Help:       "What the running agent serves: pid, start time, uptime, configuration source, endpoints, TLS certificate fingerprint, and who is calling.",
		Signatures: [][]string{{"struct"}},
		Handler:    a.apiStatus,
	})
	s.Register(xmlrpc.Method{
		Name:       "host.info",
		Help:       "This host: host name, CPU count/model/vendor/flags, memory total/free/available (bytes), kernel, whether KVM is usable and why not, agent version and uptime.",
		Signatures: [][]string{{"struct"}},
		Handler:    a.apiHostInfo,
	})
	s.Register(xmlrpc.Method{
		Name:       "host.stats",
		Help:       "Current load of this host: load averages, CPU busy percent since the previous call (at least 1 s), memory and swap (bytes), running processes, uptime.",
		Signatures: [][]string{{"struct"}},
		Handler:    a.apiHostStats,
	})
	a.registerDomainMethods(s)
	a.registerMigrationMethods(s)
	a.registerRepositoryMethods(s)
	return s
}

type versionInfo struct {
	Version  string `xmlrpc:"version"`
	Protocol int    `xmlrpc:"protocol"`
	Go       string `xmlrpc:"go"`
	OS       string `xmlrpc:"os"`
	Arch     string `xmlrpc:"arch"`
}

func (a *Agent) apiVersion(_ context.Context, p xmlrpc.Params) (any, error) {
	if err := p.Want(0); err != nil {
		return nil, err
	}
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

func (a *Agent) apiStatus(ctx context.Context, p xmlrpc.Params) (any, error) {
	if err := p.Want(0); err != nil {
		return nil, err
	}
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

type hostInfo struct {
	*hostinfo.Info
	AgentVersion  string  `xmlrpc:"agent_version"`
	AgentUptime   float64 `xmlrpc:"agent_uptime_seconds"`
	AgentProtocol int     `xmlrpc:"agent_protocol"`
}

func (a *Agent) apiHostInfo(_ context.Context, p xmlrpc.Params) (any, error) {
	if err := p.Want(0); err != nil {
		return nil, err
	}
	info, err := hostinfo.Read(hostinfo.DefaultPaths)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "read host information: %v", err)
	}
	return hostInfo{Info: info, AgentVersion: a.opts.Version, AgentUptime: time.Since(a.started).Seconds(), AgentProtocol: ProtocolVersion}, nil
}

func (a *Agent) apiHostStats(_ context.Context, p xmlrpc.Params) (any, error) {
	if err := p.Want(0); err != nil {
		return nil, err
	}
	st, err := a.sampler.Sample()
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "read host statistics: %v", err)
	}
	return st, nil
}
