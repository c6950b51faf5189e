package agent

import (
	"context"

	"github.com/ovs-agent/ovs-agent/agent/migration"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// xendFaults maps faults onto xend's codes: 3 for an unknown domain, 1 for
// an internal error, 2 for everything else (a wrong call included).
func xendFaults(f *xmlrpc.Fault) *xmlrpc.Fault {
	switch f.Code {
	case xmlrpc.NotFound:
		return &xmlrpc.Fault{Code: xmlrpc.XendInvalidDomain, Message: f.Message}
	case xmlrpc.Internal:
		return &xmlrpc.Fault{Code: xmlrpc.XendInternal, Message: f.Message}
	}
	return &xmlrpc.Fault{Code: xmlrpc.XendGeneric, Message: f.Message}
}

// xendAlias declares xend's name for a method that xend had with the same
// parameters: the same declaration and handler, with xend's fault codes.
func xendAlias(name string) []xmlrpc.Alias {
	return []xmlrpc.Alias{{Name: name, Faults: xendFaults,
		Note: ", xend's name, with xend's fault codes (3 unknown domain, 1 internal error, 2 any other)"}}
}

// xendMethods are xend's names whose parameters or results differ from
// the agent's own methods (the others are aliases, see xendAlias); they
// answer with xend's fault codes too.
func (a *Agent) xendMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "xend.domains", Result: xmlrpc.Array, Faults: xendFaults, Run: a.xendDomains,
			// xend took any value here and so does this: it is ignored.
			Params: []xmlrpc.Param{{Name: "detail", Type: xmlrpc.Int, Optional: true,
				Or: []xmlrpc.Type{xmlrpc.Boolean, xmlrpc.String, xmlrpc.Double, xmlrpc.DateTime, xmlrpc.Base64, xmlrpc.Struct, xmlrpc.Array, xmlrpc.Nil}}},
			Help: "xend: the names of the domains (an optional detail flag is accepted and ignored)."},
		{Name: "xend.domain.shutdown", Result: xmlrpc.Struct, Faults: xendFaults, Run: a.xendShutdown,
			Params: []xmlrpc.Param{nameParam, xmlrpc.Opt("reason", xmlrpc.String)},
			Help:   "xend: shut a domain down; the second parameter is xend's reason: poweroff (default), halt, reboot."},
		{Name: "xend.domain.migrate", Result: xmlrpc.String, Faults: xendFaults, Run: a.xendMigrate,
			Params: []xmlrpc.Param{
				xmlrpc.Req("domid", xmlrpc.String), xmlrpc.Req("dst", xmlrpc.String), xmlrpc.Opt("live", xmlrpc.Boolean),
				xmlrpc.Opt("port", xmlrpc.Int), xmlrpc.Opt("node", xmlrpc.Int), xmlrpc.Opt("ssl", xmlrpc.Boolean),
			},
			Help: "xend: migrate(domid, dst, live, port, node, ssl); node is accepted and ignored. The target credentials come from [relocation] peer_user and peer_password_file. Returns the migration id."},
	}
}

func (a *Agent) xendDomains(context.Context, xmlrpc.Args) (any, error) {
	names := a.domains.Names()
	if names == nil {
		names = []string{}
	}
	return names, nil
}

func (a *Agent) xendShutdown(_ context.Context, args xmlrpc.Args) (any, error) {
	name := args.String(0)
	switch reason := args.StringOr(1, "poweroff"); reason {
	case "poweroff", "halt":
		if a.pool != nil {
			if err := a.pool.domains.mayStop(name); err != nil {
				return nil, err
			}
		}
		return a.domainInfo(name, a.domains.Shutdown(name, DefaultShutdownTimeout))
	case "reboot":
		return a.domainInfo(name, a.domains.Reboot(name, DefaultShutdownTimeout))
	default:
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "shutdown reason %q: want poweroff, halt or reboot", reason)
	}
}

// xendMigrate moves a running domain; xend never moved a stopped one, so
// neither does its name here.
func (a *Agent) xendMigrate(_ context.Context, args xmlrpc.Args) (any, error) {
	o := migration.Options{Live: args.Bool(2), Port: int(args.Int(3)), SSL: args.Bool(5)}
	if err := a.withPeerCredentials(&o); err != nil {
		return nil, err
	}
	return a.startMove(move{name: args.String(0), target: args.String(1), opts: o}, false)
}
