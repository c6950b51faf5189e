package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
	"github.com/ovs-agent/ovs-agent/agent/ovm3"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/internal/atomicfile"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
)

// ovm3RepoPrefix is where agent 3 mounts its repositories; this agent
// mounts them at [repository] root/<uuid> and translates the names (see
// ovm3PathMap).
const ovm3RepoPrefix = "/OVS/Repositories/"

// ovm3PathMap translates between agent 3's names of repository paths,
// /OVS/Repositories/<id>/..., and where this agent has the repositories
// mounted; and between /nfsmnt/<name>/... (the storage plugin's other
// mounts) and [agent] secondary_storage_dir.
type ovm3PathMap struct {
	mounts map[string]string // agent 3 id -> mount point
	sec    string            // the secondary storage directory
}

func (a *Agent) ovm3Paths() ovm3PathMap {
	pm := ovm3PathMap{mounts: map[string]string{}, sec: a.secondaryDir()}
	if a.repos == nil {
		return pm
	}
	rep, _ := a.repos.Status(context.Background())
	for _, r := range rep.Repositories {
		if id, err := ovm3.RepoID(r.UUID); err == nil && r.MountPoint != "" && (r.State == "mounted" || r.State == "in use") {
			pm.mounts[id] = r.MountPoint
		}
	}
	return pm
}

// internal maps an agent 3 path onto this host's; other paths are
// returned unchanged.
func (pm ovm3PathMap) internal(p string) string {
	if strings.HasPrefix(p, "/") {
		p = path.Clean(p) // ".." is taken before the mapping, never after
	}
	rest, ok := strings.CutPrefix(p, ovm3RepoPrefix)
	if !ok {
		return secondaryInternal(pm.sec, p)
	}
	id, tail, _ := strings.Cut(rest, "/")
	if mp, ok := pm.mounts[strings.ToLower(id)]; ok {
		if tail == "" {
			return mp
		}
		return mp + "/" + tail
	}
	return p
}

// external maps a path on this host inside a repository onto agent 3's
// name for it; other paths are returned unchanged.
func (pm ovm3PathMap) external(p string) string {
	for id, mp := range pm.mounts {
		if p == mp {
			return ovm3RepoPrefix + id
		}
		if tail, ok := strings.CutPrefix(p, mp+"/"); ok {
			return ovm3RepoPrefix + id + "/" + tail
		}
	}
	return secondaryExternal(pm.sec, p)
}

// disk maps the path of a vm.cfg disk entry (type:path,dev,mode) with f.
func mapDisk(spec string, f func(string) string) string {
	first, rest, hasRest := strings.Cut(spec, ",")
	i := strings.LastIndex(first, ":")
	if i < 0 {
		return spec
	}
	out := first[:i+1] + f(first[i+1:])
	if hasRest {
		out += "," + rest
	}
	return out
}

// ovm3VM is a (repository, vm) pair of an agent 3 call, checked: the
// repository mounted here, the vm id a folder name under VirtualMachines.
type ovm3VM struct {
	repo  string // agent 3 id
	mount string
	id    string
	paths ovm3PathMap
}

func (v ovm3VM) dir() string { return path.Join(ovm3.VirtualMachines, v.id) }
func (v ovm3VM) cfg() string { return path.Join(v.dir(), "vm.cfg") }

// where is the vm.cfg, by agent 3's name, for messages.
func (v ovm3VM) where() string { return ovm3RepoPrefix + v.repo + "/" + v.cfg() }

func (a *Agent) ovm3Target(args xmlrpc.Args) (ovm3VM, error) {
	if err := a.needRepos(); err != nil {
		return ovm3VM{}, err
	}
	id, err := ovm3.RepoID(args.String(0))
	if err != nil {
		return ovm3VM{}, xmlrpc.Faultf(xmlrpc.BadParams, "%v", err)
	}
	if err := ovm3.VMID(args.String(1)); err != nil {
		return ovm3VM{}, xmlrpc.Faultf(xmlrpc.BadParams, "%v", err)
	}
	pm := a.ovm3Paths()
	mp, ok := pm.mounts[id]
	if !ok {
		return ovm3VM{}, xmlrpc.Faultf(xmlrpc.NotFound, "no repository %s is mounted on this host (repository.list shows those that are)", id)
	}
	return ovm3VM{repo: id, mount: mp, id: args.String(1), paths: pm}, nil
}

