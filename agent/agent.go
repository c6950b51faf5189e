package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/atomicfile"

	"github.com/coreos/go-systemd/v22/activation"
	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/access"
	"github.com/ovs-agent/ovs-agent/agent/auth"
	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
	"github.com/ovs-agent/ovs-agent/agent/hostnet"
	"github.com/ovs-agent/ovs-agent/agent/metrics"
	"github.com/ovs-agent/ovs-agent/agent/migration"
	"github.com/ovs-agent/ovs-agent/agent/qemuhost"
	"github.com/ovs-agent/ovs-agent/agent/storagehb"
	"github.com/ovs-agent/ovs-agent/agent/tlscert"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/repository"
	"github.com/ovs-agent/ovs-agent/vmm/qemu"
)

// Options are what the composition root hands the agent.
type Options struct {
	Version string
	// ConfigName says where the configuration came from, for status and logs.
	ConfigName string
	// Load reads the configuration; it is called at start and on every reload.
	Load func() (*config.Config, error)
	// PIDFile, when set, is written once the agent serves and removed at exit.
	PIDFile string
	// Out receives the human "listening on" lines (the terminal under `make run`).
	Out io.Writer
	// ShutdownTimeout bounds the graceful drain on stop (default 30s).
	ShutdownTimeout time.Duration
}

// settings is the part of the configuration that a reload may change,
// swapped as a whole.
type settings struct {
	cfg         *config.Config
	verifier    *auth.Verifier
	failedDelay time.Duration
	hostsAllow  *relocation.HostsAllow
}

// Agent is one running daemon.
type Agent struct {
	opts Options

	sink *logSink
	// audSink takes the audit lines: [log] audit_file, else sink.
	audSink *logSink
	level   zap.AtomicLevel
	log     *zap.Logger
	audLog  *zap.Logger

	state      atomic.Pointer[settings]
	policy     atomic.Pointer[access.Policy]
	hostsAllow atomic.Pointer[relocation.HostsAllow]
	checker    *access.Checker
	throttle   *auth.Throttle
	cert       atomic.Pointer[tls.Certificate]

	rpc        *xmlrpc.Server
	metrics    *metrics.Metrics
	domains    *domains.Manager
	migrations *migration.Local
	repos      *repository.Manager
	qemu       *qemuhost.Host // what this host offers qemu domains ([qemu])
	sampler    *hostinfo.Sampler
	statsMu    sync.Mutex       // set_statistics_interval: the sampler and statsFile agree
	statsFile  string           // where its interval is kept (the state directory it opened with)
	hostnet    *hostnet.Manager // the agent 3 network calls' changes
	imports    importing        // the agent 3 import_virtual_disk calls under way
	storagehb  *storagehb.Heartbeat
	pool       *poolLink // nil when [pool] names no pool
	// poolStopped is the pool's part of a domain that stopped on its
	// own (set once the pool link exists; the registry opens before it).
	poolStopped atomic.Pointer[func(name, uuid string)]
	started     time.Time

	// lifetime is the agent's own context, for work that outlives any one
	// call (in-doubt migrations being resolved, settlements retried): it is
	// cancelled when Run returns, before the domain registry closes.
	lifetime    context.Context
	endLifetime context.CancelFunc

	mu        sync.Mutex
	endpoints []Endpoint
}

// Endpoint is one listener the agent serves on.
type Endpoint struct {
	Kind      string `xmlrpc:"kind"` // "https", "http" or "unix"
	Address   string `xmlrpc:"address"`
	Activated bool   `xmlrpc:"socket_activated"`
}

// URL is how a client reaches the endpoint.
func (e Endpoint) URL() string {
	switch e.Kind {
	case "unix":
		return "unix://" + e.Address
	case "http", "https":
		return e.Kind + "://" + e.Address + "/RPC2"
	}
	return e.Kind + "://" + e.Address
}

