package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/agent/migration"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
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
		data, err := os.ReadFile(rc.PeerPasswordFile)
		if err != nil {
			return xmlrpc.Faultf(xmlrpc.InvalidConfig, "[relocation] peer_password_file: %v", err)
		}
		o.Password = strings.TrimRight(strings.SplitN(string(data), "\n", 2)[0], "\r")
	}
	return nil
}

type checkResult struct {
	OK       bool     `xmlrpc:"ok"`
	Problems []string `xmlrpc:"problems"`
	// Estimate is the measured prediction; NoEstimate says why there is none.
	Estimate   *migration.Estimate `xmlrpc:"estimate,omitempty"`
	NoEstimate string              `xmlrpc:"no_estimate,omitempty"`
}

func (a *Agent) registerMigrationMethods(s *xmlrpc.Server) {
	args := func(p xmlrpc.Params) (string, string, migration.Options, bool, error) {
		if err := p.Between(2, 3); err != nil {
			return "", "", migration.Options{}, false, err
		}
		name, err := p.String(0)
		if err != nil {
			return "", "", migration.Options{}, false, err
		}
		tgt, err := p.String(1)
		if err != nil {
			return "", "", migration.Options{}, false, err
		}
		opts, err := p.OptStruct(2, map[string]any{})
		if err != nil {
			return "", "", migration.Options{}, false, err
		}
		o, dry, err := migrationOptions(opts)
		if err == nil {
			err = a.withPeerCredentials(&o)
		}
		return name, tgt, o, dry, err
	}
	check := func(ctx context.Context, p xmlrpc.Params) (any, error) {
		name, tgt, o, _, err := args(p)
		if err != nil {
			return nil, err
		}
		if !o.Live && a.migrations.IsOffline(name) {
			problems, err := a.migrations.CheckOffline(ctx, name, tgt, o)
			if err != nil {
				return nil, domainFault(err)
			}
			if problems == nil {
				problems = []string{}
			}
			return checkResult{OK: len(problems) == 0, Problems: problems, NoEstimate: "no estimate: the domain is stopped, so it moves offline (its disks are copied, no memory)"}, nil
		}
		problems, err := a.migrations.Check(ctx, name, tgt, o)
		if err != nil {
			return nil, domainFault(err)
		}
		if problems == nil {
			problems = []string{}
		}
		est, why, err := a.migrations.Estimate(ctx, name, tgt, o)
		if err != nil {
			return nil, domainFault(err)
		}
		if why != "" {
			why = "no estimate: " + why
		}
		return checkResult{OK: len(problems) == 0, Problems: problems, Estimate: est, NoEstimate: why}, nil
	}
	migFault := func(err error) error {
		if errors.Is(err, migration.ErrNoMigration) {
			return xmlrpc.Faultf(xmlrpc.NotFound, "%v", err)
		}
		return domainFault(err)
	}
	id1 := func(p xmlrpc.Params) (string, error) {
		if err := p.Want(1); err != nil {
			return "", err
		}
		return p.String(0)
	}
	migrate := func(ctx context.Context, p xmlrpc.Params) (any, error) {
		name, tgt, o, dry, err := args(p)
		if err != nil {
			return nil, err
		}
		if dry {
			return check(ctx, p)
		}
		start := a.migrations.Start
		if !o.Live && a.migrations.IsOffline(name) {
			start = a.migrations.StartOffline
		}
		id, err := start(name, tgt, o)
		if err != nil {
			return nil, domainFault(err)
		}
		return id, nil
	}
	for _, m := range []xmlrpc.Method{
		{Name: "domain.migrate", Handler: migrate, Signatures: [][]string{{"string", "string", "string"}, {"string", "string", "string", "struct"}},
			Help: "Move a domain to the agent at target (HOST[:PORT], relocation port 8002 or 8003 with ssl) and return a migration id at once. A running or paused domain moves its memory; a stopped one moves offline: its vm.cfg and every disk image on no repository the target shares are copied (sparse, checksummed, resumable) and it is registered there stopped (or started with start); here it is removed from the domains and its copied data kept renamed (or deleted with remove). Options: live (bool), rate (MB/s cap), ssl (bool), port, max_downtime (ms, default 300), parallel, compress, user and password (the target agent's API credentials; never logged), fingerprint (sha256 of the target's TLS certificate), dry_run (then the result is migration.check's); offline: start, remove, force (skip the target's validation), target_repo (UUID). Follow it with migration.status."},
		{Name: "migration.status", Signatures: [][]string{{"struct", "string"}},
			Help: "One migration: phase (connecting, setup, precopy, stop-copy, sent, verified, committing, in-doubt, completed, failed, cancelled), round, bytes sent and remaining, zero pages, throughput and dirty rate (bytes/s), expected downtime, throttle; at the end total time and the downtime measured from pause to the target's resume.",
			Handler: func(_ context.Context, p xmlrpc.Params) (any, error) {
				id, err := id1(p)
				if err != nil {
					return nil, err
				}
				st, err := a.migrations.Status(id)
				if err != nil {
					return nil, migFault(err)
				}
				return st, nil
			}},
		{Name: "migration.list", Signatures: [][]string{{"array"}}, Help: "Every migration this agent started (the last 100), newest first.",
			Handler: func(_ context.Context, p xmlrpc.Params) (any, error) {
				if err := p.Want(0); err != nil {
					return nil, err
				}
				return a.migrations.List(), nil
			}},
		{Name: "migration.cancel", Signatures: [][]string{{"struct", "string"}},
			Help: "Cancel a migration that has not committed: the domain keeps running here and the target keeps nothing.",
			Handler: func(_ context.Context, p xmlrpc.Params) (any, error) {
				id, err := id1(p)
				if err != nil {
					return nil, err
				}
				st, err := a.migrations.Cancel(id)
				if err != nil {
					if errors.Is(err, migration.ErrNoMigration) {
						return nil, migFault(err)
					}
					return nil, xmlrpc.Faultf(xmlrpc.BadState, "%v", err)
				}
				return st, nil
			}},
		{Name: "xend.domain.migrate", Signatures: [][]string{{"string", "string", "string", "boolean", "int", "int", "boolean"}},
			Help: "xend: migrate(domid, dst, live, port, node, ssl); node is accepted and ignored. The target credentials come from [relocation] peer_user and peer_password_file. Returns the migration id.",
			Handler: xendFault(func(_ context.Context, p xmlrpc.Params) (any, error) {
				if err := p.Between(2, 6); err != nil {
					return nil, err
				}
				name, err := p.String(0)
				if err != nil {
					return nil, err
				}
				dst, err := p.String(1)
				if err != nil {
					return nil, err
				}
				var o migration.Options
				if o.Live, err = p.OptBool(2, false); err != nil {
					return nil, err
				}
				port, err := p.OptInt(3, 0)
				if err != nil {
					return nil, err
				}
				o.Port = int(port)
				if _, err := p.OptInt(4, -1); err != nil {
					return nil, err
				}
				if o.SSL, err = p.OptBool(5, false); err != nil {
					return nil, err
				}
				if err := a.withPeerCredentials(&o); err != nil {
					return nil, err
				}
				id, err := a.migrations.Start(name, dst, o)
				if err != nil {
					return nil, domainFault(err)
				}
				return id, nil
			})},
		{Name: "domain.save", Signatures: [][]string{{"struct", "string", "string"}},
			Help: "Save a running or paused domain to a file on the agent's host (xm save): the same stream as a migration. The domain is suspended afterwards; domain.start or domain.restore brings it back.",
			Handler: func(_ context.Context, p xmlrpc.Params) (any, error) {
				if err := p.Want(2); err != nil {
					return nil, err
				}
				name, err := p.String(0)
				if err != nil {
					return nil, err
				}
				path, err := p.String(1)
				if err != nil {
					return nil, err
				}
				if path, _, err = fileaccess.CheckRegular(a.fileRoots(), path); err != nil {
					return nil, fileFault("save image", err)
				}
				if err := a.domains.Save(name, path); err != nil {
					return nil, domainFault(err)
				}
				in, err := a.domains.Info(name)
				return in, domainFault(err)
			}},
		{Name: "domain.restore", Signatures: [][]string{{"struct", "string"}},
			Help: "Start a domain from a save image on the agent's host (xm restore); the image's configuration registers the domain if this host does not know it.",
			Handler: func(_ context.Context, p xmlrpc.Params) (any, error) {
				path, err := id1(p)
				if err != nil {
					return nil, err
				}
				real, exists, err := fileaccess.CheckRegular(a.fileRoots(), path)
				if err == nil && !exists {
					err = fmt.Errorf("%s: %w", path, fs.ErrNotExist)
				}
				if err != nil {
					return nil, fileFault("save image", err)
				}
				name, err := a.domains.Restore(real)
				if err != nil {
					return nil, domainFault(err)
				}
				in, err := a.domains.Info(name)
				return in, domainFault(err)
			}},
		{Name: "migration.check", Handler: check, Signatures: [][]string{{"struct", "string", "string"}, {"struct", "string", "string", "struct"}},
			Help: "Dry run of domain.migrate: moves nothing and returns {ok, problems, estimate}: problems are every reason the migration would fail (protocol, engine and CPU, memory on the target, name or UUID already there, disks on repositories the target lacks), one per line. For a running domain it also measures, for about 1.5 s, the guest's dirty rate and the link to the target, and estimate predicts the migration with the given options (live, rate, max_downtime): dirty_rate, hot_bytes, link_throughput, bandwidth, touched_bytes, total_seconds, downtime_ms, rounds, bytes_to_send, stop_reason, auto_converge, max_throttle_percent, throttled_seconds; without one, no_estimate says why."},
	} {
		if err := s.Register(m); err != nil {
			panic(fmt.Sprintf("register %s: %v", m.Name, err))
		}
	}
}