// readCfg reads the VM's vm.cfg from its repository, inside it.
func (v ovm3VM) readCfg() ([]byte, error) {
	root, err := os.OpenRoot(v.mount)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "open repository %s: %v", v.repo, err)
	}
	defer root.Close()
	f, err := boundedfile.OpenIn(root, v.cfg())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, xmlrpc.Faultf(xmlrpc.NotFound, "no vm %s in repository %s (%s does not exist)", v.id, v.repo, v.where())
	}
	if err != nil {
		return nil, fileFault(v.where(), err)
	}
	defer f.Close()
	data, err := boundedfile.ReadAll(f, v.where(), vmcfg.MaxFileSize)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.InvalidConfig, "read %s: %v", v.where(), err)
	}
	return data, nil
}

// writeCfg writes the VM's vm.cfg in its repository; with create set it
// makes the folder and refuses an existing file.
func (v ovm3VM) writeCfg(text []byte, create bool) error {
	root, err := os.OpenRoot(v.mount)
	if err != nil {
		return xmlrpc.Faultf(xmlrpc.Internal, "open repository %s: %v", v.repo, err)
	}
	defer root.Close()
	if create {
		if err := root.MkdirAll(v.dir(), 0o755); err != nil {
			return fileFault(v.where(), err)
		}
		f, err := root.OpenFile(v.cfg(), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			return xmlrpc.Faultf(xmlrpc.Exists, "vm %s exists already in repository %s (%s)", v.id, v.repo, v.where())
		}
		if err != nil {
			return fileFault(v.where(), err)
		}
		_, werr := f.Write(text)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			root.Remove(v.cfg())
			return fileFault(v.where(), werr)
		}
		return nil
	}
	// Replace: the folder must be a real one inside the repository.
	if fi, err := root.Lstat(v.dir()); err != nil || !fi.IsDir() {
		return xmlrpc.Faultf(xmlrpc.NotFound, "no vm %s in repository %s", v.id, v.repo)
	}
	if err := atomicfile.WriteFile(path.Join(v.mount, v.cfg()), text, 0o644); err != nil {
		return fileFault(v.where(), err)
	}
	return nil
}

// ovm3Domain finds the registered domain of an agent 3 vm id: the one
// whose UUID it is (dashes and case aside).
func (a *Agent) ovm3Domain(id string) (domains.Info, bool) {
	for _, in := range a.domains.List(false) {
		if ovm3.SameUUID(in.UUID, id) {
			return in, true
		}
	}
	return domains.Info{}, false
}

// ovm3IntKeys are the vm.cfg keys CloudStack may send as decimal
// strings (memory, from a Java Long.toString) that vm.cfg holds as ints.
var ovm3IntKeys = []string{"memory", "maxmem", "vcpus", "maxvcpus", "cpu_weight", "cpu_cap"}

// ovm3ConfigText is the vm.cfg of a create_vm or configure_vm struct:
// disk paths named the agent 3 way mapped onto the repositories here,
// the uuid taken from the vm id when the struct has none, ints sent as
// strings made ints.
func (v ovm3VM) configText(params map[string]any) ([]byte, error) {
	p := make(map[string]any, len(params)+1)
	for k, x := range params {
		p[k] = x
	}
	for _, k := range ovm3IntKeys {
		if s, ok := p[k].(string); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return nil, xmlrpc.Faultf(xmlrpc.InvalidConfig, "vm.cfg key %s: %q is not a whole number", k, s)
			}
			p[k] = n
		}
	}
	if disks, ok := p["disk"].([]any); ok {
		out := make([]any, len(disks))
		for i, d := range disks {
			if s, ok := d.(string); ok {
				out[i] = mapDisk(s, v.paths.internal)
			} else {
				out[i] = d
			}
		}
		p["disk"] = out
	}
	if _, ok := p["uuid"]; !ok {
		p["uuid"] = v.id
	}
	text, err := ovm3.ConfigText(p)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.InvalidConfig, "%v", err)
	}
	return text, nil
}

