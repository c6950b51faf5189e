package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/agent/pool"
	"github.com/ovs-agent/ovs-agent/agent/poolmaster"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
	"github.com/ovs-agent/ovs-agent/internal/passwordfile"
)

// forwardTimeout bounds a pool call forwarded to the master.
const forwardTimeout = 90 * time.Second

// poolMasterMethods is the pool namespace's pool-level calls: reads any
// member answers from etcd, and changes that only the pool master makes
// (another agent forwards them to it).
func (a *Agent) poolMasterMethods() []xmlrpc.Def {
	ref := xmlrpc.Req("domain", xmlrpc.String)
	return []xmlrpc.Def{
		{Name: "pool.info", Result: xmlrpc.Struct, Run: a.apiPoolInfo,
			Help: "The server pool this agent is a member of: name, master (the member elected pool master, \"\" during an election), members (host, API address, free_memory_mib, engines, state: active or maintenance, master), maintenance_not_members (hosts in maintenance that are not members now) and the number of pool domains. Read from etcd by this agent."},
		{Name: "pool.domains", Result: xmlrpc.Array, Run: a.apiPoolDomains,
			Help: "Every domain of the pool: name, uuid, host (where it runs: its owner; \"\" when nowhere), desired (running or stopped), ha, preferred (Manual placement; empty is Auto), priority, memory_mib, generation (its owner's), and the master's status: state (running, pending or stopped), status_host (set while it is being started there), reason (why it is pending or stopped) and since. Read from etcd by this agent."},
		{Name: "pool.create_domain", Result: xmlrpc.Struct, Run: a.apiPoolCreate,
			Params: []xmlrpc.Param{xmlrpc.Req("cfg", xmlrpc.String), xmlrpc.Opt("options", xmlrpc.Struct)},
			Help:   "Add a domain to the pool from a vm.cfg (the text, or an absolute path on the called agent's host; its disks must be on a repository every member mounts) and, unless options.start is false, have the master place and start it. options: ha (boolean: restart it elsewhere when its server fails), preferred (array of member names: Manual placement, only there; default Auto, the member with the most free memory), priority (int: higher starts first when several wait), start (boolean, default true). A vm.cfg without uuid gets one. Done by the pool master; any member forwards it there. Returns the domain as pool.domains shows it."},
		{Name: "pool.start_domain", Result: xmlrpc.Struct, Run: a.poolDesired(poolmaster.DesiredRunning), Params: []xmlrpc.Param{ref},
			Help: "Want a pool domain (by name or uuid) running: the master places it (pending, with the reason, while no member has room) and starts it. Forwarded to the pool master. Returns the domain as pool.domains shows it."},
		{Name: "pool.stop_domain", Result: xmlrpc.Struct, Run: a.poolDesired(poolmaster.DesiredStopped), Params: []xmlrpc.Param{ref},
			Help: "Want a pool domain (by name or uuid) stopped: the master has its owner stop it. Forwarded to the pool master. Returns the domain as pool.domains shows it."},
		{Name: "pool.delete_domain", Result: xmlrpc.Boolean, Run: a.apiPoolDelete, Params: []xmlrpc.Param{ref},
			Help: "Remove a pool domain (by name or uuid) that runs nowhere (stop it first). Its disks are left alone. Forwarded to the pool master."},
		{Name: "pool.adopt_domain", Result: xmlrpc.Struct, Run: a.apiPoolAdopt,
			Params: []xmlrpc.Param{ref, xmlrpc.Opt("options", xmlrpc.Struct)},
			Help:   "Make a domain that runs on the called agent, outside the pool, a pool domain without stopping it: the master records it from the vm.cfg it runs with here (its disks must be on a repository every member mounts, for it to run elsewhere) and this agent takes its owner key; from then on it is stopped, moved and restarted as any pool domain. options: ha, preferred, priority as pool.create_domain's. Refused for a domain that is not running here, that ran in the pool before, or whose name or uuid the pool has. Done by the pool master; any member forwards it there. Returns the domain as pool.domains shows it."},
		{Name: "pool.adopt_from", Result: xmlrpc.Struct, Run: a.apiPoolAdoptFrom,
			Params: []xmlrpc.Param{xmlrpc.Req("host", xmlrpc.String), xmlrpc.Req("cfg", xmlrpc.String), xmlrpc.Opt("options", xmlrpc.Struct)},
			Help:   "pool.adopt_domain as a member forwards it to the pool master: adopt the domain that runs on member host with vm.cfg text cfg (host's pool.adopt_local refuses any other). Returns the domain as pool.domains shows it."},
		{Name: "pool.set_ha", Result: xmlrpc.Struct, Run: a.apiPoolSetHA, Params: []xmlrpc.Param{ref, xmlrpc.Req("on", xmlrpc.Boolean)},
			Help: "Turn a pool domain's (by name or uuid) high availability on or off: whether the master starts it again elsewhere when the server it runs on fails. Forwarded to the pool master. Returns the domain as pool.domains shows it."},
		{Name: "pool.maintenance", Result: xmlrpc.Boolean, Run: a.apiPoolMaintenance,
			Params: []xmlrpc.Param{xmlrpc.Req("host", xmlrpc.String), xmlrpc.Req("on", xmlrpc.Boolean)},
			Help:   "Put a member in maintenance (on true: it gets no new placements) or take it out (false). Its running domains stay where they are: moving them away first is not done yet. Forwarded to the pool master."},
	}
}

