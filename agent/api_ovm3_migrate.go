package agent

import (
	"context"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// ovm3MigrateMethods: agent 3's migrate_vm, which answers when the move
// is over, on domain.migrate, which answers at once with an id.
func (a *Agent) ovm3MigrateMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "migrate_vm", Result: xmlrpc.Nil, Run: a.ovm3MigrateVM,
			Params: []xmlrpc.Param{xmlrpc.Req("repo_id", xmlrpc.String), xmlrpc.Req("vm_id", xmlrpc.String), xmlrpc.Req("dest", xmlrpc.String),
				xmlrpc.Opt("live", xmlrpc.Boolean), xmlrpc.Opt("ssl", xmlrpc.Boolean)},
			Help: "Oracle VM Agent 3: move the running or paused vm to the agent at dest (HOST[:PORT], its relocation port) with domain.migrate (live and ssl as given, default false; the target credentials from [relocation] peer_user and peer_password_file) and answer nil once it has completed, or a fault saying how it ended. A stopped vm does not move: on a repository both hosts share, start_vm it there."},
	}
}

func (a *Agent) ovm3MigrateVM(ctx context.Context, args xmlrpc.Args) (any, error) {
	name, err := a.ovm3Registered(args)
	if err != nil {
		return nil, err
	}
	if in, err := a.domains.Info(name); err == nil && in.State == "stopped" {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "vm %s (domain %s) is stopped: a stopped vm is not migrated; on a repository both hosts share, start_vm it on %s", args.String(1), name, args.String(2))
	}
	opts := map[string]any{"live": args.Bool(3), "ssl": args.Bool(4)}
	res, err := a.rpc.Call(ctx, "domain.migrate", xmlrpc.Params{name, args.String(2), opts})
	if err != nil {
		return nil, err
	}
	id, _ := res.(string)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := a.migrations.Status(id)
		if err != nil {
			return nil, migrationFault(err)
		}
		if st.Phase.Finished() {
			if st.Phase == control.PhaseCompleted {
				return nil, nil
			}
			return nil, xmlrpc.Faultf(xmlrpc.Internal, "migrate_vm %s to %s %s: %s (migration %s; the vm stays here)", args.String(1), args.String(2), st.Phase, st.Error, id)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			// The caller is gone; the migration goes on and its end is in
			// migration.status.
			return nil, xmlrpc.Faultf(xmlrpc.Cancelled, "migrate_vm: the caller went away; migration %s goes on (migration.status %s follows it)", id, id)
		}
	}
}
