package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
)

// DefaultShutdownTimeout is how long a clean shutdown may take before the
// domain is destroyed, when the caller does not say.
const DefaultShutdownTimeout = 60 * time.Second

// domainFault turns a domains error into an API fault.
func domainFault(err error) error {
	if err == nil {
		return nil
	}
	code := xmlrpc.Internal
	switch domains.KindOf(err) {
	case domains.NotFound:
		code = xmlrpc.NotFound
	case domains.BadState:
		code = xmlrpc.BadState
	case domains.Exists:
		code = xmlrpc.Exists
	case domains.NoResources:
		code = xmlrpc.NoResources
	case domains.Invalid:
		code = xmlrpc.InvalidConfig
	case domains.Unsupported:
		code = xmlrpc.Unsupported
	default:
		if c, ok := errnoCode(err); ok {
			code = c
		}
	}
	return xmlrpc.Faultf(code, "%s", err.Error())
}

// readConfigSource returns vm.cfg text and its name from an API argument
// that is either an absolute path on this host or the text itself.
func readConfigSource(roots []string, arg string) ([]byte, string, error) {
	if strings.HasPrefix(arg, "/") && !strings.ContainsAny(arg, "\n=") {
		f, err := fileaccess.OpenRegular(roots, arg)
		if err != nil {
			return nil, "", fileFault("vm.cfg", err)
		}
		defer f.Close()
		data, err := boundedfile.ReadAll(f, arg, vmcfg.MaxFileSize)
		if errors.Is(err, boundedfile.ErrTooLarge) {
			return nil, "", xmlrpc.Faultf(xmlrpc.InvalidConfig, "%s is larger than %d bytes", arg, vmcfg.MaxFileSize)
		}
		if err != nil {
			return nil, "", xmlrpc.Faultf(xmlrpc.Internal, "read %s: %v", arg, err)
		}
		return data, arg, nil
	}
	return []byte(arg), "vm.cfg", nil
}

type createResult struct {
	domains.Info
	Warnings []string `xmlrpc:"warnings"`
}

