package agent

import (
	"context"
	"os"
	"path"
	"time"

	"go.uber.org/zap"

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
	longCall(ctx) // answers when the move is over
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

// ovm3SaveImage is where save_vm keeps a vm's image: in its folder of
// the repository (this agent's choice of name).
const ovm3SaveImage = "vm.save"

// ovm3SaveMethods: agent 3's save_vm and restore_vm on domain.save and
// domain.restore, the image in the vm's folder.
func (a *Agent) ovm3SaveMethods() []xmlrpc.Def {
	repoVM := []xmlrpc.Param{xmlrpc.Req("repo_id", xmlrpc.String), xmlrpc.Req("vm_id", xmlrpc.String)}
	return []xmlrpc.Def{
		{Name: "save_vm", Result: xmlrpc.Nil, Run: a.ovm3SaveVM, Params: append(append([]xmlrpc.Param{}, repoVM...), xmlrpc.Opt("checkpoint", xmlrpc.Boolean)),
			Help: "Oracle VM Agent 3: save the running or paused vm to VirtualMachines/<vm_id>/vm.save of its repository (domain.save); it is suspended afterwards. A checkpoint (keep running) is refused: this agent's save suspends."},
		{Name: "restore_vm", Result: xmlrpc.Nil, Run: a.ovm3RestoreVM, Params: append(append([]xmlrpc.Param{}, repoVM...), xmlrpc.Opt("paused", xmlrpc.Boolean)),
			Help: "Oracle VM Agent 3: start the vm from the image save_vm wrote (domain.restore), paused if asked, and remove the image once it runs."},
	}
}

func (a *Agent) ovm3SaveVM(ctx context.Context, args xmlrpc.Args) (any, error) {
	if args.Bool(2) {
		return nil, xmlrpc.Faultf(xmlrpc.Unsupported, "save_vm with checkpoint: this agent's save suspends the vm (domain.save); a checkpoint that keeps it running is not offered")
	}
	name, err := a.ovm3Registered(args)
	if err != nil {
		return nil, err
	}
	v, _ := a.ovm3Target(args)
	longCall(ctx) // a large vm's image
	return nil, a.callOwn(ctx, "domain.save", name, path.Join(v.mount, v.dir(), ovm3SaveImage))
}

func (a *Agent) ovm3RestoreVM(ctx context.Context, args xmlrpc.Args) (any, error) {
	if _, err := a.ovm3Registered(args); err != nil {
		return nil, err
	}
	v, _ := a.ovm3Target(args)
	img := path.Join(v.mount, v.dir(), ovm3SaveImage)
	longCall(ctx)
	if err := a.callOwn(ctx, "domain.restore", img); err != nil {
		return nil, err
	}
	// It runs from the image now; the image goes, so that the next
	// save_vm can write it again.
	if err := os.Remove(img); err != nil {
		a.log.Warn("restore_vm: the save image stays", zap.String("image", img), zap.Error(err))
	}
	if args.Bool(2) {
		if in, ok := a.ovm3Domain(v.id); ok {
			return nil, a.callOwn(ctx, "domain.pause", in.Name)
		}
	}
	return nil, nil
}