// New prepares an agent; nothing listens until Run.
func New(opts Options) *Agent {
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	a := &Agent{
		opts:     opts,
		sink:     &logSink{},
		level:    zap.NewAtomicLevel(),
		checker:  &access.Checker{Resolver: net.DefaultResolver},
		throttle: &auth.Throttle{Base: time.Second, Max: 30 * time.Second},
		sampler:  &hostinfo.Sampler{Paths: hostinfo.DefaultPaths},
	}
	a.lifetime, a.endLifetime = context.WithCancel(context.Background())
	a.log = newLogger(a.sink, a.level)
	// The audit lines go to [log] audit_file when it is set, else where
	// the other lines go (the audit sink falls back to the main one).
	a.audSink = &logSink{fallback: a.sink}
	a.audLog = newLogger(a.audSink, a.level).Named("audit")
	a.metrics = metrics.New(metricsSource{a}, a.knownMethod)
	return a
}

// probeAccel is how CheckConfig asks the host whether [qemu] accel = kvm
// can be had (a variable: tests stand in for hosts with and without
// hardware virtualization).
var probeAccel = qemu.ProbeAccel

// CheckConfig makes the checks the agent makes before it takes a
// configuration, at start and on reload, beyond what config.Parse checks:
// the allow/deny items, the password hash, the log level, and a configured
// TLS pair that must load. Each error names file, line and option.
func CheckConfig(cfg *config.Config) error {
	_, _, err := prepare(cfg)
	return err
}

// prepare checks a configuration and builds everything a reload would
// swap in, without changing the running agent.
func prepare(cfg *config.Config) (*settings, *access.Policy, error) {
	var errs []error
	allow, err := access.Parse(strings.Join(cfg.Access.Allow, ","))
	if err != nil {
		errs = append(errs, config.OptionError(cfg, "access", "allow", err))
	}
	deny, err := access.Parse(strings.Join(cfg.Access.Deny, ","))
	if err != nil {
		errs = append(errs, config.OptionError(cfg, "access", "deny", err))
	}
	v, err := auth.NewVerifier(cfg.Auth.User, cfg.Auth.PasswordHash,
		auth.Limits{Workers: int(cfg.Auth.LoginWorkers), Queue: int(cfg.Auth.LoginQueue)})
	if err != nil {
		errs = append(errs, config.OptionError(cfg, "auth", "password_hash", err))
	}
	if _, err := parseLevel(cfg.Log.Level); err != nil {
		errs = append(errs, config.OptionError(cfg, "log", "level", err))
	}
	if cfg.Server.SSL && cfg.Server.SSLCert != "" {
		if _, err := tls.LoadX509KeyPair(cfg.Server.SSLCert, cfg.Server.SSLKey); err != nil {
			errs = append(errs, config.OptionError(cfg, "server", "ssl_cert", err))
		}
	}
	if cfg.QEMU.Accel == qemu.AccelKVM {
		// accel = kvm on a host without hardware virtualization could
		// only fail every qemu domain's start: refused here instead.
		if _, _, err := qemuhost.New(qemuhost.Options{Binary: cfg.QEMU.Binary, Accel: cfg.QEMU.Accel, ProbeAccel: probeAccel}).Accel(); err != nil {
			errs = append(errs, config.OptionError(cfg, "qemu", "accel", err))
		}
	}
	if _, err := poolSettings(cfg); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	ha, err := relocation.NewHostsAllow(cfg.Relocation.HostsAllow)
	if err != nil {
		return nil, nil, config.OptionError(cfg, "relocation", "hosts_allow", err)
	}
	return &settings{cfg: cfg, verifier: v, failedDelay: cfg.Auth.FailedLoginDelay, hostsAllow: &ha}, &access.Policy{Allow: allow, Deny: deny}, nil
}