// poolFault turns a pool master error into an API fault.
func poolFault(err error) error {
	if err == nil {
		return nil
	}
	var f *xmlrpc.Fault
	if errors.As(err, &f) {
		return err
	}
	code := xmlrpc.Internal
	switch poolmaster.KindOf(err) {
	case poolmaster.NotMaster:
		return xmlrpc.Faultf(xmlrpc.Busy, "%v: the pool's mastership is changing; try again", err)
	case poolmaster.NotFound:
		code = xmlrpc.NotFound
	case poolmaster.Exists:
		code = xmlrpc.Exists
	case poolmaster.Busy:
		code = xmlrpc.Busy
	case poolmaster.BadState:
		code = xmlrpc.BadState
	case poolmaster.Invalid:
		code = xmlrpc.InvalidConfig
	}
	return xmlrpc.Faultf(code, "%v", err)
}

// poolMember is the agent's membership, or the fault that says why there
// is none.
func (a *Agent) poolMember() (*pool.Member, *poolmaster.Runner, error) {
	if a.pool == nil {
		return nil, nil, xmlrpc.Faultf(xmlrpc.Unsupported, "this agent is in no server pool ([pool] name is empty in agent.ini)")
	}
	m, r, state, err := a.pool.current()
	if m == nil || r == nil {
		msg := fmt.Sprintf("this agent is not a member of pool %s just now (%s)", a.pool.s.Pool, state)
		if err != nil {
			msg += ": " + err.Error()
		}
		return nil, nil, xmlrpc.Faultf(xmlrpc.Busy, "%s; try again once it has joined (host.info shows the pool state)", msg)
	}
	return m, r, nil
}

// peerCredentials are what this agent presents to the pool's other
// agents: [relocation] peer_user and peer_password_file, as for
// migrations.
func (a *Agent) peerCredentials() (string, string, error) {
	rc := a.state.Load().cfg.Relocation
	if rc.PeerPasswordFile == "" {
		return "", "", errors.New("[relocation] peer_password_file is empty: the pool's agents call each other with [relocation] peer_user and that file's password")
	}
	pw, err := passwordfile.Read(rc.PeerPasswordFile)
	if err != nil {
		return "", "", fmt.Errorf("[relocation] peer_password_file: %w", err)
	}
	return rc.PeerUser, pw, nil
}