// domainMethods is the domain namespace: the lifecycle of the domains on
// this host. domain.migrate is declared with the migration methods and
// domain.create_from_template with the repository ones, where their work is.
func (a *Agent) domainMethods() []xmlrpc.Def {
	timeout := xmlrpc.Opt("timeout", xmlrpc.Int)
	return []xmlrpc.Def{
		{Name: "domain.create", Result: xmlrpc.Struct, Run: a.apiCreate, Aliases: xendAlias("xend.domain.create"),
			Params: []xmlrpc.Param{xmlrpc.Req("cfg", xmlrpc.String), xmlrpc.Opt("source", xmlrpc.String)},
			Help:   "Register a domain from a vm.cfg: the text itself, or an absolute path on the agent's host. An optional second parameter names the file in messages. The domain is stopped afterwards; the result lists warnings for unknown keys."},
		{Name: "domain.start", Result: xmlrpc.Struct, Params: []xmlrpc.Param{nameParam}, Run: a.apiStart,
			Help: "Start a stopped domain in its own ovs-vmm process; returns once it runs. Refused when its memory does not fit in the host's free memory, and on a pool member for a pool domain this agent does not own (those start through the pool: pool.start_local)."},
		{Name: "domain.shutdown", Result: xmlrpc.Struct, Params: []xmlrpc.Param{nameParam, timeout}, Run: a.poolStop(a.timed((*domains.Manager).Shutdown)),
			Help: "Shut a domain down cleanly; destroy it if it has not stopped after the timeout (seconds, default 60)."},
		{Name: "domain.destroy", Result: xmlrpc.Struct, Params: []xmlrpc.Param{nameParam}, Run: a.poolStop(a.byName((*domains.Manager).Destroy)),
			Aliases: xendAlias("xend.domain.destroy"),
			Help:    "Stop a domain at once (power off)."},
		{Name: "domain.reboot", Result: xmlrpc.Struct, Params: []xmlrpc.Param{nameParam, timeout}, Run: a.timed((*domains.Manager).Reboot),
			Help: "Shut a domain down cleanly (timeout in seconds, default 60) and start it again."},
		{Name: "domain.pause", Result: xmlrpc.Struct, Params: []xmlrpc.Param{nameParam}, Run: a.byName((*domains.Manager).Pause),
			Aliases: xendAlias("xend.domain.pause"),
			Help:    "Pause a running domain's vCPUs; its memory stays."},
		{Name: "domain.unpause", Result: xmlrpc.Struct, Params: []xmlrpc.Param{nameParam}, Run: a.byName((*domains.Manager).Unpause),
			Aliases: xendAlias("xend.domain.unpause"),
			Help:    "Continue a paused domain."},
		{Name: "domain.delete", Result: xmlrpc.Boolean, Params: []xmlrpc.Param{nameParam}, Run: a.apiDelete,
			Help: "Remove a stopped domain and its files from the agent's state directory. On a pool member a pool domain this agent owns is refused: pool.stop_local releases it first."},
		{Name: "domain.detach", Result: xmlrpc.Struct, Run: a.apiDetach,
			Params: []xmlrpc.Param{nameParam, xmlrpc.Opt("repository", xmlrpc.String)},
			Help:   "Detach a stopped domain (zoneadm detach): write a manifest (ovs-detached.json: its vm.cfg, its disks with sizes and checksums, what a host must offer) into its folder on its repository, or into running_pool/NAME of the repository UUID given as the second argument, and leave it known here but not runnable. Returns {domain, manifest, disks}."},
		{Name: "domain.attach", Result: xmlrpc.Struct, Run: a.apiAttach,
			Params: []xmlrpc.Param{xmlrpc.Req("path", xmlrpc.String), xmlrpc.Opt("force", xmlrpc.Boolean)},
			Help:   "Attach a detached domain (zoneadm attach) from its manifest, given as the manifest file or its folder on a repository mounted here: every mismatch with this host and the files (name or UUID taken, engine, memory, vCPUs, bridges, CPU, a disk missing, resized or changed since the detach) is listed, one per line, and nothing is registered; force (-F) skips the checks of the domain's needs and the disk checksums, and is logged. On success the domain is registered stopped and the manifest removed. Returns the domain's info."},
		{Name: "domain.list", Result: xmlrpc.Array, Run: a.apiList,
			Help: "Every domain: name, uuid, state (starting, running, paused, suspended, stopping, stopped, migrating, detached), reason, memory (MiB), vcpus, engine, CPU time, dirty rate, uptime; for a running qemu domain also accel, engine_version, machine, cpu_model, vnc, memory_target, balloon_bytes, max_memory_bytes and disk/network I/O bytes."},
		{Name: "domain.info", Result: xmlrpc.Struct, Params: []xmlrpc.Param{nameParam}, Run: a.byName(nil),
			Aliases: xendAlias("xend.domain"),
			Help:    "One domain: state and why, memory, vCPUs, CPU time, dirty rate (bytes/s), uptime, engine, workload counters, and how its last VMM ended; a running qemu domain adds accel (kvm or tcg), engine_version, machine, cpu_model, vnc (host:port of its display), memory_target (MiB, after domain.set_memory), balloon_bytes, max_memory_bytes, disk_read_bytes, disk_write_bytes, disk_read_ops, disk_write_ops, net_rx_bytes and net_tx_bytes; a pool domain with a lease adds generation (its owner's), run_until_seconds (left until its VMM fences it) and, once fenced (state paused, reason fenced), fenced, fenced_at and fence_detail."},
		{Name: "domain.console", Result: xmlrpc.Struct, Run: a.apiConsole,
			Params: []xmlrpc.Param{nameParam, xmlrpc.Opt("offset", xmlrpc.Int), xmlrpc.Opt("max", xmlrpc.Int), xmlrpc.Opt("raw", xmlrpc.Boolean)},
			Help:   "Read a domain's console from an offset (default 0; -1 for the latest output, a tail) for at most max bytes (default 64 KiB): {offset, data, next, live}. Ask again from next to follow it. With raw true the bytes come as base64 in raw instead of data (escape sequences and other control characters intact, which an XML string cannot carry)."},
		{Name: "domain.save", Result: xmlrpc.Struct, Params: []xmlrpc.Param{nameParam, xmlrpc.Req("file", xmlrpc.String)}, Run: a.apiSave,
			Help: "Save a running or paused domain to a file on the agent's host (xm save): the same stream as a migration. The domain is suspended afterwards; domain.start or domain.restore brings it back."},
		{Name: "domain.restore", Result: xmlrpc.Struct, Params: []xmlrpc.Param{xmlrpc.Req("file", xmlrpc.String)}, Run: a.apiRestore,
			Help: "Start a domain from a save image on the agent's host (xm restore); the image's configuration registers the domain if this host does not know it."},
	}
}