// ovm3VMMethods are agent 3's VM calls (the Xen class), addressed as
// (repository id, vm id) with the vm.cfg at VirtualMachines/<vm>/vm.cfg
// of the repository; the domain they act on is the registered domain of
// that UUID, registered from that file.
func (a *Agent) ovm3VMMethods() []xmlrpc.Def {
	repoVM := []xmlrpc.Param{xmlrpc.Req("repo_id", xmlrpc.String), xmlrpc.Req("vm_id", xmlrpc.String)}
	with := func(p ...xmlrpc.Param) []xmlrpc.Param { return append(append([]xmlrpc.Param{}, repoVM...), p...) }
	return []xmlrpc.Def{
		{Name: "list_vms", Result: xmlrpc.Array, Run: a.ovm3ListVMs,
			Help: "Oracle VM Agent 3: the domains that run here (running, paused, starting, stopping, migrating) as xend structs with string values (name, uuid, state as xm's flags, memory, vcpus, cpu_time, start_time, device with vbd, vif and vfb), Domain-0 (this host) first."},
		{Name: "list_vm", Result: xmlrpc.Struct, Params: repoVM, Run: a.ovm3ListVM,
			Help: "Oracle VM Agent 3: list_vms' struct of the vm (repo_id, vm_id), or nil when it does not run here."},
		{Name: "get_vm_config", Result: xmlrpc.Struct, Params: repoVM, Run: a.ovm3GetConfig,
			Help: "Oracle VM Agent 3: the vm.cfg of (repo_id, vm_id) as a struct: vif, disk and vfb arrays of strings, memory, vcpus and maxvcpus ints, and every other key."},
		{Name: "create_vm", Result: xmlrpc.Nil, Params: with(xmlrpc.Req("params", xmlrpc.Struct)), Run: a.ovm3CreateVM,
			Help: "Oracle VM Agent 3: write the vm.cfg of the params struct to VirtualMachines/<vm_id>/vm.cfg of repository repo_id (refused if one is there) and register the domain from it, stopped. Disk paths /OVS/Repositories/<id>/... are the repositories mounted here."},
		{Name: "configure_vm", Result: xmlrpc.Nil, Params: with(xmlrpc.Req("params", xmlrpc.Struct)), Run: a.ovm3ConfigureVM,
			Help: "Oracle VM Agent 3: replace the vm.cfg of a stopped vm with the params struct and register the domain again from it; refused while it runs."},
		{Name: "start_vm", Result: xmlrpc.Nil, Params: repoVM, Run: a.ovm3StartVM,
			Help: "Oracle VM Agent 3: start the vm from its vm.cfg in the repository (registering it, or registering it again when the file changed since) with domain.start."},
		{Name: "stop_vm", Result: xmlrpc.Nil, Params: with(xmlrpc.Opt("force", xmlrpc.Boolean)), Run: a.ovm3StopVM,
			Help: "Oracle VM Agent 3: stop the vm: a clean shutdown (domain.shutdown, destroyed after 60 s), or at once with force (domain.destroy)."},
		{Name: "reboot_vm", Result: xmlrpc.Nil, Params: with(xmlrpc.Opt("wait", xmlrpc.Int)), Run: a.ovm3RebootVM,
			Help: "Oracle VM Agent 3: reboot the vm (domain.reboot); wait is how long the clean shutdown may take, in seconds (at most 3600), before the domain is destroyed and started again; less than 60 (CloudStack sends 3) is raised to 60, so that a guest is not reset while it shuts down."},
		{Name: "pause_vm", Result: xmlrpc.Nil, Params: repoVM, Run: a.ovm3Op("domain.pause"),
			Help: "Oracle VM Agent 3: pause the vm (domain.pause)."},
		{Name: "unpause_vm", Result: xmlrpc.Nil, Params: repoVM, Run: a.ovm3Op("domain.unpause"),
			Help: "Oracle VM Agent 3: continue a paused vm (domain.unpause)."},
		{Name: "configure_vm_ha", Result: xmlrpc.Nil, Params: with(xmlrpc.Req("enable_ha", xmlrpc.Boolean)), Run: a.ovm3ConfigureVMHA,
			Help: "Oracle VM Agent 3: make the vm highly available, or not, in the server pool ([pool]): with enable_ha a vm running here becomes a pool domain with HA, without stopping (pool.adopt_domain), and the pool starts it on another member when this server fails (never while this one may still run it); a pool domain's HA is switched (pool.set_ha); enable_ha false on a vm that is no pool domain changes nothing. Its stop_vm and delete_vm go through the pool from then on. Refused without [pool], and for a vm that is not running here (start_vm first). The vm.cfg's OVM_high_availability is left as the manager wrote it: the pool's record (pool.domains' ha) is what acts. A vm that is a pool domain already has its HA switched whatever its state; start_vm of a stopped one is refused (the pool starts it: pool.start_domain)."},
		{Name: "delete_vm", Result: xmlrpc.Nil, Params: repoVM, Run: a.ovm3DeleteVM,
			Help: "Oracle VM Agent 3: remove a stopped vm: the domain (domain.delete) and its VirtualMachines/<vm_id> folder; its disks stay."},
	}
}