// onMaster runs a pool-level change on this agent when it is the pool
// master, and otherwise forwards the same call (method and args) to the
// master's agent, once: a forwarded call that finds no master here is
// refused, not sent on.
func (a *Agent) onMaster(ctx context.Context, method string, args []any, local func(*poolmaster.Runner) (any, error)) (any, error) {
	m, r, err := a.poolMember()
	if err != nil {
		return nil, err
	}
	if r.IsMaster() {
		res, err := local(r)
		if poolmaster.KindOf(err) != poolmaster.NotMaster {
			return res, poolFault(err)
		}
	}
	if by := CallerFrom(ctx).ForwardedBy; by != "" {
		return nil, xmlrpc.Faultf(xmlrpc.Busy, "%s forwarded this call to %s as the pool master, but %s is not (the mastership is changing); try again", by, m.Host(), m.Host())
	}
	fctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	rec, err := poolmaster.MasterRecord(fctx, m)
	if errors.Is(err, pool.ErrNoMaster) {
		return nil, xmlrpc.Faultf(xmlrpc.Busy, "pool %s has no master just now (an election is under way, or no member reaches etcd); try again", m.Pool())
	}
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "find the pool master: %v", err)
	}
	if rec.Host == m.Host() {
		return nil, xmlrpc.Faultf(xmlrpc.Busy, "this agent (%s) has just been elected pool master and is not ready yet; try again", m.Host())
	}
	var reply any
	err = a.pool.rpc.Call(fctx, rec, method, &reply, args...)
	var f *client.Fault
	switch {
	case errors.As(err, &f):
		return nil, xmlrpc.Faultf(f.Code, "%s (answered by the pool master %s)", f.Message, rec.Host)
	case client.IsAuth(err):
		return nil, xmlrpc.Faultf(xmlrpc.AuthFailed, "the pool master %s refused this agent's credentials ([relocation] peer_user and peer_password_file): %v", rec.Host, err)
	case err != nil:
		return nil, xmlrpc.Faultf(xmlrpc.Busy, "cannot forward %s to the pool master %s: %v", method, rec.Host, err)
	}
	return reply, nil
}

func (a *Agent) apiPoolInfo(ctx context.Context, _ xmlrpc.Args) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, poolCallTimeout) // etcd without quorum must not hold the call
	defer cancel()
	m, _, err := a.poolMember()
	if err != nil {
		return nil, err
	}
	pv, err := poolmaster.Info(ctx, m)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Busy, "read the pool from etcd: %v", err)
	}
	return pv, nil
}

func (a *Agent) apiPoolDomains(ctx context.Context, _ xmlrpc.Args) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, poolCallTimeout) // etcd without quorum must not hold the call
	defer cancel()
	m, _, err := a.poolMember()
	if err != nil {
		return nil, err
	}
	ds, err := poolmaster.Domains(ctx, m)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Busy, "read the pool's domains from etcd: %v", err)
	}
	return ds, nil
}

func (a *Agent) apiPoolCreate(ctx context.Context, args xmlrpc.Args) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout) // a change, forwarded or not, is bounded too
	defer cancel()
	text, _, err := readConfigSource(a.fileRoots(), args.String(0))
	if err != nil {
		return nil, err
	}
	o := poolmaster.CreateOptions{Start: true}
	var opts map[string]any
	if args.Has(1) {
		opts = args.Struct(1)
	}
	if err := parseCreateOptions(opts, &o, true); err != nil {
		return nil, err
	}
	fwd := []any{string(text)}
	if opts != nil {
		fwd = append(fwd, opts)
	}
	return a.onMaster(ctx, "pool.create_domain", fwd, func(r *poolmaster.Runner) (any, error) {
		return r.Create(ctx, string(text), o)
	})
}

// parseCreateOptions reads pool.create_domain's options (and, without
// start, pool.adopt_domain's) into o.
func parseCreateOptions(opts map[string]any, o *poolmaster.CreateOptions, withStart bool) error {
	for k, v := range opts {
		switch k {
		case "ha":
			b, ok := v.(bool)
			if !ok {
				return xmlrpc.Faultf(xmlrpc.BadParams, "option ha: a boolean")
			}
			o.HA = b
		case "start":
			if !withStart {
				return xmlrpc.Faultf(xmlrpc.BadParams, "option start: an adopted domain runs already")
			}
			b, ok := v.(bool)
			if !ok {
				return xmlrpc.Faultf(xmlrpc.BadParams, "option start: a boolean")
			}
			o.Start = b
		case "priority":
			n, ok := v.(int64)
			if !ok {
				if i, isInt := v.(int); isInt {
					n, ok = int64(i), true
				}
			}
			if !ok || n < -1000 || n > 1000 {
				return xmlrpc.Faultf(xmlrpc.BadParams, "option priority: an int from -1000 to 1000")
			}
			o.Priority = int(n)
		case "preferred":
			list, ok := v.([]any)
			if !ok {
				return xmlrpc.Faultf(xmlrpc.BadParams, "option preferred: an array of member names")
			}
			for _, e := range list {
				s, ok := e.(string)
				if !ok || s == "" {
					return xmlrpc.Faultf(xmlrpc.BadParams, "option preferred: an array of member names")
				}
				o.Preferred = append(o.Preferred, s)
			}
		default:
			if withStart {
				return xmlrpc.Faultf(xmlrpc.BadParams, "unknown option %q (ha, preferred, priority, start)", k)
			}
			return xmlrpc.Faultf(xmlrpc.BadParams, "unknown option %q (ha, preferred, priority)", k)
		}
	}
	return nil
}