// apply installs prepared settings.
func (a *Agent) apply(s *settings, pol *access.Policy) error {
	lvl, _ := parseLevel(s.cfg.Log.Level)
	rot := rotation{sizeMiB: int(s.cfg.Log.MaxSize), keep: int(s.cfg.Log.MaxFiles)}
	if s.cfg.Log.File != a.sink.path || rot != a.sink.rot || a.state.Load() != nil {
		// Reopen even when unchanged, so logrotate can move the file on reload.
		if err := a.sink.open(s.cfg.Log.File, rot); err != nil {
			return err
		}
	}
	if s.cfg.Log.AuditFile != a.audSink.path || rot != a.audSink.rot || a.state.Load() != nil {
		if err := a.audSink.open(s.cfg.Log.AuditFile, rot); err != nil {
			return err
		}
	}
	a.level.SetLevel(lvl)
	a.throttle.Base = s.failedDelay
	a.policy.Store(pol)
	a.hostsAllow.Store(s.hostsAllow)
	a.state.Store(s)
	if pol.Allow.Empty() {
		a.log.Warn("access rule allow is empty: no TCP client is admitted (the unix socket still works)")
	}
	if !s.verifier.Enabled() {
		a.log.Warn("no API password is set: TCP clients cannot log in until `ovs-agent configure` sets one")
	}
	return nil
}

// Run serves until ctx is cancelled or SIGTERM/SIGINT arrives, reloading on
// SIGHUP. It returns after a graceful drain. Its steps, in order: load the
// configuration, open the subsystems, serve, wait for a signal, drain. Each
// step that opens something hands back what closes it, and on the way out
// Run closes everything in the reverse order it was opened; a step that
// fails has already closed what it opened itself.
func (a *Agent) Run(ctx context.Context) error {
	defer a.sink.close()
	defer a.audSink.close()
	defer a.endLifetime()
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	closeSubsystems, err := a.openSubsystems(cfg)
	if err != nil {
		return err
	}
	defer closeSubsystems()
	api, stopServing, err := a.serve(cfg)
	if err != nil {
		return err
	}
	defer stopServing()
	// Caught from here until Run returns, the drain included.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	runErr := a.waitForSignals(ctx, sigs, api.failed)
	a.evacuate()
	a.drain(api.srv)
	return runErr
}

// loadConfig reads, checks and installs the configuration Run starts with.
func (a *Agent) loadConfig() (*config.Config, error) {
	cfg, err := a.opts.Load()
	if err != nil {
		return nil, err
	}
	st, pol, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	if err := a.apply(st, pol); err != nil {
		return nil, err
	}
	return cfg, nil
}

// undo is what a start step has opened, as the steps that close it; run
// closes the last opened first.
type undo []func()

func (u *undo) push(f func()) { *u = append(*u, f) }

