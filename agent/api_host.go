package agent

import (
	"context"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
	"github.com/ovs-agent/ovs-agent/agent/qemuhost"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// hostMethods is the host namespace: this host's hardware and load.
func (a *Agent) hostMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "host.info", Result: xmlrpc.Struct, Run: a.apiHostInfo,
			Help: "This host: host name, CPU count/model/vendor/flags, memory total/free/available (bytes), kernel, whether KVM is usable and why not, agent version and uptime, and qemu: the QEMU binary qemu domains run under, its version (or why it is unusable: problem), and the accelerator they get (kvm or tcg) with accel_reason; and, in a server pool ([pool] name), pool: its name, the member name, state (joining, member or lost) and since when, the lease, its TTL and how long it holds without another renewal, the pool master, the last error, and domains: the pool domains this agent owns."},
		{Name: "host.stats", Result: xmlrpc.Struct, Run: a.apiHostStats,
			Help: "Current load of this host: load averages, CPU busy percent since the previous call (at least 1 s), memory and swap (bytes), running processes, uptime."},
		{Name: "host.top", Result: xmlrpc.Struct, Run: a.apiHostTop,
			Help: "What `ovm top` shows: host.stats, the memory committed to domains, and every domain with its state, CPU time, dirty rate and memory."},
	}
}

type hostInfo struct {
	*hostinfo.Info
	AgentVersion  string  `xmlrpc:"agent_version"`
	AgentUptime   float64 `xmlrpc:"agent_uptime_seconds"`
	AgentProtocol int     `xmlrpc:"agent_protocol"`
	// QEMU is what this host offers qemu domains: the binary, its
	// version or why it is unusable, the accelerator chosen and why.
	QEMU *qemuhost.Facts `xmlrpc:"qemu,omitempty"`
	// Pool is this agent's server pool membership; absent when [pool]
	// names no pool.
	Pool *poolInfo `xmlrpc:"pool,omitempty"`
}

func (a *Agent) apiHostInfo(ctx context.Context, _ xmlrpc.Args) (any, error) {
	info, err := hostinfo.Read(hostinfo.DefaultPaths)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "read host information: %v", err)
	}
	hi := hostInfo{Info: info, AgentVersion: a.opts.Version, AgentUptime: time.Since(a.started).Seconds(), AgentProtocol: ProtocolVersion}
	if a.qemu != nil {
		f := a.qemu.Facts(ctx)
		hi.QEMU = &f
	}
	if a.pool != nil {
		pi := a.pool.view(ctx)
		hi.Pool = &pi
	}
	return hi, nil
}

func (a *Agent) apiHostStats(context.Context, xmlrpc.Args) (any, error) {
	st, err := a.sampler.Sample()
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "read host statistics: %v", err)
	}
	return st, nil
}

func (a *Agent) apiHostTop(ctx context.Context, args xmlrpc.Args) (any, error) {
	st, err := a.apiHostStats(ctx, args)
	if err != nil {
		return nil, err
	}
	doms := a.domains.List(true)
	if doms == nil {
		doms = []domains.Info{}
	}
	return map[string]any{"host": st, "memory_committed": int64(a.domains.Committed()), "domains": doms}, nil
}