func (a *Agent) apiPoolAdopt(ctx context.Context, args xmlrpc.Args) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	m, _, err := a.poolMember()
	if err != nil {
		return nil, err
	}
	in, err := a.domains.Info(args.String(0))
	if err != nil {
		return nil, domainFault(err)
	}
	if !hasVMM(in.State) {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "%s is %s: only a running domain is adopted into the pool (pool.create_domain adds a stopped one)", in.Name, in.State)
	}
	text, err := boundedfile.ReadFile(in.ConfigFile, vmcfg.MaxFileSize, boundedfile.NoFollow)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "read the vm.cfg %s runs with: %v", in.Name, err)
	}
	var opts map[string]any
	if args.Has(1) {
		opts = args.Struct(1)
	}
	var o poolmaster.CreateOptions
	if err := parseCreateOptions(opts, &o, false); err != nil {
		return nil, err
	}
	fwd := []any{m.Host(), string(text)}
	if opts != nil {
		fwd = append(fwd, opts)
	}
	return a.onMaster(ctx, "pool.adopt_from", fwd, func(r *poolmaster.Runner) (any, error) {
		return r.Adopt(ctx, string(text), o, m.Host())
	})
}

func (a *Agent) apiPoolAdoptFrom(ctx context.Context, args xmlrpc.Args) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	host, text := args.String(0), args.String(1)
	var opts map[string]any
	if args.Has(2) {
		opts = args.Struct(2)
	}
	var o poolmaster.CreateOptions
	if err := parseCreateOptions(opts, &o, false); err != nil {
		return nil, err
	}
	fwd := []any{host, text}
	if opts != nil {
		fwd = append(fwd, opts)
	}
	return a.onMaster(ctx, "pool.adopt_from", fwd, func(r *poolmaster.Runner) (any, error) {
		return r.Adopt(ctx, text, o, host)
	})
}

func (a *Agent) apiPoolSetHA(ctx context.Context, args xmlrpc.Args) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	ref, on := args.String(0), args.Bool(1)
	return a.onMaster(ctx, "pool.set_ha", []any{ref, on}, func(r *poolmaster.Runner) (any, error) {
		return r.SetHA(ctx, ref, on)
	})
}

func (a *Agent) poolDesired(desired string) func(context.Context, xmlrpc.Args) (any, error) {
	method := "pool.start_domain"
	if desired == poolmaster.DesiredStopped {
		method = "pool.stop_domain"
	}
	return func(ctx context.Context, args xmlrpc.Args) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, forwardTimeout) // a change, forwarded or not, is bounded too
		defer cancel()
		ref := args.String(0)
		return a.onMaster(ctx, method, []any{ref}, func(r *poolmaster.Runner) (any, error) {
			return r.SetDesired(ctx, ref, desired)
		})
	}
}

func (a *Agent) apiPoolDelete(ctx context.Context, args xmlrpc.Args) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout) // a change, forwarded or not, is bounded too
	defer cancel()
	ref := args.String(0)
	return a.onMaster(ctx, "pool.delete_domain", []any{ref}, func(r *poolmaster.Runner) (any, error) {
		return true, r.Delete(ctx, ref)
	})
}

func (a *Agent) apiPoolMaintenance(ctx context.Context, args xmlrpc.Args) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout) // a change, forwarded or not, is bounded too
	defer cancel()
	host, on := args.String(0), args.Bool(1)
	return a.onMaster(ctx, "pool.maintenance", []any{host, on}, func(r *poolmaster.Runner) (any, error) {
		return true, r.SetMaintenance(ctx, host, on)
	})
}
