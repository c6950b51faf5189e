package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/metrics"
	"github.com/ovs-agent/ovs-agent/agent/migration"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config"
)

// metricsSource is what a scrape reads of the agent: the registry's
// domains (with their counters) and the repositories.
type metricsSource struct{ a *Agent }

func (s metricsSource) Domains() []metrics.Domain {
	if s.a.domains == nil {
		return nil
	}
	var out []metrics.Domain
	for _, in := range s.a.domains.List(true) {
		out = append(out, metrics.Domain{
			Name: in.Name, State: in.State, Engine: in.Engine,
			CPUSeconds: in.CPUSeconds, ResidentBytes: in.ResidentBytes, DirtyBytesPerSecond: in.DirtyRate,
			DiskReadBytes: in.DiskReadBytes, DiskWriteBytes: in.DiskWriteBytes,
			NetReceiveBytes: in.NetRxBytes, NetTransmitBytes: in.NetTxBytes,
		})
	}
	return out
}

func (s metricsSource) Repositories() []metrics.Repository {
	if s.a.repos == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep, err := s.a.repos.Status(ctx)
	if err != nil {
		return nil
	}
	var out []metrics.Repository
	for _, r := range rep.Repositories {
		out = append(out, metrics.Repository{UUID: r.UUID, State: string(r.State), SizeBytes: r.Size, FreeBytes: r.Free})
	}
	return out
}

// remoteAddrString parses an http.Request's RemoteAddr.
func remoteAddrString(s string) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}

// knownMethod says whether the API serves method (the metrics' method
// label is bounded to these).
func (a *Agent) knownMethod(method string) bool {
	return a.rpc != nil && a.rpc.Has(method)
}

// migrationEnded counts an outgoing migration that ended.
func (a *Agent) migrationEnded(st migration.Status) {
	a.metrics.MigrationEnded(metrics.Migration{
		Outcome: string(st.Phase), Live: st.Live,
		Total:     time.Duration(st.TotalSeconds * float64(time.Second)),
		Downtime:  time.Duration(st.DowntimeMs * float64(time.Millisecond)),
		SentBytes: st.BytesSent, MaxThrottlePc: st.MaxThrottle,
	})
}

// serveMetrics serves /metrics on [metrics] address, when set, with the
// API's access rules and, with [metrics] auth, its password. It returns
// what stops it. The address takes effect at the agent's start.
func (a *Agent) serveMetrics(cfg *config.Config) (func(), error) {
	if cfg.Metrics.Address == "" {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", cfg.Metrics.Address)
	if err != nil {
		return nil, config.OptionError(cfg, "metrics", "address", fmt.Errorf("listen: %w", err))
	}
	mux := http.NewServeMux()
	h := a.metrics.Handler()
	withAuth := cfg.Metrics.Auth
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		addr, err := remoteAddrString(r.RemoteAddr)
		if err != nil {
			http.Error(w, "unknown peer", http.StatusForbidden)
			return
		}
		if d := a.checker.Check(r.Context(), *a.policy.Load(), addr); !d.Allowed {
			a.log.Warn("metrics scrape refused by access rules", zap.String("peer", addr.String()), zap.String("reason", d.Reason()))
			a.deny(w, http.StatusForbidden, xmlrpc.Faultf(xmlrpc.AccessDenied, "%s may not read this agent's metrics (%s)", addr, d.Reason()))
			return
		}
		if withAuth {
			if _, ok := a.checkPassword(w, r, addr.String(), &addr); !ok {
				return
			}
		}
		h.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: zap.NewStdLog(a.log.Named("metrics"))}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("metrics listener failed", zap.Error(err))
		}
	}()
	a.log.Info("listening", zap.String("kind", "metrics"), zap.String("address", l.Addr().String()))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
