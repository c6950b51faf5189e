package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/auth"
	"github.com/ovs-agent/ovs-agent/agent/tlscert"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/repository"
)

type relocListener struct {
	l   net.Listener
	tls *tls.Config
}

// listenRelocation opens (or takes from socket activation) the relocation
// listeners: plain on [relocation] port, TLS on ssl_port.
func (a *Agent) listenRelocation(cfg *config.Config, activated map[string][]net.Listener) ([]relocListener, error) {
	rc := cfg.Relocation
	var out []relocListener
	fail := func(err error) ([]relocListener, error) {
		for _, r := range out {
			r.l.Close()
		}
		return nil, err
	}
	open := func(name string, enabled bool, port int, key string) ([]net.Listener, bool, error) {
		if ls := activated[name]; len(ls) > 0 {
			return ls, true, nil
		}
		if !enabled {
			return nil, false, nil
		}
		l, err := net.Listen("tcp", net.JoinHostPort(rc.Address, strconv.Itoa(port)))
		if err != nil {
			return nil, false, config.OptionError(cfg, "relocation", key, fmt.Errorf("listen: %w", err))
		}
		return []net.Listener{l}, false, nil
	}
	plain, act, err := open(SocketRelocation, rc.Server, rc.Port, "port")
	if err != nil {
		return fail(err)
	}
	for _, l := range plain {
		out = append(out, relocListener{l: l})
		a.addEndpoint(Endpoint{Kind: "relocation", Address: l.Addr().String(), Activated: act})
	}
	secure, act, err := open(SocketRelocationSSL, rc.SSLServer, rc.SSLPort, "ssl_port")
	if err != nil {
		return fail(err)
	}
	if len(secure) > 0 {
		certFile, keyFile, key := rc.SSLCert, rc.SSLKey, "ssl_cert"
		if certFile == "" {
			certFile, keyFile = cfg.Server.SSLCert, cfg.Server.SSLKey
		}
		c, _, err := tlscert.LoadOrCreate(certFile, keyFile, filepath.Join(cfg.Agent.StateDir, "tls"), []string{rc.Address})
		if err != nil {
			for _, l := range secure {
				l.Close()
			}
			return fail(config.OptionError(cfg, "relocation", key, err))
		}
		tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*c}}
		for _, l := range secure {
			out = append(out, relocListener{l: l, tls: tc})
			a.addEndpoint(Endpoint{Kind: "relocation-tls", Address: l.Addr().String(), Activated: act})
		}
	}
	return out, nil
}

func (a *Agent) relocationServer(tc *tls.Config, handshakeTimeout time.Duration) *relocation.Server {
	return &relocation.Server{
		HandshakeTimeout: handshakeTimeout,
		Log:              a.log.Named("relocation"),
		Hosts:            &a.hostsAllow,
		Names:            a.checker.Names,
		Authenticate: func(user, password string) error {
			err := a.state.Load().verifier.Check(user, password)
			if errors.Is(err, auth.ErrBusy) {
				return relocation.ErrBusy
			}
			return err
		},
		Throttle: a.throttle,
		TLS:      tc,
		Handle:   a.handleRelocation,
		Refused:  a.metrics.RelocationRefused,
	}
}

// handleRelocation serves one authenticated relocation connection: the
// op says which side of migration (agent/migration) takes it.
func (a *Agent) handleRelocation(ctx context.Context, c net.Conn, r *bufio.Reader, h *relocation.Hello) {
	m := a.migrations
	switch h.Op {
	case relocation.OpCheck:
		m.AnswerCheck(c, h)
	case relocation.OpStatus:
		m.AnswerStatus(c, h)
	case relocation.OpProbe:
		m.ServeProbe(c, r, h)
	case relocation.OpReceive:
		m.Receive(ctx, c, r, h)
	case relocation.OpOffline:
		m.ReceiveOffline(ctx, c, r, h)
	default:
		m.Refuse(c, xmlrpc.Unsupported, "unknown relocation operation %q", h.Op)
	}
}

// migrationRepos gives agent/migration the repositories mounted here
// (none while the agent runs without a repository manager).
type migrationRepos struct{ m *repository.Manager }

func (r migrationRepos) Mounted() []repository.Status {
	if r.m == nil {
		return nil
	}
	rep, err := r.m.Status(context.Background())
	if err != nil {
		return nil
	}
	var out []repository.Status
	for _, s := range rep.Repositories {
		if (s.State == repository.StateMounted || s.State == repository.StateInUse) && s.MountPoint != "" {
			out = append(out, s)
		}
	}
	return out
}

func (r migrationRepos) MountPoint(uuid string) (string, bool) {
	if r.m == nil {
		return "", false
	}
	return r.m.MountPoint(uuid)
}
