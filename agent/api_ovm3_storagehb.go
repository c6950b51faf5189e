package agent

import (
	"context"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/storagehb"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// Where crash writes (package variables: a test never crashes its host).
var (
	sysrqEnable  = "/proc/sys/kernel/sysrq"
	sysrqTrigger = "/proc/sysrq-trigger"
)

// ovm3StorageHBMethods are the storage heartbeat calls of CloudStack's
// agent module (agent/storagehb in place of its storagehealth.py).
func (a *Agent) ovm3StorageHBMethods() []xmlrpc.Def {
	str := func(n string) xmlrpc.Param { return xmlrpc.Req(n, xmlrpc.String) }
	return []xmlrpc.Def{
		{Name: "check_dom0_storage_health_check", Result: xmlrpc.Array, Run: a.ovm3StorageHBCheck,
			Params: []xmlrpc.Param{str("path"), str("script"), str("guid"), xmlrpc.Req("timeout", xmlrpc.Int), xmlrpc.Req("interval", xmlrpc.Int)},
			Help:   "CloudStack's agent module: run the storage heartbeat for host guid (this agent's own, in place of the script at path/script, which it does not run): every interval seconds the time is written into .hb-<guid> at the top of every repository mounted here; a write that has not ended after timeout seconds is storage this host has lost, and [agent] storage_fence says what then happens (domains: the domains whose disks are there are destroyed; crash: the kernel is crashed, as the script does; none: logged). Answers [running, started]: whether it ran already, whether this call started it (CloudStack calls it with every ping)."},
		{Name: "check_dom0_storage_health", Result: xmlrpc.Boolean, Run: a.ovm3StorageHBState,
			Params: []xmlrpc.Param{str("path"), str("script"), str("guid"), xmlrpc.Req("timeout", xmlrpc.Int)},
			Help:   "CloudStack's agent module: whether host guid's heartbeat file is younger than timeout seconds on every repository mounted here (true with none mounted); a repository that does not answer within the timeout is false."},
	}
}

func (a *Agent) heartbeatMounts() []string {
	if a.repos == nil {
		return nil
	}
	return a.repos.MountPoints()
}

func (a *Agent) ovm3StorageHBCheck(_ context.Context, args xmlrpc.Args) (any, error) {
	timeout, interval := time.Duration(args.Int(3))*time.Second, time.Duration(args.Int(4))*time.Second
	running, started, err := a.storagehb.Ensure(args.String(2), timeout, interval)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "check_dom0_storage_health_check: %v", err)
	}
	return []any{running, started}, nil
}

func (a *Agent) ovm3StorageHBState(_ context.Context, args xmlrpc.Args) (any, error) {
	guid := args.String(2)
	timeout := time.Duration(args.Int(3)) * time.Second
	if timeout < storagehb.MinTimeout || timeout > storagehb.MaxTimeout {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "check_dom0_storage_health: timeout %s: want %s to %s", timeout, storagehb.MinTimeout, storagehb.MaxTimeout)
	}
	// a dead storage's read does not end: wait at most 30 s for it
	ok, ages, err := a.storagehb.State(a.heartbeatMounts(), guid, timeout, min(timeout, 30*time.Second))
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "check_dom0_storage_health: %v", err)
	}
	for _, g := range ages {
		if g.Hung || (g.Found && g.Age >= timeout) {
			a.log.Warn("storage heartbeat stale", zap.String("guid", guid), zap.String("mount", g.Mount), zap.Duration("age", g.Age), zap.Bool("unreadable", g.Hung))
		}
	}
	return ok, nil
}

// storageFence is the heartbeat's answer to storage this host has lost,
// as [agent] storage_fence says. The other hosts then read this one as
// dead, whole: CloudStack starts all its VMs elsewhere, so every domain
// here is stopped, not only those on the lost repository.
func (a *Agent) storageFence(mount string, stalled time.Duration) {
	st := a.state.Load()
	mode := "domains"
	if st != nil && st.cfg != nil {
		mode = st.cfg.Agent.StorageFence
	}
	log := a.log.With(zap.String("mount", mount), zap.Duration("stalled", stalled), zap.String("storage_fence", mode))
	switch mode {
	case "none":
		log.Error("storage lost: nothing is fenced ([agent] storage_fence = none): CloudStack may start these domains elsewhere")
	case "crash":
		log.Error("storage lost: crashing the kernel ([agent] storage_fence = crash)")
		_ = a.log.Sync()
		os.WriteFile(sysrqEnable, []byte("1"), 0)
		if err := os.WriteFile(sysrqTrigger, []byte("c"), 0); err != nil {
			log.Error("storage lost: the kernel could not be crashed; destroying the domains instead", zap.Error(err))
			a.fenceDomains(log)
		}
	default:
		a.fenceDomains(log)
	}
}

// fenceDomains destroys every running or paused domain here, at once.
func (a *Agent) fenceDomains(log *zap.Logger) {
	if a.domains == nil {
		return
	}
	var wg sync.WaitGroup
	for _, in := range a.domains.List(false) {
		if in.State != "running" && in.State != "paused" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.domains.Destroy(in.Name); err != nil {
				log.Error("storage lost: the domain could not be destroyed", zap.String("domain", in.Name), zap.Error(err))
				return
			}
			log.Error("storage lost: domain destroyed so that it does not run twice", zap.String("domain", in.Name))
		}()
	}
	wg.Wait()
}