// domainInfo answers with the domain's info once op has succeeded.
func (a *Agent) domainInfo(name string, err error) (any, error) {
	if err != nil {
		return nil, domainFault(err)
	}
	in, err := a.domains.Info(name)
	return in, domainFault(err)
}

// byName is a method that runs op (none: only reads) on the named domain
// and returns its info. Ops are method expressions, so that a call uses
// the registry the agent holds when it runs.
func (a *Agent) byName(op func(*domains.Manager, string) error) func(context.Context, xmlrpc.Args) (any, error) {
	return func(_ context.Context, args xmlrpc.Args) (any, error) {
		name := args.String(0)
		if op == nil {
			return a.domainInfo(name, nil)
		}
		return a.domainInfo(name, op(a.domains, name))
	}
}

// timed is byName for an op with a timeout in seconds (1 to 3600, default 60).
func (a *Agent) timed(op func(*domains.Manager, string, time.Duration) error) func(context.Context, xmlrpc.Args) (any, error) {
	return func(_ context.Context, args xmlrpc.Args) (any, error) {
		name := args.String(0)
		secs := args.IntOr(1, int64(DefaultShutdownTimeout/time.Second))
		if secs < 1 || secs > 3600 {
			return nil, xmlrpc.Faultf(xmlrpc.BadParams, "timeout %d s: give 1 to 3600 seconds", secs)
		}
		return a.domainInfo(name, op(a.domains, name, time.Duration(secs)*time.Second))
	}
}

// poolStop is run (domain.shutdown, domain.destroy) refused, on a pool
// member, for a pool domain this agent owns: stopped here, its owner key
// would stay (the pool would show it running here), or, given up, the
// pool would restart it elsewhere. It stops through the pool.
func (a *Agent) poolStop(run func(context.Context, xmlrpc.Args) (any, error)) func(context.Context, xmlrpc.Args) (any, error) {
	return func(ctx context.Context, args xmlrpc.Args) (any, error) {
		if a.pool != nil {
			if err := a.pool.domains.mayStop(args.String(0)); err != nil {
				return nil, err
			}
		}
		return run(ctx, args)
	}
}

// apiStart is domain.start; a pool member refuses a pool domain it does
// not own.
func (a *Agent) apiStart(ctx context.Context, args xmlrpc.Args) (any, error) {
	name := args.String(0)
	if a.pool != nil {
		// Under the pool's lock: a stop_local or a loss that gives the
		// domain's owner key up cannot come between the check and the
		// start.
		p := a.pool.domains
		p.ops.Lock()
		defer p.ops.Unlock()
		if err := p.mayStart(ctx, name); err != nil {
			return nil, err
		}
	}
	return a.domainInfo(name, a.domains.Start(name))
}

