package agent

import (
	"context"
	"errors"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/migration"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/internal/passwordfile"
	"github.com/ovs-agent/ovs-agent/relocation"
)

// migrationOptions reads domain.migrate's options struct.
func migrationOptions(m map[string]any) (migration.Options, bool, error) {
	var o migration.Options
	dry := false
	for k, v := range m {
		bad := func(want string) error {
			return xmlrpc.Faultf(xmlrpc.BadParams, "option %s: want %s, got %T", k, want, v)
		}
		switch k {
		case "live", "ssl", "dry_run", "start", "remove", "force":
			b, ok := v.(bool)
			if !ok {
				return o, false, bad("a boolean")
			}
			switch k {
			case "live":
				o.Live = b
			case "ssl":
				o.SSL = b
			case "start":
				o.Start = b
			case "remove":
				o.Remove = b
			case "force":
				o.Force = b
			default:
				dry = b
			}
		case "rate", "port", "max_downtime", "parallel":
			n, ok := v.(int64)
			if !ok || n < 0 {
				return o, false, bad("a non-negative int")
			}
			switch k {
			case "rate": // MB/s, as xm migrate -r
				o.RateLimit = n * 1000 * 1000
			case "port":
				if n > 65535 {
					return o, false, bad("a port number")
				}
				o.Port = int(n)
			case "max_downtime":
				o.MaxDowntime = time.Duration(n) * time.Millisecond
			default:
				if n > 64 {
					return o, false, bad("1 to 64 streams")
				}
				o.Parallel = int(n)
			}
		case "user", "password", "fingerprint", "compress", "target_repo":
			s, ok := v.(string)
			if !ok {
				return o, false, bad("a string")
			}
			switch k {
			case "compress":
				switch s {
				case "", "none", "s2", "zstd", "auto":
				default:
					return o, false, bad(`"none", "s2", "zstd" or "auto"`)
				}
				o.Compress = s
			case "target_repo":
				o.TargetRepo = s
			case "user":
				o.User = s
			case "password":
				o.Password = s
			default:
				o.Fingerprint = s
			}
		default:
			return o, false, xmlrpc.Faultf(xmlrpc.BadParams, "unknown option %q (live, rate, ssl, port, max_downtime, parallel, compress, user, password, fingerprint, dry_run, start, remove, force, target_repo)", k)
		}
	}
	return o, dry, nil
}

// withPeerCredentials fills the target credentials a caller left out from
// [relocation] peer_user and peer_password_file.
func (a *Agent) withPeerCredentials(o *migration.Options) error {
	rc := a.state.Load().cfg.Relocation
	if o.User == "" {
		o.User = rc.PeerUser
	}
	if o.Password == "" && rc.PeerPasswordFile != "" {
		pw, err := passwordfile.Read(rc.PeerPasswordFile)
		if err != nil {
			return xmlrpc.Faultf(xmlrpc.InvalidConfig, "[relocation] peer_password_file: %v", err)
		}
		o.Password = pw
	}
	return nil
}

type checkResult struct {
	OK       bool     `xmlrpc:"ok"`
	Problems []string `xmlrpc:"problems"`
	// Estimate is the measured prediction; NoEstimate says why there is none.
	Estimate   *migration.Estimate `xmlrpc:"estimate,omitempty"`
	NoEstimate string              `xmlrpc:"no_estimate,omitempty"`
	// Target is what the target offers a qemu domain: its QEMU version,
	// machine types and accelerator, and which files and bridges of the
	// vm.cfg it has (absent for the workload guest and an older target).
	Target *relocation.TargetFacts `xmlrpc:"target,omitempty"`
}

// migrationMethods is the migration namespace: moving a domain to the
// agent of another host, trying the move first, following and cancelling
// it. How a domain moves, live or offline, is decided once, by mover.
func (a *Agent) migrationMethods() []xmlrpc.Def {
	move := []xmlrpc.Param{nameParam, xmlrpc.Req("target", xmlrpc.String), xmlrpc.Opt("options", xmlrpc.Struct)}
	return []xmlrpc.Def{
		{Name: "domain.migrate", Result: xmlrpc.String, Params: move, Run: a.apiMigrate,
			Help: "Move a domain to the agent at target (HOST[:PORT], relocation port 8002 or 8003 with ssl) and return a migration id at once. A running or paused domain moves its memory; a stopped one moves offline: its vm.cfg and every disk image on no repository the target shares are copied (sparse, checksummed, resumable) and it is registered there stopped (or started with start); here it is removed from the domains and its copied data kept renamed (or deleted with remove). Options: live (bool), rate (MB/s cap), ssl (bool), port, max_downtime (ms, default 300), parallel, compress, user and password (the target agent's API credentials; never logged), fingerprint (sha256 of the target's TLS certificate), dry_run (then the result is migration.check's); offline: start, remove, force (skip the target's validation), target_repo (UUID). Follow it with migration.status. A running pool domain moves only to a member of its pool (its ownership goes with it, handed over before the commit); a stopped one is refused (Unsupported): the pool places it."},
		{Name: "migration.check", Result: xmlrpc.Struct, Params: move, Run: a.apiMigrationCheck,
			Help: "Dry run of domain.migrate: moves nothing and returns {ok, problems, estimate}: problems are every reason the migration would fail (protocol, engine and CPU, memory on the target, name or UUID already there, disks on repositories the target lacks), one per line. For a running domain it also measures, for about 1.5 s, the guest's dirty rate and the link to the target, and estimate predicts the migration with the given options (live, rate, max_downtime): dirty_rate, hot_bytes, link_throughput, bandwidth, touched_bytes, total_seconds, downtime_ms, rounds, bytes_to_send, stop_reason, auto_converge, max_throttle_percent, throttled_seconds; without one, no_estimate says why. For a qemu domain, target says what the target offers it: qemu_version, qemu_problem (why qemu domains cannot start there), machines, accel, accel_reason, bridges (name, path, present) for the vifs of its vm.cfg and, for a live move, files likewise for its kernel, ramdisk and disks."},
		{Name: "migration.status", Result: xmlrpc.Struct, Params: []xmlrpc.Param{idParam}, Run: a.apiMigrationStatus,
			Help: "One migration: phase (connecting, setup, precopy, stop-copy, sent, verified, committing, in-doubt, completed, failed, cancelled), round, bytes sent and remaining, zero pages, throughput and dirty rate (bytes/s), expected downtime, throttle; at the end total time and the downtime measured from pause to the target's resume."},
		{Name: "migration.list", Result: xmlrpc.Array, Help: "Every migration this agent started (the last 100), newest first.",
			Run: func(context.Context, xmlrpc.Args) (any, error) { return a.migrations.List(), nil }},
		{Name: "migration.cancel", Result: xmlrpc.Struct, Params: []xmlrpc.Param{idParam}, Run: a.apiMigrationCancel,
			Help: "Cancel a migration that has not committed: the domain keeps running here and the target keeps nothing."},
	}
}

