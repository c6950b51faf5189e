package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
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

// xendFault maps faults onto xend's codes: 3 for an unknown domain, 1 for
// an internal error, 2 for everything else.
func xendFault(h xmlrpc.Handler) xmlrpc.Handler {
	return func(ctx context.Context, p xmlrpc.Params) (any, error) {
		res, err := h(ctx, p)
		if err == nil {
			return res, nil
		}
		f := xmlrpc.AsFault(err)
		switch f.Code {
		case xmlrpc.NotFound:
			return nil, &xmlrpc.Fault{Code: xmlrpc.XendInvalidDomain, Message: f.Message}
		case xmlrpc.Internal:
			return nil, &xmlrpc.Fault{Code: xmlrpc.XendInternal, Message: f.Message}
		default:
			return nil, &xmlrpc.Fault{Code: xmlrpc.XendGeneric, Message: f.Message}
		}
	}
}

// maxConfigBytes bounds a vm.cfg read from a path.
const maxConfigBytes = 1 << 20

// readConfigSource returns vm.cfg text and its name from an API argument
// that is either an absolute path on this host or the text itself.
func readConfigSource(roots []string, arg string) ([]byte, string, error) {
	if strings.HasPrefix(arg, "/") && !strings.ContainsAny(arg, "\n=") {
		f, err := fileaccess.OpenRegular(roots, arg)
		if err != nil {
			return nil, "", fileFault("vm.cfg", err)
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
		if err != nil {
			return nil, "", xmlrpc.Faultf(xmlrpc.Internal, "read %s: %v", arg, err)
		}
		if len(data) > maxConfigBytes {
			return nil, "", xmlrpc.Faultf(xmlrpc.InvalidConfig, "%s is larger than %d bytes", arg, maxConfigBytes)
		}
		return data, arg, nil
	}
	return []byte(arg), "vm.cfg", nil
}

type createResult struct {
	domains.Info
	Warnings []string `xmlrpc:"warnings"`
}

func (a *Agent) registerDomainMethods(s *xmlrpc.Server) {
	name1 := func(p xmlrpc.Params) (string, error) {
		if err := p.Want(1); err != nil {
			return "", err
		}
		return p.String(0)
	}
	info := func(name string, err error) (any, error) {
		if err != nil {
			return nil, domainFault(err)
		}
		in, err := a.domains.Info(name)
		return in, domainFault(err)
	}
	create := func(_ context.Context, p xmlrpc.Params) (any, error) {
		if err := p.Between(1, 2); err != nil {
			return nil, err
		}
		arg, err := p.String(0)
		if err != nil {
			return nil, err
		}
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
		if p.Len() == 2 {
			if source, err = p.String(1); err != nil {
				return nil, err
			}
			source = filepath.Base(source)
		}
		in, warnings, err := a.domains.Create(text, source)
		if err != nil {
			return nil, domainFault(err)
		}
		if warnings == nil {
			warnings = []string{}
		}
		return createResult{Info: *in, Warnings: warnings}, nil
	}
	simple := func(op func(string) error) xmlrpc.Handler {
		return func(_ context.Context, p xmlrpc.Params) (any, error) {
			name, err := name1(p)
			if err != nil {
				return nil, err
			}
			return info(name, op(name))
		}
	}
	timed := func(op func(string, time.Duration) error) xmlrpc.Handler {
		return func(_ context.Context, p xmlrpc.Params) (any, error) {
			if err := p.Between(1, 2); err != nil {
				return nil, err
			}
			name, err := p.String(0)
			if err != nil {
				return nil, err
			}
			secs, err := p.OptInt(1, int64(DefaultShutdownTimeout/time.Second))
			if err != nil {
				return nil, err
			}
			if secs < 1 || secs > 3600 {
				return nil, xmlrpc.Faultf(xmlrpc.BadParams, "timeout %d s: give 1 to 3600 seconds", secs)
			}
			return info(name, op(name, time.Duration(secs)*time.Second))
		}
	}
	start := simple(a.domains.Start)
	pause := simple(a.domains.Pause)
	unpause := simple(a.domains.Unpause)
	destroy := simple(a.domains.Destroy)
	shutdown := timed(a.domains.Shutdown)
	list := func(_ context.Context, p xmlrpc.Params) (any, error) {
		if err := p.Want(0); err != nil {
			return nil, err
		}
		out := a.domains.List(true)
		if out == nil {
			out = []domains.Info{}
		}
		return out, nil
	}
	methods := []xmlrpc.Method{
		{Name: "domain.create", Handler: create, Signatures: [][]string{{"struct", "string"}, {"struct", "string", "string"}},
			Help: "Register a domain from a vm.cfg: the text itself, or an absolute path on the agent's host. An optional second parameter names the file in messages. The domain is stopped afterwards; the result lists warnings for unknown keys."},
		{Name: "domain.start", Handler: start, Signatures: [][]string{{"struct", "string"}},
			Help: "Start a stopped domain in its own ovs-vmm process; returns once it runs. Refused when its memory does not fit in the host's free memory."},
		{Name: "domain.shutdown", Handler: shutdown, Signatures: [][]string{{"struct", "string"}, {"struct", "string", "int"}},
			Help: "Shut a domain down cleanly; destroy it if it has not stopped after the timeout (seconds, default 60)."},
		{Name: "domain.destroy", Handler: destroy, Signatures: [][]string{{"struct", "string"}},
			Help: "Stop a domain at once (power off)."},
		{Name: "domain.reboot", Handler: timed(a.domains.Reboot), Signatures: [][]string{{"struct", "string"}, {"struct", "string", "int"}},
			Help: "Shut a domain down cleanly (timeout in seconds, default 60) and start it again."},
		{Name: "domain.pause", Handler: pause, Signatures: [][]string{{"struct", "string"}},
			Help: "Pause a running domain's vCPUs; its memory stays."},
		{Name: "domain.unpause", Handler: unpause, Signatures: [][]string{{"struct", "string"}},
			Help: "Continue a paused domain."},
		{Name: "domain.delete", Signatures: [][]string{{"boolean", "string"}},
			Help: "Remove a stopped domain and its files from the agent's state directory.",
			Handler: func(_ context.Context, p xmlrpc.Params) (any, error) {
				name, err := name1(p)
				if err != nil {
					return nil, err
				}
				return true, domainFault(a.domains.Delete(name))
			}},
		{Name: "domain.detach", Signatures: [][]string{{"struct", "string"}, {"struct", "string", "string"}},
			Help: "Detach a stopped domain (zoneadm detach): write a manifest (ovs-detached.json: its vm.cfg, its disks with sizes and checksums, what a host must offer) into its folder on its repository, or into running_pool/NAME of the repository UUID given as the second argument, and leave it known here but not runnable. Returns {domain, manifest, disks}.",
			Handler: func(ctx context.Context, p xmlrpc.Params) (any, error) {
				if err := p.Between(1, 2); err != nil {
					return nil, err
				}
				name, err := p.String(0)
				if err != nil {
					return nil, err
				}
				repo, err := p.OptString(1, "")
				if err != nil {
					return nil, err
				}
				res, err := a.domains.Detach(ctx, name, repo)
				if err != nil {
					return nil, domainFault(err)
				}
				return res, nil
			}},
		{Name: "domain.attach", Signatures: [][]string{{"struct", "string"}, {"struct", "string", "boolean"}},
			Help: "Attach a detached domain (zoneadm attach) from its manifest, given as the manifest file or its folder on a repository mounted here: every mismatch with this host and the files (name or UUID taken, engine, memory, vCPUs, bridges, CPU, a disk missing, resized or changed since the detach) is listed, one per line, and nothing is registered; force (-F) skips the checks of the domain's needs and the disk checksums, and is logged. On success the domain is registered stopped and the manifest removed. Returns the domain's info.",
			Handler: func(ctx context.Context, p xmlrpc.Params) (any, error) {
				if err := p.Between(1, 2); err != nil {
					return nil, err
				}
				path, err := p.String(0)
				if err != nil {
					return nil, err
				}
				force, err := p.OptBool(1, false)
				if err != nil {
					return nil, err
				}
				// The manifest or its folder must resolve, after symlinks,
				// inside a repository or [agent] file_dirs.
				real, err := fileaccess.Resolve(a.fileRoots(), path)
				if err != nil {
					return nil, fileFault("attach", err)
				}
				in, _, err := a.domains.Attach(ctx, real, force)
				if err != nil {
					return nil, domainFault(err)
				}
				return in, nil
			}},
		{Name: "domain.list", Handler: list, Signatures: [][]string{{"array"}},
			Help: "Every domain: name, uuid, state (starting, running, paused, suspended, stopping, stopped, migrating, detached), reason, memory (MiB), vcpus, engine, CPU time, dirty rate, uptime."},
		{Name: "domain.info", Signatures: [][]string{{"struct", "string"}},
			Help: "One domain: state and why, memory, vCPUs, CPU time, dirty rate (bytes/s), uptime, engine, workload counters, and how its last VMM ended.",
			Handler: func(_ context.Context, p xmlrpc.Params) (any, error) {
				name, err := name1(p)
				if err != nil {
					return nil, err
				}
				return info(name, nil)
			}},
		{Name: "domain.console", Signatures: [][]string{{"struct", "string"}, {"struct", "string", "int"}, {"struct", "string", "int", "int"}},
			Help: "Read a domain's console from an offset (default 0; -1 for the latest output, a tail) for at most max bytes (default 64 KiB): {offset, data, next, live}. Ask again from next to follow it.",
			Handler: func(_ context.Context, p xmlrpc.Params) (any, error) {
				if err := p.Between(1, 3); err != nil {
					return nil, err
				}
				name, err := p.String(0)
				if err != nil {
					return nil, err
				}
				off, err := p.OptInt(1, 0)
				if err != nil {
					return nil, err
				}
				max, err := p.OptInt(2, 64<<10)
				if err != nil {
					return nil, err
				}
				c, err := a.domains.ReadConsole(name, off, int(max))
				return c, domainFault(err)
			}},
		{Name: "host.top", Signatures: [][]string{{"struct"}},
			Help: "What `ovm top` shows: host.stats, the memory committed to domains, and every domain with its state, CPU time, dirty rate and memory.",
			Handler: func(_ context.Context, p xmlrpc.Params) (any, error) {
				if err := p.Want(0); err != nil {
					return nil, err
				}
				st, err := a.sampler.Sample()
				if err != nil {
					return nil, xmlrpc.Faultf(xmlrpc.Internal, "read host statistics: %v", err)
				}
				doms := a.domains.List(true)
				if doms == nil {
					doms = []domains.Info{}
				}
				return map[string]any{"host": st, "memory_committed": int64(a.domains.Committed()), "domains": doms}, nil
			}},

		// xend's legacy names, with xend's fault codes.
		{Name: "xend.domains", Signatures: [][]string{{"array"}, {"array", "int"}},
			Help: "xend: the names of the domains (an optional detail flag is accepted and ignored).",
			Handler: xendFault(func(_ context.Context, p xmlrpc.Params) (any, error) {
				if err := p.Between(0, 1); err != nil {
					return nil, err
				}
				names := a.domains.Names()
				if names == nil {
					names = []string{}
				}
				return names, nil
			})},
		{Name: "xend.domain", Handler: xendFault(func(_ context.Context, p xmlrpc.Params) (any, error) {
			name, err := name1(p)
			if err != nil {
				return nil, err
			}
			return info(name, nil)
		}), Signatures: [][]string{{"struct", "string"}}, Help: "xend: domain.info."},
		{Name: "xend.domain.create", Handler: xendFault(create), Signatures: [][]string{{"struct", "string"}}, Help: "xend: domain.create (vm.cfg text or path)."},
		{Name: "xend.domain.pause", Handler: xendFault(pause), Signatures: [][]string{{"struct", "string"}}, Help: "xend: domain.pause."},
		{Name: "xend.domain.unpause", Handler: xendFault(unpause), Signatures: [][]string{{"struct", "string"}}, Help: "xend: domain.unpause."},
		{Name: "xend.domain.destroy", Handler: xendFault(destroy), Signatures: [][]string{{"struct", "string"}}, Help: "xend: domain.destroy."},
		{Name: "xend.domain.shutdown", Signatures: [][]string{{"struct", "string"}, {"struct", "string", "string"}},
			Help: "xend: shut a domain down; the second parameter is xend's reason: poweroff (default), halt, reboot.",
			Handler: xendFault(func(_ context.Context, p xmlrpc.Params) (any, error) {
				if err := p.Between(1, 2); err != nil {
					return nil, err
				}
				name, err := p.String(0)
				if err != nil {
					return nil, err
				}
				reason, err := p.OptString(1, "poweroff")
				if err != nil {
					return nil, err
				}
				switch reason {
				case "poweroff", "halt":
					return info(name, a.domains.Shutdown(name, DefaultShutdownTimeout))
				case "reboot":
					return info(name, a.domains.Reboot(name, DefaultShutdownTimeout))
				}
				return nil, xmlrpc.Faultf(xmlrpc.BadParams, "shutdown reason %q: want poweroff, halt or reboot", reason)
			})},
	}
	for _, m := range methods {
		if err := s.Register(m); err != nil {
			panic(fmt.Sprintf("register %s: %v", m.Name, err))
		}
	}
}