func (a *Agent) apiCreate(_ context.Context, args xmlrpc.Args) (any, error) {
	arg := args.String(0)
	text, source, err := readConfigSource(a.fileRoots(), arg)
	if err != nil {
		return nil, err
	}
	if source == arg {
		// Read from this host's disk: a file that is not a valid
		// vm.cfg is refused without quoting any of it.
		var el vmcfg.ErrorList
		if _, err := vmcfg.Parse(source, text); errors.As(err, &el) {
			return nil, xmlrpc.Faultf(xmlrpc.InvalidConfig, "%s is not a valid vm.cfg (its content is not quoted):\n%s", source, el.Redacted())
		} else if err != nil {
			return nil, xmlrpc.Faultf(xmlrpc.InvalidConfig, "%s is not a valid vm.cfg", source)
		}
	}
	if args.Has(1) {
		source = filepath.Base(args.String(1))
	}
	return a.create(text, source, "")
}

// create registers a domain from vm.cfg text; copyDir, when set, is where
// that text was copied to (named in a refusal).
func (a *Agent) create(text []byte, source, copyDir string) (any, error) {
	in, warnings, err := a.domains.Create(text, source)
	if err != nil {
		if copyDir != "" {
			err = fmt.Errorf("%w (the copy is in %s)", err, copyDir)
		}
		return nil, domainFault(err)
	}
	if warnings == nil {
		warnings = []string{}
	}
	return createResult{Info: *in, Warnings: warnings}, nil
}

func (a *Agent) apiDelete(_ context.Context, args xmlrpc.Args) (any, error) {
	if a.pool != nil {
		if err := a.pool.domains.mayDelete(args.String(0)); err != nil {
			return nil, err
		}
	}
	return true, domainFault(a.domains.Delete(args.String(0)))
}

func (a *Agent) apiDetach(ctx context.Context, args xmlrpc.Args) (any, error) {
	res, err := a.domains.Detach(ctx, args.String(0), args.String(1))
	if err != nil {
		return nil, domainFault(err)
	}
	return res, nil
}

func (a *Agent) apiAttach(ctx context.Context, args xmlrpc.Args) (any, error) {
	// The manifest or its folder must resolve, after symlinks, inside a
	// repository or [agent] file_dirs.
	real, err := fileaccess.Resolve(a.fileRoots(), args.String(0))
	if err != nil {
		return nil, fileFault("attach", err)
	}
	in, _, err := a.domains.Attach(ctx, real, args.Bool(1))
	if err != nil {
		return nil, domainFault(err)
	}
	return in, nil
}

func (a *Agent) apiList(context.Context, xmlrpc.Args) (any, error) {
	out := a.domains.List(true)
	if out == nil {
		out = []domains.Info{}
	}
	return out, nil
}

func (a *Agent) apiConsole(_ context.Context, args xmlrpc.Args) (any, error) {
	c, err := a.domains.ReadConsole(args.String(0), args.IntOr(1, 0), int(args.IntOr(2, 64<<10)))
	if err == nil && args.Bool(3) {
		c.Raw, c.Data = []byte(c.Data), ""
	}
	return c, domainFault(err)
}

func (a *Agent) apiSave(_ context.Context, args xmlrpc.Args) (any, error) {
	name := args.String(0)
	if a.pool != nil {
		if err := a.pool.domains.maySave(name); err != nil {
			return nil, err
		}
	}
	path, _, err := fileaccess.CheckRegular(a.fileRoots(), args.String(1))
	if err != nil {
		return nil, fileFault("save image", err)
	}
	return a.domainInfo(name, a.domains.Save(name, path))
}

func (a *Agent) apiRestore(ctx context.Context, args xmlrpc.Args) (any, error) {
	path := args.String(0)
	real, exists, err := fileaccess.CheckRegular(a.fileRoots(), path)
	if err == nil && !exists {
		err = fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fileFault("save image", err)
	}
	if a.pool != nil {
		name, uuid, err := a.domains.ImageDomain(real)
		if err != nil {
			return nil, domainFault(err)
		}
		if err := a.pool.domains.mayRestore(ctx, name, uuid); err != nil {
			return nil, err
		}
	}
	name, err := a.domains.Restore(real)
	return a.domainInfo(name, err)
}