// move is one requested migration.
type move struct {
	name, target string
	opts         migration.Options
	dryRun       bool
}

// moveArgs reads (name, target[, options]) and fills in the target
// credentials the caller left out.
func (a *Agent) moveArgs(args xmlrpc.Args) (move, error) {
	o, dry, err := migrationOptions(args.Struct(2))
	if err == nil {
		err = a.withPeerCredentials(&o)
	}
	return move{name: args.String(0), target: args.String(1), opts: o, dryRun: dry}, err
}

// mover is how one domain moves: live (its memory streams to the target's
// VMM) or offline (it is stopped: its vm.cfg and disks are copied).
type mover struct {
	offline bool
	check   func(ctx context.Context, name, tgt string, o migration.Options) (migration.Report, error)
	start   func(name, tgt string, o migration.Options) (string, error)
}

// mover decides, for every migration method, how m's domain moves: offline
// when offline moves are allowed, the caller did not ask for live and the
// domain is stopped; live otherwise.
func (a *Agent) mover(m move, offlineAllowed bool) mover {
	if offlineAllowed && !m.opts.Live && a.migrations.IsOffline(m.name) {
		return mover{offline: true, check: a.migrations.CheckOffline, start: a.migrations.StartOffline}
	}
	return mover{check: a.migrations.Check, start: a.migrations.Start}
}

// startMove starts m the way mover decides and returns the migration id.
func (a *Agent) startMove(m move, offlineAllowed bool) (any, error) {
	if a.pool != nil {
		if err := a.pool.domains.mayMove(m.name); err != nil {
			return nil, err
		}
	}
	id, err := a.mover(m, offlineAllowed).start(m.name, m.target, m.opts)
	if err != nil {
		return nil, domainFault(err)
	}
	return id, nil
}

func (a *Agent) apiMigrate(ctx context.Context, args xmlrpc.Args) (any, error) {
	m, err := a.moveArgs(args)
	if err != nil {
		return nil, err
	}
	if m.dryRun {
		return a.checkMove(ctx, m)
	}
	return a.startMove(m, true)
}

func (a *Agent) apiMigrationCheck(ctx context.Context, args xmlrpc.Args) (any, error) {
	m, err := a.moveArgs(args)
	if err != nil {
		return nil, err
	}
	return a.checkMove(ctx, m)
}

// checkMove is the dry run of m: its problems, and for a live move the
// measured estimate.
func (a *Agent) checkMove(ctx context.Context, m move) (any, error) {
	mv := a.mover(m, true)
	rep, err := mv.check(ctx, m.name, m.target, m.opts)
	if err != nil {
		return nil, domainFault(err)
	}
	problems := rep.Problems
	if problems == nil {
		problems = []string{}
	}
	res := checkResult{OK: len(problems) == 0, Problems: problems, Target: rep.Target}
	if mv.offline {
		res.NoEstimate = "no estimate: the domain is stopped, so it moves offline (its disks are copied, no memory)"
		return res, nil
	}
	est, why, err := a.migrations.Estimate(ctx, m.name, m.target, m.opts)
	if err != nil {
		return nil, domainFault(err)
	}
	if why != "" {
		why = "no estimate: " + why
	}
	res.Estimate, res.NoEstimate = est, why
	return res, nil
}

// migrationFault is the fault for a migration id: NotFound for an unknown
// one.
func migrationFault(err error) error {
	if errors.Is(err, migration.ErrNoMigration) {
		return xmlrpc.Faultf(xmlrpc.NotFound, "%v", err)
	}
	return domainFault(err)
}

func (a *Agent) apiMigrationStatus(_ context.Context, args xmlrpc.Args) (any, error) {
	st, err := a.migrations.Status(args.String(0))
	if err != nil {
		return nil, migrationFault(err)
	}
	return st, nil
}

func (a *Agent) apiMigrationCancel(_ context.Context, args xmlrpc.Args) (any, error) {
	st, err := a.migrations.Cancel(args.String(0))
	if err != nil {
		if errors.Is(err, migration.ErrNoMigration) {
			return nil, migrationFault(err)
		}
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "%v", err)
	}
	return st, nil
}
