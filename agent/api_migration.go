package agent

import (
	"context"
	"fmt"
	"time"

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
		case "live", "ssl", "dry_run":
			b, ok := v.(bool)
			if !ok {
				return o, false, bad("a boolean")
			}
			switch k {
			case "live":
				o.Live = b
			case "ssl":
				o.SSL = b
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
		case "user", "password", "fingerprint":
			s, ok := v.(string)
			if !ok {
				return o, false, bad("a string")
			}
			switch k {
			case "user":
				o.User = s
			case "password":
				o.Password = s
			default:
				o.Fingerprint = s
			}
		default:
			return o, false, xmlrpc.Faultf(xmlrpc.BadParams, "unknown option %q (live, rate, ssl, port, max_downtime, parallel, user, password, fingerprint, dry_run)", k)
		}
	}
	if o.User == "" {
		o.User = "admin"
	}
	return o, dry, nil
}

type checkResult struct {
	OK       bool     `xmlrpc:"ok"`
	Problems []string `xmlrpc:"problems"`
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
		return name, tgt, o, dry, err
	}
	check := func(ctx context.Context, p xmlrpc.Params) (any, error) {
		name, tgt, o, _, err := args(p)
		if err != nil {
			return nil, err
		}
		problems, err := a.migrations.Check(ctx, name, tgt, o)
		if err != nil {
			return nil, domainFault(err)
		}
		if problems == nil {
			problems = []string{}
		}
		return checkResult{OK: len(problems) == 0, Problems: problems}, nil
	}
	for _, m := range []xmlrpc.Method{
		{Name: "migration.check", Handler: check, Signatures: [][]string{{"struct", "string", "string"}, {"struct", "string", "string", "struct"}},
			Help: "Dry run of domain.migrate: moves nothing and returns {ok, problems}, every reason the migration would fail (protocol, engine and CPU, memory on the target, name or UUID already there, disks on repositories the target lacks), one per line."},
	} {
		if err := s.Register(m); err != nil {
			panic(fmt.Sprintf("register %s: %v", m.Name, err))
		}
	}
}