// callOwn runs one of the agent's own methods for an agent 3 call, with the
// caller's context (its checks, pool rules and audit line included).
func (a *Agent) callOwn(ctx context.Context, method string, params ...any) error {
	_, err := a.rpc.Call(ctx, method, xmlrpc.Params(params))
	return err
}

// registered is the domain of v, registered from its vm.cfg in the
// repository if it is not yet, and registered again if the file changed
// since and the domain is stopped (domain.delete, then the create: if the
// new file is refused, the domain is not registered until a start_vm finds
// a file it takes; the repository's vm.cfg is the vm's record).
func (a *Agent) registered(ctx context.Context, v ovm3VM) (string, error) {
	text, err := v.readCfg()
	if err != nil {
		return "", err
	}
	in, ok := a.ovm3Domain(v.id)
	if ok {
		old, err := os.ReadFile(in.ConfigFile)
		if err == nil && bytes.Equal(old, text) {
			return in.Name, nil
		}
		if in.State != "stopped" {
			return in.Name, nil // runs as registered; the file applies at its next start
		}
		if err := a.callOwn(ctx, "domain.delete", in.Name); err != nil {
			return "", err
		}
	}
	res, err := a.create(text, v.where(), "")
	if err != nil {
		return "", fmt.Errorf("register vm %s from %s: %w", v.id, v.where(), err)
	}
	return res.(createResult).Name, nil
}

// ovm3Registered is the registered domain of (repo, vm): the vm must be
// in that repository and registered here.
func (a *Agent) ovm3Registered(args xmlrpc.Args) (string, error) {
	v, err := a.ovm3Target(args)
	if err != nil {
		return "", err
	}
	if _, err := v.readCfg(); err != nil {
		return "", err
	}
	in, ok := a.ovm3Domain(v.id)
	if !ok {
		return "", xmlrpc.Faultf(xmlrpc.NotFound, "vm %s of repository %s is not registered on this host (start_vm registers it from %s)", v.id, v.repo, v.where())
	}
	return in.Name, nil
}

func (a *Agent) ovm3Op(method string) func(context.Context, xmlrpc.Args) (any, error) {
	return func(ctx context.Context, args xmlrpc.Args) (any, error) {
		name, err := a.ovm3Registered(args)
		if err != nil {
			return nil, err
		}
		return nil, a.callOwn(ctx, method, name)
	}
}

func (a *Agent) ovm3CreateVM(_ context.Context, args xmlrpc.Args) (any, error) {
	v, err := a.ovm3Target(args)
	if err != nil {
		return nil, err
	}
	if in, ok := a.ovm3Domain(v.id); ok {
		return nil, xmlrpc.Faultf(xmlrpc.Exists, "vm %s is registered here already, as domain %s", v.id, in.Name)
	}
	text, err := v.configText(args.Struct(2))
	if err != nil {
		return nil, err
	}
	if err := v.writeCfg(text, true); err != nil {
		return nil, err
	}
	if _, err := a.create(text, v.where(), ""); err != nil {
		// Nothing registered: the file written for it goes too.
		if root, rerr := os.OpenRoot(v.mount); rerr == nil {
			root.Remove(v.cfg())
			root.Remove(v.dir())
			root.Close()
		}
		return nil, err
	}
	return nil, nil
}

func (a *Agent) ovm3ConfigureVM(ctx context.Context, args xmlrpc.Args) (any, error) {
	v, err := a.ovm3Target(args)
	if err != nil {
		return nil, err
	}
	old, err := v.readCfg()
	if err != nil {
		return nil, err
	}
	in, registered := a.ovm3Domain(v.id)
	if registered && in.State != "stopped" {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "vm %s (domain %s) is %s: its vm.cfg is changed only while it is stopped", v.id, in.Name, in.State)
	}
	text, err := v.configText(args.Struct(2))
	if err != nil {
		return nil, err
	}
	// The new file must be a valid vm.cfg before it replaces the old one.
	if _, err := vmcfg.Parse(v.where(), text); err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.InvalidConfig, "%v", err)
	}
	if err := v.writeCfg(text, false); err != nil {
		return nil, err
	}
	if registered {
		if _, err := a.registered(ctx, v); err != nil {
			// Put the old file back and register the domain from it again.
			if werr := v.writeCfg(old, false); werr == nil {
				a.registered(ctx, v)
			}
			return nil, err
		}
	}
	return nil, nil
}