func (u undo) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// openSubsystems takes the state directory's lock, then opens the
// repositories, the domain registry and migrations, and builds the API
// dispatcher. It returns what closes them all; on error it has closed what
// it opened.
func (a *Agent) openSubsystems(cfg *config.Config) (closeAll func(), err error) {
	var opened undo
	defer func() {
		if err != nil {
			opened.run()
		}
	}()
	// Before anything that touches domains or repositories: one agent per
	// state directory.
	lock, err := lockStateDir(cfg.Agent.StateDir)
	if err != nil {
		return nil, err
	}
	opened.push(lock.release)
	a.started = time.Now()
	reposCtx, stopRepos := context.WithCancel(context.Background())
	opened.push(stopRepos)
	if err := a.openRepositories(reposCtx, cfg); err != nil {
		return nil, err
	}
	// Before the domains: their interfaces go into these bridges.
	a.openNetwork(a.lifetime, cfg)
	if err := a.openDomains(cfg); err != nil {
		return nil, err
	}
	opened.push(a.domains.Close)
	// set_statistics_interval's period, as it was set
	opened.push(a.sampler.Close)
	if err := a.resumeStatsInterval(cfg.Agent.StateDir); err != nil {
		a.log.Error("statistics interval not resumed", zap.Error(err))
	}
	// CloudStack's storage heartbeat runs once it asks for it; it stops
	// before the registry whose domains it may fence.
	a.storagehb = storagehb.New(storagehb.Config{Mounts: a.heartbeatMounts, Fence: a.storageFence, Log: a.log.Named("storage-heartbeat"),
		SettingsFile: filepath.Join(cfg.Agent.StateDir, "cloudstack-heartbeat.json")})
	opened.push(a.storagehb.Close)
	if err := a.storagehb.Resume(); err != nil {
		a.log.Error("storage heartbeat not resumed", zap.Error(err))
	}
	// The pool membership leaves (revoking its lease) before the registry
	// whose memory it reports closes.
	closePool, err := a.openPool(cfg)
	if err != nil {
		return nil, err
	}
	opened.push(closePool)
	// The retries that outlive a call stop before the registry they use
	// closes.
	opened.push(a.endLifetime)
	a.migrations = &migration.Local{Domains: a.domains, AgentVersion: a.opts.Version, Protocol: ProtocolVersion, SourceAddr: cfg.Relocation.Address, ProgressTimeout: cfg.Relocation.ProgressTimeout, FileRoots: a.fileRoots,
		Repos: migrationRepos{a.repos}, Lifetime: a.lifetime, Log: a.log.Named("relocation"), Ended: a.migrationEnded}
	if a.pool != nil {
		a.migrations.Pool = a.pool.domains
	}
	a.migrations.ResolveInDoubt(a.lifetime)
	a.migrations.ResolveOfflineInDoubt(a.lifetime)
	a.watchRepositories(reposCtx)
	a.rpc = a.newRPCServer(cfg)
	return opened.run, nil
}

// openNetwork makes again the bridges and VLAN devices the agent 3
// network calls made before a reboot (agent/hostnet's record in the state
// directory); what it cannot make is logged, and the agent starts.
func (a *Agent) openNetwork(ctx context.Context, cfg *config.Config) {
	a.hostnet = hostnet.New(hostnet.Config{RecordFile: filepath.Join(cfg.Agent.StateDir, hostnetRecordFile)})
	rec, err := a.hostnet.Record()
	if err != nil {
		a.log.Error("network record", zap.Error(err))
		return
	}
	if len(rec) == 0 {
		return
	}
	restored, problems := a.hostnet.Restore(ctx, cfg.Agent.NetworkDevices)
	for _, c := range restored {
		a.log.Info("network device made again", zap.String("kind", c.Kind), zap.String("device", c.Name), zap.String("bridge", c.Bridge), zap.String("address", c.Address))
	}
	for _, p := range problems {
		a.log.Warn("network device not made again", zap.Error(p))
	}
}

// hostnetRecordFile is agent/hostnet's record, under the state directory.
const hostnetRecordFile = "network.json"

// openRepositories opens the repository manager when repositories are
// enabled and mounts what is missing, before the domains are found again,
// so that their disks resolve to repositories; nothing is unmounted yet.
func (a *Agent) openRepositories(ctx context.Context, cfg *config.Config) error {
	if !cfg.Repository.Enabled {
		return nil
	}
	ro := RepositoryOptions(cfg)
	ro.InUse, ro.Logger = a.reposInUse, a.log.Named("repository")
	var err error
	if a.repos, err = repository.NewManager(ro); err != nil {
		return config.OptionError(cfg, "repository", "root", err)
	}
	rep, err := a.repos.Reload(ctx)
	if err != nil {
		a.log.Error("repositories", zap.Error(err))
		return nil
	}
	for _, p := range rep.Problems {
		a.log.Warn("repositories file problem", zap.String("problem", p))
	}
	return nil
}

// watchRepositories keeps the repositories matching their files until ctx
// ends.
func (a *Agent) watchRepositories(ctx context.Context) {
	if a.repos == nil {
		return
	}
	go func() {
		if err := a.repos.Run(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("repository watcher stopped", zap.Error(err))
		}
	}()
}

