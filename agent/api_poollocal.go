package agent

import (
	"context"
	"errors"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/pool"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// poolLocalMethods are what the pool master asks of the member it chose
// for a pool domain (issue 15, layer 2): run it here under this agent's
// lease, or stop it here and let its ownership go.
func (a *Agent) poolLocalMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "pool.start_local", Result: xmlrpc.Struct, Params: []xmlrpc.Param{uuidParam}, Run: a.apiStartLocal,
			Help: "Run pool domain uuid on this agent, as the pool master asks of the member it chose: the domain's spec is read from the pool (etcd), the domain registered here from the spec's vm.cfg if this host does not have it, or has it stopped with another vm.cfg (a different domain by that name or uuid is refused), its owner key taken under this agent's lease, and its VMM given the lease (the run-until time and the generation) before it starts. Returns {name, uuid, host, generation}; a domain that already runs here under this agent's ownership answers the same. Faults: Owned (1011) when another member owns it (the message names that host), NotFound without a spec, BadState when this agent is not a pool member just now, Unsupported when it is in no pool."},
		{Name: "pool.adopt_local", Result: xmlrpc.Struct, Params: []xmlrpc.Param{uuidParam}, Run: a.apiAdoptLocal,
			Help: "Take pool domain uuid, which runs on this agent outside the pool, into the pool without stopping it, as the pool master asks while it adopts the domain (pool.adopt_domain): its spec is read from the pool, the domain here must run with exactly the spec's vm.cfg and never have run in the pool, its owner key is taken under this agent's lease and its VMM given the lease. Returns {name, uuid, host, generation}; one owned here already answers the same. Faults: Owned (1011) when another member owns it, NotFound when the pool has no spec of it, BadState when it does not run here (running or paused) or this agent is not a pool member just now, Exists when it ran in the pool before, Busy when its spec changed meanwhile, InvalidConfig when its vm.cfg here is not the spec's."},
		{Name: "pool.stop_local", Result: xmlrpc.Struct, Run: a.apiStopLocal,
			Params: []xmlrpc.Param{uuidParam, xmlrpc.Opt("destroy", xmlrpc.Boolean), xmlrpc.Opt("timeout", xmlrpc.Int)},
			Help:   "Stop pool domain uuid on this agent and then release its owner key, so that the pool may run it elsewhere: a clean shutdown, destroyed after timeout seconds (default 60), or with destroy true destroyed at once. Returns {name, uuid, host, state, released}; released says whether this agent owned it. Faults: Owned when another member owns it (nothing is released), BadState when this agent is not a pool member just now, Unsupported when it is in no pool."},
	}
}

// poolFault turns an error of the pool domains' work into an API fault.
func (a *Agent) poolFault(err error) error {
	var owned *pool.OwnedError
	var fault *xmlrpc.Fault
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fault):
		return err
	case errors.As(err, &owned):
		return xmlrpc.Faultf(xmlrpc.Owned, "%s", err.Error())
	case errors.Is(err, errNotMember):
		msg := err.Error()
		if a.pool != nil {
			v := a.pool.view(context.Background())
			msg += " (pool " + v.Name + " as " + v.Member + ": " + v.State
			if v.Error != "" {
				msg += ": " + v.Error
			}
			msg += "); try again once host.info shows it a member"
		}
		return xmlrpc.Faultf(xmlrpc.BadState, "%s", msg)
	case errors.Is(err, pool.ErrNoSpec):
		return xmlrpc.Faultf(xmlrpc.NotFound, "%s", err.Error())
	case errors.Is(err, pool.ErrSpecChanged):
		return xmlrpc.Faultf(xmlrpc.Busy, "%s", err.Error())
	case errors.Is(err, errSpecMismatch):
		return xmlrpc.Faultf(xmlrpc.InvalidConfig, "%s", err.Error())
	case errors.Is(err, errOrphan):
		return xmlrpc.Faultf(xmlrpc.Busy, "%s", err.Error())
	case errors.Is(err, errNotHere):
		return xmlrpc.Faultf(xmlrpc.BadState, "%s", err.Error())
	case errors.Is(err, errLocalClash):
		return xmlrpc.Faultf(xmlrpc.Exists, "%s", err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return xmlrpc.Faultf(xmlrpc.Timeout, "%s (etcd did not answer in time)", err.Error())
	}
	var de *domains.Error
	if errors.As(err, &de) {
		return domainFault(err)
	}
	return xmlrpc.Faultf(xmlrpc.Internal, "%s", err.Error())
}

// poolCallTimeout bounds one pool.*_local call's etcd work.
const poolCallTimeout = 30 * time.Second

func (a *Agent) inPool() error {
	if a.pool == nil {
		return xmlrpc.Faultf(xmlrpc.Unsupported, "this agent is in no server pool ([pool] name is empty in its agent.ini): pool domains run only on pool members")
	}
	return nil
}

func (a *Agent) apiStartLocal(ctx context.Context, args xmlrpc.Args) (any, error) {
	if err := a.inPool(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, poolCallTimeout)
	defer cancel()
	res, err := a.pool.domains.startLocal(ctx, args.String(0))
	if err != nil {
		return nil, a.poolFault(err)
	}
	return res, nil
}

func (a *Agent) apiAdoptLocal(ctx context.Context, args xmlrpc.Args) (any, error) {
	if err := a.inPool(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, poolCallTimeout)
	defer cancel()
	res, err := a.pool.domains.adoptLocal(ctx, args.String(0))
	if err != nil {
		return nil, a.poolFault(err)
	}
	return res, nil
}

func (a *Agent) apiStopLocal(ctx context.Context, args xmlrpc.Args) (any, error) {
	if err := a.inPool(); err != nil {
		return nil, err
	}
	secs := args.IntOr(2, int64(DefaultShutdownTimeout/time.Second))
	if secs < 1 || secs > 3600 {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "timeout %d s: give 1 to 3600 seconds", secs)
	}
	timeout := time.Duration(secs) * time.Second
	ctx, cancel := context.WithTimeout(ctx, poolCallTimeout+timeout)
	defer cancel()
	res, err := a.pool.domains.stopLocal(ctx, args.String(0), args.Bool(1), timeout)
	if err != nil {
		return nil, a.poolFault(err)
	}
	return res, nil
}