func (a *Agent) ovm3StartVM(ctx context.Context, args xmlrpc.Args) (any, error) {
	v, err := a.ovm3Target(args)
	if err != nil {
		return nil, err
	}
	name, err := a.registered(ctx, v)
	if err != nil {
		return nil, err
	}
	return nil, a.callOwn(ctx, "domain.start", name)
}

func (a *Agent) ovm3StopVM(ctx context.Context, args xmlrpc.Args) (any, error) {
	name, err := a.ovm3Registered(args)
	if err != nil {
		return nil, err
	}
	if a.pool != nil {
		if _, _, owned, _ := a.pool.domains.localOwned(name); owned {
			// a pool domain (configure_vm_ha): the pool keeps it stopped
			return nil, a.poolFault(a.stopOwned(ctx, name, args.Bool(2), DefaultShutdownTimeout))
		}
	}
	if args.Bool(2) {
		return nil, a.callOwn(ctx, "domain.destroy", name)
	}
	return nil, a.callOwn(ctx, "domain.shutdown", name, int64(DefaultShutdownTimeout.Seconds()))
}

func (a *Agent) ovm3RebootVM(ctx context.Context, args xmlrpc.Args) (any, error) {
	name, err := a.ovm3Registered(args)
	if err != nil {
		return nil, err
	}
	wait := max(args.IntOr(2, 0), int64(DefaultShutdownTimeout.Seconds()))
	return nil, a.callOwn(ctx, "domain.reboot", name, wait)
}

func (a *Agent) ovm3DeleteVM(ctx context.Context, args xmlrpc.Args) (any, error) {
	v, err := a.ovm3Target(args)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(v.mount)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "open repository %s: %v", v.repo, err)
	}
	defer root.Close()
	// The folder first: a vm that is not in this repository is not
	// deleted, not even its registration.
	if fi, err := root.Lstat(v.dir()); err != nil || !fi.IsDir() {
		return nil, xmlrpc.Faultf(xmlrpc.NotFound, "no vm %s in repository %s", v.id, v.repo)
	}
	if in, ok := a.ovm3Domain(v.id); ok {
		if a.pool != nil && a.pool.domains.ranInPool(in.Name) {
			// a pool domain (configure_vm_ha) that runs nowhere: out of the
			// pool first (pool.delete_domain refuses one that runs)
			if err := a.callOwn(ctx, "pool.delete_domain", in.UUID); err != nil {
				var f *xmlrpc.Fault
				if !errors.As(err, &f) || f.Code != xmlrpc.NotFound {
					return nil, err
				}
			}
		}
		if err := a.callOwn(ctx, "domain.delete", in.Name); err != nil {
			return nil, err
		}
	}
	if err := root.RemoveAll(v.dir()); err != nil {
		return nil, fileFault(ovm3RepoPrefix+v.repo+"/"+v.dir(), err)
	}
	return nil, nil
}

func (a *Agent) ovm3GetConfig(_ context.Context, args xmlrpc.Args) (any, error) {
	v, err := a.ovm3Target(args)
	if err != nil {
		return nil, err
	}
	text, err := v.readCfg()
	if err != nil {
		return nil, err
	}
	cfg, err := vmcfg.Parse(v.where(), text)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.InvalidConfig, "%v", err)
	}
	m := ovm3.ConfigStruct(cfg)
	if disks, ok := m["disk"].([]string); ok {
		for i, d := range disks {
			disks[i] = mapDisk(d, v.paths.external)
		}
	}
	return m, nil
}

// live reports whether a domain in this state runs here (xend lists it).
func live(state string) bool {
	switch state {
	case "running", "paused", "starting", "stopping", "migrating":
		return true
	}
	return false
}