// openDomains opens the domain registry, which finds the running domains'
// VMMs again.
func (a *Agent) openDomains(cfg *config.Config) error {
	var repositoryOf, repositoryRoot func(string) (string, bool)
	if a.repos != nil {
		repositoryOf = a.repos.RepositoryOf
		repositoryRoot = a.repos.MountPoint
	}
	a.qemu = qemuhost.New(qemuhost.Options{Binary: cfg.QEMU.Binary, Accel: cfg.QEMU.Accel})
	if f := a.qemu.Facts(context.Background()); f.Usable {
		a.log.Info("qemu engine", zap.String("binary", f.Binary), zap.String("version", f.Version), zap.String("accel", f.Accel), zap.String("accel_reason", f.AccelReason))
	} else {
		a.log.Warn("qemu engine unusable: domains that run an operating system will not start", zap.String("binary", f.Binary), zap.String("problem", f.Problem))
	}
	// A pool domain's guest is told the pool member name that runs it.
	var host string
	if cfg.Pool.Name != "" {
		h, err := poolMemberName(cfg)
		if err != nil {
			return err
		}
		host = h
	}
	var err error
	a.domains, err = domains.Open(domains.Options{
		QEMU:           a.qemu,
		RepositoryOf:   repositoryOf,
		RepositoryRoot: repositoryRoot,
		FileRoots:      a.fileRoots,
		BlockDevices:   a.blockDevices,
		AgentVersion:   a.opts.Version,
		StateDir:       cfg.Agent.StateDir,
		Hypervisor:     cfg.Agent.Hypervisor,
		MemoryReserve:  uint64(cfg.Agent.MemoryReserve) << 20,
		MemoryBacking:  cfg.Agent.MemoryBacking,
		VMMBinary:      cfg.Agent.VMMBinary,
		HostName:       host,
		Log:            a.log.Named("domains"),
		Stopped: func(name, uuid string) {
			if f := a.poolStopped.Load(); f != nil {
				(*f)(name, uuid)
			}
		},
	})
	return err
}

// apiServer is the HTTP server on the API listeners and where a listener
// that fails reports.
type apiServer struct {
	srv    *http.Server
	failed chan error
}

// serve opens the API and relocation listeners (or takes them from socket
// activation), serves them, writes the PID file and tells the service
// manager the agent is ready. It returns what stops the relocation
// listeners, the watchdog and removes the PID file; the API's HTTP server is
// stopped by drain. On error it has closed what it opened.
func (a *Agent) serve(cfg *config.Config) (*apiServer, func(), error) {
	activated, err := activation.ListenersWithNames()
	if err != nil {
		return nil, nil, fmt.Errorf("socket activation: %w", err)
	}
	listeners, err := a.listen(cfg, activated)
	if err != nil {
		return nil, nil, err
	}
	relocListeners, err := a.listenRelocation(cfg, activated)
	if err != nil {
		for _, l := range listeners {
			l.Close()
		}
		return nil, nil, err
	}
	var opened undo
	stopMetrics, err := a.serveMetrics(cfg)
	if err != nil {
		for _, l := range listeners {
			l.Close()
		}
		for _, rl := range relocListeners {
			rl.l.Close()
		}
		return nil, nil, err
	}
	opened.push(stopMetrics)
	opened.push(a.serveRelocation(cfg, relocListeners))
	api := a.serveAPI(cfg, listeners)
	for _, e := range a.Endpoints() {
		fmt.Fprintf(a.opts.Out, "ovs-agent %s listening on %s\n", a.opts.Version, e.URL())
		a.log.Info("listening", zap.String("kind", e.Kind), zap.String("address", e.Address), zap.Bool("socket_activated", e.Activated))
	}
	opened.push(a.writePIDFile())
	a.log.Info("agent started", zap.String("version", a.opts.Version), zap.String("config", a.opts.ConfigName), zap.Int("pid", os.Getpid()))
	notify(a.log, "READY=1", "STATUS="+a.statusLine())
	wdCtx, stopWD := context.WithCancel(context.Background())
	opened.push(stopWD)
	go a.watchdog(wdCtx)
	return api, opened.run, nil
}

