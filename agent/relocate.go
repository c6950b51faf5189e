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
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/auth"
	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
	"github.com/ovs-agent/ovs-agent/agent/tlscert"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config"
	"github.com/ovs-agent/ovs-agent/relocation"
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
	}
}

// handleRelocation serves one authenticated relocation connection.
func (a *Agent) handleRelocation(ctx context.Context, c net.Conn, r *bufio.Reader, h *relocation.Hello) {
	log := a.log.Named("relocation").With(zap.String("op", h.Op), zap.String("domain", h.Offer.Name), zap.String("migration", h.Migration))
	switch h.Op {
	case relocation.OpCheck:
		if h.Offline != nil {
			a.answerOfflineCheck(c, h)
			return
		}
		problems := a.checkIncoming(h)
		if err := relocation.WriteWelcome(c, &relocation.Welcome{OK: len(problems) == 0, Problems: problems, AgentVersion: a.opts.Version, Protocol: ProtocolVersion, Host: hostname()}); err != nil {
			log.Warn("answer check", zap.Error(err))
		}
		c.Close()
	case relocation.OpStatus:
		state := ""
		if in, err := a.domains.Info(h.Offer.Name); err == nil && strings.EqualFold(in.UUID, h.Offer.UUID) {
			state = in.State
		}
		_ = relocation.WriteWelcome(c, &relocation.Welcome{OK: true, State: state, AgentVersion: a.opts.Version, Protocol: ProtocolVersion, Host: hostname()})
		c.Close()
	case relocation.OpProbe:
		a.serveProbe(c, r, log)
	case relocation.OpReceive:
		a.receiveDomain(ctx, c, r, h, log)
	case relocation.OpOffline:
		if h.Offline == nil {
			_ = relocation.WriteWelcome(c, &relocation.Welcome{Code: xmlrpc.BadParams, Error: "an offline migration without its request"})
			c.Close()
			return
		}
		a.receiveOffline(ctx, c, r, h, log)
	default:
		_ = relocation.WriteWelcome(c, &relocation.Welcome{Code: xmlrpc.Unsupported, Error: fmt.Sprintf("unknown relocation operation %q", h.Op)})
		c.Close()
	}
}

// checkIncoming lists every reason this host could not take the offered
// domain; none means it can.
func (a *Agent) checkIncoming(h *relocation.Hello) []string {
	var problems []string
	o := h.Offer
	if h.Protocol != ProtocolVersion {
		problems = append(problems, fmt.Sprintf("protocol: the sending agent speaks protocol %d (version %s), this agent %d (version %s)", h.Protocol, h.AgentVersion, ProtocolVersion, a.opts.Version))
	}
	problems = append(problems, a.domains.CheckIncoming(o.Name, o.UUID, o.MemoryMiB, o.VCPUs, o.Engine)...)
	if o.Engine == "kvm" {
		info, err := hostinfo.Read(hostinfo.DefaultPaths)
		if err != nil {
			problems = append(problems, "CPU: cannot read this host's CPU: "+err.Error())
		} else {
			if o.CPUVendor != "" && o.CPUVendor != info.CPUVendor {
				problems = append(problems, fmt.Sprintf("CPU: the domain runs on a %s CPU; this host's is %s", o.CPUVendor, info.CPUVendor))
			}
			have := make(map[string]bool, len(info.CPUFlags))
			for _, f := range info.CPUFlags {
				have[f] = true
			}
			var missing []string
			for _, f := range o.CPUFlags {
				if !have[f] {
					missing = append(missing, f)
				}
			}
			if len(missing) > 0 {
				problems = append(problems, fmt.Sprintf("CPU: features the guest may use are missing here: %s", strings.Join(missing, " ")))
			}
		}
	}
	for _, d := range o.Disks {
		if d.Repository == "" {
			problems = append(problems, fmt.Sprintf("disk %s: not on a repository, so this host cannot reach it", d.Path))
		} else if !a.hasRepository(d.Repository) {
			problems = append(problems, fmt.Sprintf("disk %s: repository %s is not mounted on this host", d.Path, d.Repository))
		}
	}
	return problems
}