// xendDomain is list_vms' struct of a registered domain.
// Its domid is its VMM's process id (stable while it runs; dom0 is 0).
func (a *Agent) xendDomain(in domains.Info, pm ovm3PathMap) map[string]any {
	d := ovm3.Domain{
		Name: in.Name, UUID: in.UUID, DomID: in.PID, State: in.State,
		MemoryMiB: in.MemoryMiB, MaxMemMiB: in.MaxMemMiB, VCPUs: in.VCPUs, CPUSeconds: in.CPUSeconds,
		Started: in.Started, OnPoweroff: in.OnPoweroff, OnReboot: in.OnReboot, OnCrash: in.OnCrash, VNC: in.VNC, Console: true,
	}
	if cfg, err := vmcfg.ParseFile(in.ConfigFile); err == nil {
		d.Builder, d.Bootloader, d.BootloaderArgs = cfg.Builder, cfg.Bootloader, cfg.BootloaderArgs
		for _, k := range cfg.Disks {
			spec := mapDisk(k.String(), pm.external)
			first, rest, _ := strings.Cut(spec, ",")
			dev, mode, _ := strings.Cut(rest, ",")
			d.Disks = append(d.Disks, ovm3.DomainDisk{UName: first, Dev: dev, Mode: mode})
		}
		for _, vf := range cfg.VIFs {
			d.VIFs = append(d.VIFs, ovm3.DomainVIF{MAC: vf.MAC, Bridge: vf.Bridge})
		}
	}
	return ovm3.XendStruct(d)
}

// dom0 is list_vms' Domain-0: this host, with its memory and CPUs.
func (a *Agent) dom0() map[string]any {
	d := ovm3.Domain{Name: "Domain-0", UUID: "00000000-0000-0000-0000-000000000000", State: "running",
		OnPoweroff: "destroy", OnReboot: "restart", OnCrash: "restart"}
	if hi, err := hostinfo.Read(hostinfo.DefaultPaths); err == nil {
		d.MemoryMiB, d.MaxMemMiB, d.VCPUs, d.Started = int(hi.MemoryTotal>>20), int(hi.MemoryTotal>>20), hi.CPUCount, hi.BootTime
	}
	return ovm3.XendStruct(d)
}

func (a *Agent) ovm3ListVMs(context.Context, xmlrpc.Args) (any, error) {
	pm := a.ovm3Paths()
	out := []any{a.dom0()}
	for _, in := range a.domains.List(true) {
		if live(in.State) {
			out = append(out, a.xendDomain(in, pm))
		}
	}
	return out, nil
}

func (a *Agent) ovm3ListVM(_ context.Context, args xmlrpc.Args) (any, error) {
	v, err := a.ovm3Target(args)
	if err != nil {
		return nil, err
	}
	for _, in := range a.domains.List(true) {
		if ovm3.SameUUID(in.UUID, v.id) && live(in.State) {
			return a.xendDomain(in, v.paths), nil
		}
	}
	return nil, nil
}

func (a *Agent) ovm3ConfigureVMHA(ctx context.Context, args xmlrpc.Args) (any, error) {
	name, err := a.ovm3Registered(args)
	if err != nil {
		return nil, err
	}
	enable := args.Bool(2)
	if a.pool == nil {
		return nil, xmlrpc.Faultf(xmlrpc.Unsupported, "configure_vm_ha: high availability is the server pool's (it restarts a vm on another member when its server fails), and this agent is in none: configure [pool] in agent.ini (see \"Setting up a pool\" in README.md)")
	}
	in, _, owned, _ := a.pool.domains.localOwned(name)
	if owned || in.Generation > 0 {
		err := a.callOwn(ctx, "pool.set_ha", in.UUID, enable)
		var f *xmlrpc.Fault
		if errors.As(err, &f) && f.Code == xmlrpc.NotFound {
			if !enable {
				return nil, nil // the pool has it no more: no HA to turn off
			}
			return nil, xmlrpc.Faultf(xmlrpc.BadState, "configure_vm_ha: vm %s (domain %s) ran in the pool before (generation %d) and the pool has no record of it now: it is not taken into the pool again; delete_vm and create_vm it", in.UUID, name, in.Generation)
		}
		return nil, err
	}
	if !enable {
		return nil, nil // not a pool domain: it has no HA to turn off
	}
	if !hasVMM(in.State) {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "configure_vm_ha: vm %s (domain %s) is %s: a running vm is made highly available (start_vm it first)", in.UUID, name, in.State)
	}
	return nil, a.callOwn(ctx, "pool.adopt_domain", name, map[string]any{"ha": true})
}