// serveRelocation serves the relocation listeners and returns what closes
// them.
func (a *Agent) serveRelocation(cfg *config.Config, listeners []relocListener) func() {
	var opened undo
	ctx, stop := context.WithCancel(context.Background())
	opened.push(stop)
	for _, rl := range listeners {
		srv := a.relocationServer(rl.tls, cfg.Relocation.HandshakeTimeout)
		srv.MaxPending, srv.MaxPendingPerAddress = int(cfg.Relocation.MaxPending), int(cfg.Relocation.MaxPendingPerAddress)
		go func(l net.Listener) {
			if err := srv.Serve(ctx, l); err != nil {
				a.log.Error("relocation listener failed", zap.Error(err))
			}
		}(rl.l)
		opened.push(func() { rl.l.Close() })
	}
	return opened.run
}

// serveAPI serves the API listeners over HTTP.
func (a *Agent) serveAPI(cfg *config.Config, listeners []net.Listener) *apiServer {
	srv := &http.Server{
		Handler:           a,
		ConnContext:       connContext,
		ReadHeaderTimeout: cfg.Server.HeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		WriteTimeout:      10 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(a.log.Named("http")),
	}
	failed := make(chan error, len(listeners))
	for _, l := range listeners {
		go func(l net.Listener) {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				failed <- err
			}
		}(l)
	}
	return &apiServer{srv: srv, failed: failed}
}

// writePIDFile writes the PID file, when one is asked for, and returns what
// removes it. A PID file that cannot be written is logged, not fatal.
func (a *Agent) writePIDFile() func() {
	if a.opts.PIDFile == "" {
		return func() {}
	}
	if err := atomicfile.WriteFile(a.opts.PIDFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		a.log.Error("pid file", zap.Error(err))
		return func() {}
	}
	return func() { os.Remove(a.opts.PIDFile) }
}

// waitForSignals reloads on SIGHUP and returns on SIGTERM or SIGINT, when
// ctx ends, or with the error of an API listener that failed.
func (a *Agent) waitForSignals(ctx context.Context, sigs <-chan os.Signal, failed <-chan error) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			a.log.Error("listener failed", zap.Error(err))
			return err
		case s := <-sigs:
			if s == syscall.SIGHUP {
				_ = a.Reload()
				continue
			}
			a.log.Info("stopping", zap.String("signal", s.String()))
			return nil
		}
	}
}

// drain stops the API gracefully: no new connections, and the calls in
// flight get ShutdownTimeout to finish before their connections are closed.
func (a *Agent) drain(srv *http.Server) {
	notify(a.log, "STOPPING=1", "STATUS=draining API connections")
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		a.log.Warn("graceful drain incomplete", zap.Error(err))
		srv.Close()
	}
	a.log.Info("agent stopped")
	_ = a.log.Sync()
}

// Reload re-reads the configuration. A configuration that does not load or
// validate is rejected and logged, and the running one stays in force.
func (a *Agent) Reload() error {
	notify(a.log, "RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10), "STATUS=reloading configuration")
	defer notify(a.log, "READY=1", "STATUS="+a.statusLine())
	cfg, err := a.opts.Load()
	if err == nil {
		var st *settings
		var pol *access.Policy
		if st, pol, err = prepare(cfg); err == nil {
			old := a.state.Load().cfg
			if err = a.reloadCert(cfg); err == nil {
				err = a.apply(st, pol)
			}
			if err == nil {
				for _, o := range restartOnly(old, cfg) {
					a.log.Warn("changed option takes effect at the next restart", zap.String("option", o))
				}
				a.log.Info("configuration reloaded", zap.String("config", a.opts.ConfigName))
				return nil
			}
		}
	}
	a.log.Error("new configuration rejected; the running configuration stays in force", zap.String("config", a.opts.ConfigName), zap.Error(err))
	return err
}

// restartOnly lists options that differ but need a restart to apply.
func restartOnly(old, cur *config.Config) []string {
	var out []string
	if old.Server.ListenAddress != cur.Server.ListenAddress {
		out = append(out, "server.listen_address")
	}
	if old.Server.Port != cur.Server.Port {
		out = append(out, "server.port")
	}
	if old.Server.TCPServer != cur.Server.TCPServer {
		out = append(out, "server.tcp_server")
	}
	if old.Server.UnixServer != cur.Server.UnixServer {
		out = append(out, "server.unix_server")
	}
	if old.Server.ReadTimeout != cur.Server.ReadTimeout {
		out = append(out, "server.read_timeout")
	}
	if old.Server.SSL != cur.Server.SSL {
		out = append(out, "server.ssl")
	}
	if old.Server.UnixSocket != cur.Server.UnixSocket {
		out = append(out, "server.unix_socket")
	}
	if old.Server.MaxRequestBytes != cur.Server.MaxRequestBytes {
		out = append(out, "server.max_request_bytes")
	}
	if old.Agent.StateDir != cur.Agent.StateDir {
		out = append(out, "agent.state_dir")
	}
	if old.Agent.Hypervisor != cur.Agent.Hypervisor {
		out = append(out, "agent.hypervisor")
	}
	if old.Agent.MemoryReserve != cur.Agent.MemoryReserve {
		out = append(out, "agent.memory_reserve")
	}
	if old.Agent.MemoryBacking != cur.Agent.MemoryBacking {
		out = append(out, "agent.memory_backing")
	}
	if old.Agent.VMMBinary != cur.Agent.VMMBinary {
		out = append(out, "agent.vmm_binary")
	}
	if old.QEMU.Binary != cur.QEMU.Binary {
		out = append(out, "qemu.binary")
	}
	if old.QEMU.Accel != cur.QEMU.Accel {
		out = append(out, "qemu.accel")
	}
	if old.Metrics.Address != cur.Metrics.Address {
		out = append(out, "metrics.address")
	}
	if old.Metrics.Auth != cur.Metrics.Auth {
		out = append(out, "metrics.auth")
	}
	for _, k := range poolKeys {
		o, _ := old.Value("pool", k)
		c, _ := cur.Value("pool", k)
		if o != c {
			out = append(out, "pool."+k)
		}
	}
	return out
}

// poolKeys are the [pool] options that take effect at a restart; the
// others (drain_on_stop, drain_timeout) are read when the agent stops.
var poolKeys = []string{"name", "host_name", "endpoints", "lease_ttl", "fencing_margin", "dial_timeout", "ca_file", "cert_file", "key_file", "user", "password_file"}

func (a *Agent) reloadCert(cfg *config.Config) error {
	if !cfg.Server.SSL || a.cert.Load() == nil {
		return nil
	}
	c, _, err := tlscert.LoadOrCreate(cfg.Server.SSLCert, cfg.Server.SSLKey, filepath.Join(cfg.Agent.StateDir, "tls"), []string{cfg.Server.ListenAddress})
	if err != nil {
		return config.OptionError(cfg, "server", "ssl_cert", err)
	}
	a.cert.Store(c)
	return nil
}

func (a *Agent) addEndpoint(e Endpoint) {
	a.mu.Lock()
	a.endpoints = append(a.endpoints, e)
	a.mu.Unlock()
}

// Endpoints lists where the agent serves.
func (a *Agent) Endpoints() []Endpoint {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Endpoint(nil), a.endpoints...)
}

func (a *Agent) statusLine() string {
	var parts []string
	for _, e := range a.Endpoints() {
		parts = append(parts, e.URL())
	}
	return "serving " + strings.Join(parts, ", ")
}
